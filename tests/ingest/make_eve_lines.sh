#!/usr/bin/env bash
# Regenerates tests/ingest/data/eve_alerts.tsv: Suricata EVE alert lines for
# real flows of the shared captures, each beside what test_eve must read from
# it.  The flow's first packet is read with tshark (addresses, ports,
# protocol, VLAN ids, ICMP type/code, time, and its Community ID from
# tshark's own communityid dissector); the line is written by Python's json
# module in the layout of Suricata's EVE documentation (docs.suricata.io,
# "Eve JSON Format": common section, then the alert object).  Committed:
# test_eve does not run tshark.
#
#   tests/ingest/make_eve_lines.sh [../shared/pcaps]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PCAPS=$(realpath "${1:-$HERE/../../../shared/pcaps}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 "$HERE/../e2e/tenants_pcap.py" "$TMP/tenants.pcap" >/dev/null

# NAME CAPTURE DISPLAY-FILTER ZONE: the first packet the filter selects
flow() {
    local f
    f=$(tshark -r "$2" --enable-protocol communityid -Y "$3" -T fields -E separator=/t \
        -e frame.time_epoch -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e tcp.srcport \
        -e udp.srcport -e tcp.dstport -e udp.dstport -e ip.proto -e ipv6.nxt -e ieee8021ad.id -e vlan.id \
        -e icmp.type -e icmp.code -e icmpv6.type -e icmpv6.code -e communityid 2>/dev/null | awk 'NR == 1')
    [ -n "$f" ] || { echo "make_eve_lines.sh: $1: no packet for '$3' in $2" >&2; exit 1; }
    printf '%s\t%s\t%s\n' "$1" "$4" "$f"
}
{
    flow tcp4 "$PCAPS/http.pcap" "ip.src==10.99.1.10 && tcp.srcport==34952 && tcp.dstport==80" +0000
    flow tcp6 "$PCAPS/http.pcap" "ipv6.src==fd00:99:1::10 && tcp.srcport==48192" +0100
    flow udp4 "$PCAPS/dns_icmp.pcap" "ip.src==10.99.2.10 && udp.srcport==44581" +0000
    flow icmp4 "$PCAPS/dns_icmp.pcap" "icmp.type==8" -0500
    flow icmp6 "$PCAPS/dns_icmp.pcap" "icmpv6.type==128" +0000
    flow vlan1 "$PCAPS/mixed_vlan.pcap" "ip.src==10.99.100.1 && tcp.srcport==43972" +0000
    flow qinq "$TMP/tenants.pcap" "ieee8021ad.id==300 && vlan.id==42 && tcp.flags==0x002" +0000
} >"$TMP/flows.tsv"

python3 - "$TMP/flows.tsv" >"$HERE/data/eve_alerts.tsv" <<'PY'
import datetime, json, sys
PROTO = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "IPv6-ICMP"}
SIG = {"tcp4": (2010935, "ET POLICY Suspicious inbound to MSSQL port 1433", 2),
       "tcp6": (2013028, "ET POLICY curl User-Agent Outbound", 3),
       "udp4": (2027863, "ET INFO Observed DNS Query to .test TLD", 3),
       "icmp4": (2100366, "GPL ICMP_INFO PING *NIX", 3),
       "icmp6": (2200100, "SURICATA ICMPv6 unknown type — \u00e9cho", 3),
       "vlan1": (2019401, "ET POLICY Vulnerable Java Version 1.8.x Detected", 1),
       "qinq": (9000001, "LOCAL tenant B web access", 2)}
print("# name\tfamily\tsrc\tsport\tdst\tdport\tproto\tn_vlan\tvlan0\tvlan1\ticmp_type\t"
      "icmp_code\tts_ns\tcommunity_id\teve_line")
for n, line in enumerate(open(sys.argv[1])):
    (name, zone, epoch, s4, s6, d4, d6, tsp, usp, tdp, udp, p4, p6, svlan, vlan, it, ic, i6t, i6c,
     cid) = line.rstrip("\n").split("\t")
    # IPv6: tshark's ip.proto is empty, ipv6.nxt may list extension headers: last one
    proto = int(p4 or p6.split(",")[-1])
    sport, dport = int(tsp or usp or 0), int(tdp or udp or 0)
    vlans = [int(v) for v in (svlan + "," + vlan).split(",") if v]  # outer first
    itype, icode = (it or i6t or "-1"), (ic or i6c or "-1")
    sec, frac = epoch.split(".")
    ts_ns = int(sec) * 10**9 + int(frac.ljust(9, "0")[:9])
    # Suricata: "%Y-%m-%dT%H:%M:%S.%06u%z" in its local time zone
    off = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[3:5]))
    tz = datetime.timezone(datetime.timedelta(minutes=off))
    t = datetime.datetime.fromtimestamp(int(sec), tz)
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06d" % (int(frac.ljust(9, "0")[:9]) // 1000) + zone
    ev = {"timestamp": stamp, "flow_id": 1245789630547000 + n * 7919, "in_iface": "veth0",
          "event_type": "alert"}
    if vlans:
        ev["vlan"] = vlans
    src, dst = s4 or s6, d4 or d6
    ev["src_ip"] = src
    if proto in (6, 17, 132):
        ev["src_port"] = sport
    elif name == "icmp6":
        ev["src_port"] = 0   # Suricata 6 writes 0 for ICMP; 7 leaves it out (icmp4)
    ev["dest_ip"] = dst
    if proto in (6, 17, 132):
        ev["dest_port"] = dport
    elif name == "icmp6":
        ev["dest_port"] = 0
    ev["proto"] = PROTO[proto]
    if proto in (1, 58):
        ev["icmp_type"], ev["icmp_code"] = int(itype), int(icode)
    ev["pkt_src"] = "wire/pcap"
    if name != "udp4":   # community-id: yes in suricata.yaml, but for one line
        ev["community_id"] = cid
    sid, sig, sev = SIG[name]
    ev["alert"] = {"action": "allowed", "gid": 1, "signature_id": sid, "rev": 4,
                   "signature": sig, "category": "Potentially Bad Traffic", "severity": sev,
                   "metadata": {"created_at": ["2010_07_30"], "updated_at": ["2019_07_26"]}}
    ev["direction"] = "to_server"
    ev["flow"] = {"pkts_toserver": 1, "pkts_toclient": 0, "bytes_toserver": 74,
                  "bytes_toclient": 0, "start": stamp, "src_ip": src, "dest_ip": dst}
    if proto in (6, 17, 132):
        ev["flow"]["src_port"], ev["flow"]["dest_port"] = sport, dport
    eve = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
    fam = 6 if s6 else 4
    v0 = vlans[0] if vlans else 0
    v1 = vlans[1] if len(vlans) > 1 else 0
    if proto not in (6, 17, 132):
        sport = dport = 0
    print("\t".join(str(x) for x in (name, fam, src, sport, dst, dport, proto, len(vlans), v0, v1,
                                     itype, icode, ts_ns, cid if name != "udp4" else "-", eve)))
PY
echo "make_eve_lines.sh: $(grep -vc '^#' "$HERE/data/eve_alerts.tsv") lines in $HERE/data/eve_alerts.tsv"
