#!/usr/bin/env python3
"""ch_flows.py FLOWS_JSON CH_ROWS_JSON: exit 0 when ClickHouse's flow rows of a sensor (the
JSONEachRow of `SELECT hex(addr_a) AS a, ... FROM flows WHERE sensor = ...`), summed per flow
key, are the flows `flowscope flows --json` lists: packets and bytes per direction, first and
last packet times; else a line per difference.  Rows of one (segment, seq) twice: a difference."""
import ipaddress
import json
import sys
from datetime import datetime, timezone


def addr(hexs, port):
    ip = ipaddress.IPv6Address(bytes.fromhex(hexs))
    if ip.ipv4_mapped:
        return f"{ip.ipv4_mapped}:{port}"
    return f"[{ip.compressed}]:{port}"


def ns(text):
    """2026-11-27T05:29:39.464927000Z -> ns since the epoch."""
    sec, frac = text.rstrip("Z").split(".")
    t = datetime.strptime(sec, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 10**9 + int(frac.ljust(9, "0"))


PROTO = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}
want = {}
for line in open(sys.argv[1]):
    f = json.loads(line)
    k = (f["proto"], f["a"], f["b"], f["vlan"], f["vlan_inner"])
    want[k] = (f["packets_ab"], f["packets_ba"], f["bytes_ab"], f["bytes_ba"], ns(f["first"]), ns(f["last"]))
got, seen, bad = {}, set(), 0
for line in open(sys.argv[2]):
    r = json.loads(line)
    at = (int(r["segment"]), int(r["segment_created_ns"]), int(r["seq"]))
    if at in seen:
        print(f"row (segment, seq) {at} twice")
        bad += 1
    seen.add(at)
    k = (PROTO.get(int(r["proto"]), f"proto{r['proto']}"), addr(r["a"], r["port_a"]), addr(r["b"], r["port_b"]),
         int(r["vlan"]), int(r["vlan_inner"]))
    v = [int(r[c]) for c in ("packets_ab", "packets_ba", "bytes_ab", "bytes_ba", "first_ns", "last_ns")]
    if k in got:
        o = got[k]
        v = [o[0] + v[0], o[1] + v[1], o[2] + v[2], o[3] + v[3], min(o[4], v[4]), max(o[5], v[5])]
    got[k] = tuple(v)
for k in sorted(set(want) | set(got), key=str):
    if want.get(k) != got.get(k):
        print(f"flow {k}: flows --json {want.get(k)}, ClickHouse {got.get(k)}")
        bad += 1
print(f"{len(want)} flows, {len(seen)} rows compared, {bad} differences")
sys.exit(1 if bad else 0)
