#!/bin/bash
# tshark_flows.sh ttl|pairs PCAP: flows computed by tshark alone (no flowscope code)
#   ttl    one line "PROTO A PORTA B PORTB" (canonical order) per flow in which
#          a packet's TTL differs from the first packet's of the same direction
#   pairs  one line "PROTO A B" per host pair and protocol
#   flows  one line "PROTO A PORTA B PORTB" (canonical order) per flow
# A flow is the IP 5-tuple; ports are 0 for protocols without them and for
# non-first fragments; for ICMP errors the outer header counts (tshark lists
# the outer fields first).
# Exit 1, with tshark's complaint on stderr, if tshark fails or says anything but
# its root warning: no answer then, never an empty one.
mode=$1
fields=$(mktemp) err=$(mktemp)
trap 'rm -f "$fields" "$err"' EXIT
timeout 300 tshark -r "$2" -o ip.defragment:FALSE -o ipv6.defragment:FALSE -T fields -E separator=';' \
    -e frame.protocols -e ip.proto -e ipv6.nxt -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst \
    -e tcp.srcport -e udp.srcport -e tcp.dstport -e udp.dstport -e ip.ttl -e ipv6.hlim \
    -e ip.frag_offset -e ipv6.fraghdr.offset -e ipv6.fraghdr.nxt >"$fields" 2>"$err"
rc=$?
if [ $rc -ne 0 ] || grep -qv '^Running as user "root"' "$err"; then
    echo "tshark_flows.sh: tshark -r $2: exit $rc: $(grep -v '^Running as user "root"' "$err" | head -c 300)" >&2
    exit 1
fi
awk -F';' -v mode="$mode" '
function first(s) { sub(/,.*/, "", s); return s }
function pick(a, b) { return first(a) != "" ? first(a) : first(b) }
BEGIN { num["tcp"] = 6; num["udp"] = 17; num["icmp"] = 1; num["icmpv6"] = 58; num["sctp"] = 132 }
{
    src = pick($4, $5); dst = pick($6, $7); ttl = pick($12, $13)
    if (src == "" || ttl == "") next
    proto = first($16) != "" ? first($16) : pick($2, $3)
    n = split($1, layer, ":")
    for (i = 1; i <= n; i++) if (layer[i] in num) { proto = num[layer[i]]; break }
    sp = pick($8, $9); dp = pick($10, $11)
    later = (first($14) != "" && first($14) != 0) || (first($15) != "" && first($15) != 0)
    if (sp == "" || later || (proto != 6 && proto != 17 && proto != 132)) { sp = 0; dp = 0 }
    if (mode == "pairs") {
        p = proto " " (src < dst ? src " " dst : dst " " src)
        if (!(p in seen)) { seen[p] = 1; print p }
        next
    }
    d = proto " " src " " sp " " dst " " dp
    f = (src < dst || (src == dst && sp + 0 <= dp + 0)) ? d : proto " " dst " " dp " " src " " sp
    if (mode == "flows") {
        if (!(f in seen)) { seen[f] = 1; print f }
        next
    }
    if (!(d in ref)) ref[d] = ttl
    else if (ref[d] != ttl && !(f in hit)) { hit[f] = 1; print f }
}' "$fields"
