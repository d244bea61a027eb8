# flowscope flows answers exactly (issue 13, items 6 and 7).
#
# FILTER: a flow is listed exactly when one of its packets matches.  Oracle:
# the flows of an archive recorded from `tcpdump -r CAPTURE -w - FILTER`
# (listed without a filter) are the flows `flows FILTER` lists on the archive
# of CAPTURE, compared as (protocol, endpoints, outer and inner VLAN tag: the
# archive's flow key, so tenants B 300/42 and C 300/43 are apart); and each line listed
# carries the whole flow's counts (it is a line of the unfiltered listing).
# Filters whose answer a flow record cannot give (flags that change within a
# flow, inner VLAN tags, fragments) and easy ones (host, port) alike.
#
# --from/--to: a flow is listed when its last packet is not before --from and
# its first is before --to, over the whole flow, however the archive was split
# into segments: tcp_anomalies recorded with 2 dumpers (segments interleave in
# time), with 1, and in three recordings cut at the window's ends (editcap) give
# the same lines, and the flows are those tshark's packet times give by the rule.
. "$(dirname "$0")/lib.sh"

# pairs ARCHIVE [ARGS...]: one line per flow: protocol, both endpoints as a set, VLAN tags.
pairs() {
    local arch=$1
    shift
    fs flows --archive "$arch" --json "$@" 2>/dev/null |
        jq -r '[.proto, ([.a,.b] | sort | join(" ")), .vlan, .vlan_inner] | @tsv' | sort
}

python3 "$(dirname "$0")/tenants_pcap.py" "$TMP/tenants.pcap" || fail "tenants_pcap.py failed"

# capture|filter pairs; the counts after '#' are what tcpdump matched when the issue was written
CASES=(
    "http|tcp[tcpflags] == tcp-syn"                      # 12 pure SYNs in 12 flows
    "http|tcp[tcpflags] & tcp-syn != 0 and not port 80"
    "http|port 80"
    "http|host 10.99.1.10"
    "tcp_anomalies|tcp[tcpflags] & tcp-ack == 0"         # 15 flows
    "tcp_anomalies|host 10.99.3.1"
    "tcp_anomalies|tcp and port 80"
    "tenants|vlan 300 and vlan 42"                       # 16 packets
    "tenants|vlan and vlan and tcp"                      # 5 packets
    "tenants|vlan 42"
    "tenants|vlan 300 and vlan 43 and udp"
    "mixed_vlan|vlan and ip[6:2] & 0x1fff != 0"          # 2 flows
    "mixed_vlan|vlan 100 and port 8080"
)

for cap in http tcp_anomalies mixed_vlan tenants; do
    src="$PCAPS/$cap.pcap"
    [ "$cap" = tenants ] && src="$TMP/tenants.pcap"
    fs record --archive "$TMP/$cap" --read "$src" 2>/dev/null || fail "$cap: record failed"
    fs flows --archive "$TMP/$cap" --json | sort >"$TMP/$cap.all"
done

