#!/usr/bin/env python3
"""Posts N triggers to a recorder's POST /api/v1/trigger over THREADS keep-alive
connections (http.client: one connection per thread, reused), each answer read
whole.  Prints "statuses CODE:COUNT ..." and exits 0 when every answer was 200
and came within the time bound, else 1.

Usage: trigger_load.py URL N THREADS BODY-FORM [SECONDS]
"""
import http.client
import sys
import threading
import time
import urllib.parse


def worker(host, port, n, body, deadline, counts, lock):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    mine = {}
    for _ in range(n):
        if time.monotonic() > deadline:
            mine["timeout"] = mine.get("timeout", 0) + 1
            continue
        try:
            conn.request("POST", "/api/v1/trigger", body,
                         {"Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            r.read()
            mine[r.status] = mine.get(r.status, 0) + 1
        except (OSError, http.client.HTTPException) as e:
            mine[type(e).__name__] = mine.get(type(e).__name__, 0) + 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.close()
    with lock:
        for k, v in mine.items():
            counts[k] = counts.get(k, 0) + v


def main():
    url, n, threads, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 120
    u = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + seconds
    counts, lock = {}, threading.Lock()
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    ts = [threading.Thread(target=worker, args=(u.hostname, u.port, k, body, deadline, counts, lock))
          for k in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("statuses " + " ".join("%s:%d" % (k, v) for k, v in sorted(counts.items(), key=str)))
    return 0 if counts.get(200, 0) == n else 1


if __name__ == "__main__":
    sys.exit(main())
