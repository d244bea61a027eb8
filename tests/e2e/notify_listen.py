#!/usr/bin/env python3
"""The service manager's side of sd_notify(3), for tests/e2e/sd_notify.sh.

notify_listen.py SOCKET OUT PIDFILE [--at-ready PATH]... -- COMMAND [ARGS...]

Binds a unix datagram socket at SOCKET, runs COMMAND with NOTIFY_SOCKET=SOCKET
(the rest of the environment, WATCHDOG_USEC too, as given), writes its pid to
PIDFILE, and appends every assignment of every datagram it receives to OUT as
a line ("READY=1", "STATUS=...", "WATCHDOG=1"), flushed at once so that the
test can wait for them.  When READY=1 arrives it also writes, for each
--at-ready PATH, "at-ready PATH SIZE" (the file's size at that moment) or
"at-ready PATH missing": what existed before the command said it was ready.
Ends when COMMAND ends (after the datagrams already sent) with its exit status
(128 + N for signal N), or kills it after 600 s.
"""
import os
import socket
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    sock_path, out_path, pid_path = args[0], args[1], args[2]
    rest = args[3:]
    at_ready = []
    while rest and rest[0] == "--at-ready":
        at_ready.append(rest[1])
        rest = rest[2:]
    if not rest or rest[0] != "--":
        sys.exit("usage: notify_listen.py SOCKET OUT PIDFILE [--at-ready PATH]... -- COMMAND")
    cmd = rest[1:]

    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(0.1)
    env = dict(os.environ, NOTIFY_SOCKET=os.path.abspath(sock_path))
    child = subprocess.Popen(cmd, env=env)
    with open(pid_path, "w") as f:
        f.write("%d\n" % child.pid)
    deadline = time.monotonic() + 600
    with open(out_path, "a") as out:

        def take(data):
            for line in data.decode("utf-8", "replace").split("\n"):
                if not line:
                    continue
                out.write(line + "\n")
                if line == "READY=1":
                    for p in at_ready:
                        try:
                            out.write("at-ready %s %d\n" % (p, os.stat(p).st_size))
                        except FileNotFoundError:
                            out.write("at-ready %s missing\n" % p)
            out.flush()

        while child.poll() is None:
            if time.monotonic() > deadline:
                child.kill()
                child.wait()
                break
            try:
                take(s.recv(65536))
            except socket.timeout:
                pass
        s.setblocking(False)
        while True:  # what it sent before it ended
            try:
                take(s.recv(65536))
            except BlockingIOError:
                break
    rc = child.returncode
    sys.exit(128 - rc if rc < 0 else rc)


if __name__ == "__main__":
    main()
