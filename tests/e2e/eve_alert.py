#!/usr/bin/env python3
"""An IDS alert line for the flow of the first packet a Wireshark display filter
selects in a capture, the packet's fields read with tshark (addresses, ports,
protocol, VLAN ids, time, and its Community ID from tshark's communityid
dissector).  Written by Python's json module in the layout the detectors
document: Suricata's EVE ("Eve JSON Format", docs.suricata.io: the common
section, then the alert object) or Zeek's notice.log as JSON (flat "id.*"
names, ts in epoch seconds).

  eve_alert.py CAPTURE DISPLAY-FILTER SID SEVERITY SIGNATURE [eve|cid|zeek]

eve: the 5-tuple, VLAN ids and community_id; cid: community_id alone (no
src_ip/dest_ip); zeek: a notice (SIGNATURE is its note, SID and SEVERITY unused).
"""
import json
import subprocess
import sys

FIELDS = ["frame.time_epoch", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport",
          "udp.srcport", "tcp.dstport", "udp.dstport", "ip.proto", "ipv6.nxt",
          "ieee8021ad.id", "vlan.id", "communityid"]
PROTO = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "IPv6-ICMP", 132: "SCTP"}


def first_packet(capture, display_filter):
    cmd = ["tshark", "-r", capture, "--enable-protocol", "communityid", "-Y", display_filter,
           "-T", "fields", "-E", "separator=/t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    if not out:
        sys.exit(f"eve_alert.py: no packet for '{display_filter}' in {capture}")
    return dict(zip(FIELDS, out.split("\n")[0].split("\t")))


def main():
    capture, display_filter, sid, severity, signature = sys.argv[1:6]
    form = sys.argv[6] if len(sys.argv) > 6 else "eve"
    p = first_packet(capture, display_filter)
    sec, frac = p["frame.time_epoch"].split(".")
    frac = frac.ljust(9, "0")[:9]
    proto = int(p["ip.proto"] or p["ipv6.nxt"].split(",")[-1])
    src, dst = p["ip.src"] or p["ipv6.src"], p["ip.dst"] or p["ipv6.dst"]
    sport = int(p["tcp.srcport"] or p["udp.srcport"] or 0)
    dport = int(p["tcp.dstport"] or p["udp.dstport"] or 0)
    if form == "zeek":
        print(json.dumps({"ts": float(f"{sec}.{frac[:6]}"), "uid": "CHhAvVGS1DHFjwGM9",
                          "id.orig_h": src, "id.orig_p": sport, "id.resp_h": dst,
                          "id.resp_p": dport, "proto": PROTO[proto].lower(),
                          "note": signature, "msg": "seen by the test",
                          "actions": ["Notice::ACTION_LOG"], "suppress_for": 3600.0},
                         separators=(",", ":")))
        return
    import datetime
    t = datetime.datetime.fromtimestamp(int(sec), datetime.timezone.utc)
    ev = {"timestamp": t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06d+0000" % (int(frac) // 1000),
          "flow_id": 1245789630547000 + int(sid) % 10007, "in_iface": "veth0",
          "event_type": "alert"}
    vlans = [int(v) for v in (p["ieee8021ad.id"] + "," + p["vlan.id"]).split(",") if v]
    if vlans:
        ev["vlan"] = vlans
    if form != "cid":
        ev.update({"src_ip": src, "src_port": sport, "dest_ip": dst, "dest_port": dport,
                   "proto": PROTO[proto]})
    ev["community_id"] = p["communityid"]
    ev["alert"] = {"action": "allowed", "gid": 1, "signature_id": int(sid), "rev": 1,
                   "signature": signature, "category": "A Network Trojan was detected",
                   "severity": int(severity)}
    print(json.dumps(ev, separators=(",", ":")))


main()