for c in "${CASES[@]}"; do
    cap=${c%%|*} f=${c#*|}
    src="$PCAPS/$cap.pcap"
    [ "$cap" = tenants ] && src="$TMP/tenants.pcap"
    oracle "$src" "$TMP/o.pcap" "$f" || fail "$cap '$f': tcpdump failed"
    rm -rf "$TMP/o"
    want=""
    if [ "$(npackets "$TMP/o.pcap")" != 0 ]; then
        fs record --archive "$TMP/o" --read "$TMP/o.pcap" 2>/dev/null || fail "$cap: record oracle"
        want=$(pairs "$TMP/o")
    fi
    [ -n "$want" ] || fail "$cap '$f': tcpdump matches nothing: the case tests nothing"
    got=$(pairs "$TMP/$cap" "$f")
    if [ "$got" = "$want" ]; then pass; else
        fail "$cap '$f': $(echo "$got" | grep -c .) flows listed, tcpdump's packets are in $(echo "$want" | grep -c .): $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | head -3 | tr '\n' ' ')"
    fi
    # the counts are the whole flow's
    extra=$(comm -23 <(fs flows --archive "$TMP/$cap" --json "$f" 2>/dev/null | sort) "$TMP/$cap.all")
    [ -z "$extra" ] && pass || fail "$cap '$f': lines not in the unfiltered listing: $(echo "$extra" | head -2)"
done

# A filter libpcap cannot compile for the archive's link type fails as tcpdump does.
fs flows --archive "$TMP/http" 'port' >/dev/null 2>"$TMP/err"
[ $? = 2 ] && pass || fail "bad filter: exit status not 2"

# ---- --from/--to over whole flows -------------------------------------------------
FROM=1795757400 TO=1795757405
src=$PCAPS/tcp_anomalies.pcap
fs record --archive "$TMP/d2" --dumpers 2 --read "$src" 2>/dev/null || fail "record --dumpers 2"
fs record --archive "$TMP/d1" --dumpers 1 --read "$src" 2>/dev/null || fail "record --dumpers 1"
# and split for certain: three recordings of the packets before, inside and after the window
# (editcap cuts by time), so a flow with packets on both sides of the window and none in it
# has records only in segments that do not overlap it
editcap -B "$FROM" "$src" "$TMP/w0.pcap" && editcap -A "$FROM" -B "$TO" "$src" "$TMP/w1.pcap" &&
    editcap -A "$TO" "$src" "$TMP/w2.pcap" || fail "editcap"
[ $(($(npackets "$TMP/w0.pcap") + $(npackets "$TMP/w1.pcap") + $(npackets "$TMP/w2.pcap"))) = "$(npackets "$src")" ] &&
    pass || fail "editcap's three parts do not add up to the capture"
for w in w0 w1 w2; do
    fs record --archive "$TMP/d3" --dumpers 1 --read "$TMP/$w.pcap" 2>/dev/null || fail "record $w.pcap"
done
nseg=$(fs info --archive "$TMP/d3" | awk '/^segments:/ {print $2}')
[ "${nseg:-0}" -ge 3 ] && pass || fail "three recordings made $nseg segments"
nseg=$(fs info --archive "$TMP/d2" | awk '/^segments:/ {print $2}')
note "--dumpers 2 made $nseg segments"

# the rule over tshark's packet times, per flow (5-tuple; ports 0 for protocols
# without them and non-first fragments; the outer header of ICMP errors)
want=$(tshark -r "$src" -o ip.defragment:FALSE -o ipv6.defragment:FALSE -T fields -E separator=';' \
    -e frame.time_epoch -e frame.protocols -e ip.proto -e ipv6.nxt -e ip.src -e ipv6.src \
    -e ip.dst -e ipv6.dst -e tcp.srcport -e udp.srcport -e tcp.dstport -e udp.dstport \
    -e ip.frag_offset -e ipv6.fraghdr.offset 2>/dev/null |
awk -F';' -v from="$FROM.000000000" -v to="$TO.000000000" '
function first(s) { sub(/,.*/, "", s); return s }
function pick(a, b) { return first(a) != "" ? first(a) : first(b) }
function ep(addr, port) { return (addr ~ /:/ ? "[" addr "]" : addr) ":" port }
BEGIN { num["tcp"] = 6; num["udp"] = 17; num["icmp"] = 1; num["icmpv6"] = 58; num["sctp"] = 132
        name[6] = "tcp"; name[17] = "udp"; name[1] = "icmp"; name[58] = "icmp6"; name[132] = "sctp" }
{
    src = pick($5, $6); dst = pick($7, $8)
    if (src == "") next
    proto = pick($3, $4)
    n = split($2, layer, ":")
    for (i = 1; i <= n; i++) if (layer[i] in num) { proto = num[layer[i]]; break }
    sp = pick($9, $10); dp = pick($11, $12)
    later = (first($13) != "" && first($13) != 0) || (first($14) != "" && first($14) != 0)
    if (sp == "" || later || (proto != 6 && proto != 17 && proto != 132)) { sp = 0; dp = 0 }
    a = ep(src, sp); b = ep(dst, dp)
    k = (proto in name ? name[proto] : "proto" proto) "\t" (a < b ? a " " b : b " " a)
    if (!(k in lo) || $1 < lo[k]) lo[k] = $1
    if (!(k in hi) || $1 > hi[k]) hi[k] = $1
}
END { for (k in lo) if (hi[k] >= from && lo[k] < to) print k }' | sort)
[ -n "$want" ] || fail "tshark found no flow in the window"
for d in d3 d2 d1; do
    got=$(fs flows --archive "$TMP/$d" --json --from "$FROM" --to "$TO" |
        jq -r '[.proto, ([.a,.b] | sort | join(" "))] | @tsv' | sort)
    if [ "$got" = "$want" ]; then pass; else
        fail "$d: flows --from $FROM --to $TO: $(echo "$got" | grep -c .) flows, the rule gives $(echo "$want" | grep -c .): $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | head -3 | tr '\n' ' ')"
    fi
done
# both archives: the same lines, counts included (each flow merged whole)
a=$(fs flows --archive "$TMP/d2" --json --from "$FROM" --to "$TO")
b=$(fs flows --archive "$TMP/d1" --json --from "$FROM" --to "$TO")
[ "$a" = "$b" ] && pass || fail "--dumpers 2 and 1 list different lines: $(diff <(echo "$b") <(echo "$a") | head -3)"
c=$(fs flows --archive "$TMP/d3" --json --from "$FROM" --to "$TO")
[ "$c" = "$b" ] && pass || fail "three recordings and one list different lines: $(diff <(echo "$b") <(echo "$c") | head -3)"
finish
