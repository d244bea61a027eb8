# Community ID (issue 17, item 4; docs/cli.md "Community ID") against Wireshark's own
# implementation (tshark --enable-protocol communityid, field communityid) on the shared
# captures:
#   - flows: every TCP/UDP/SCTP flow's community_id is the one tshark gives its packets
#     (fragments reassembled by neither: tshark -o ip.defragment:FALSE; non-first fragments,
#     a flow of their own with ports 0 in flowscope, left out), text column = JSON key,
#     ICMP flows null;
#   - query --community-id: for every ID tshark prints for a TCP/UDP/SCTP packet, the
#     answer is byte for byte tcpdump's for 'host A and host B and port P and port Q and
#     PROTO' (with any VLAN tags: the same with 'vlan and' and 'vlan and vlan and' before
#     it); for every ICMP/ICMPv6 ID, the packets tshark gives that ID; with a FILTER, the
#     and of both; an unknown ID: empty capture, exit 0, one line; a malformed one: exit 2;
#   - the API (flowscope serve, plain HTTP on loopback): flows --remote prints the same
#     bytes as locally (table and JSON), query --remote --community-id too, community_id
#     that is not an ID is a 400.
. "$(dirname "$0")/lib.sh"

SPID=
at_exit '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null'

# tshark_ids CAPTURE: "proto<TAB>endpoint endpoint<TAB>ID" for its TCP/UDP/SCTP packets
# (endpoints as flows prints them, sorted), one line per flow, sorted
tshark_ids() {
    tshark -r "$1" --enable-protocol communityid -o ip.defragment:FALSE \
        -o ipv6.defragment:FALSE \
        -Y '(tcp or udp or sctp) and not icmp and not icmpv6 and not ip.frag_offset > 0 and
            not ipv6.fraghdr.offset > 0' \
        -T fields -E separator=/t -e ip.src -e ipv6.src -e tcp.srcport -e udp.srcport \
        -e sctp.srcport -e ip.dst -e ipv6.dst -e tcp.dstport -e udp.dstport -e sctp.dstport \
        -e communityid 2>/dev/null |
        awk -F'\t' '{
            s = $1 $2; d = $6 $7; sp = $3 $4 $5; dp = $8 $9 $10
            p = $3 != "" ? "tcp" : $4 != "" ? "udp" : "sctp"
            if (s ~ /:/) { s = "[" s "]"; d = "[" d "]" }
            x = s ":" sp; y = d ":" dp
            if (x > y) { t = x; x = y; y = t }
            print p "\t" x " " y "\t" $11
        }' | sort -u
}

# flows_ids ARCHIVE: the same from flows --json (flows with ports, not ICMP)
flows_ids() {
    fs flows --archive "$1" --json |
        jq -r 'select(.proto == "tcp" or .proto == "udp" or .proto == "sctp") |
               select((.a | endswith(":0")) | not) |
               [.proto, ([.a, .b] | sort | join(" ")), .community_id] | @tsv' | sort -u
}

# tuple_filter PROTO "A:P B:Q" [AND]: the oracle's filter for one 5-tuple (and AND),
# untagged or behind one or two VLAN tags (libpcap's vlan moves the offsets of all that
# follows it, so each branch holds the whole expression)
tuple_filter() {
    local proto=$1 a=${2%% *} b=${2##* } f
    f="$proto and host $(host_of "$a") and host $(host_of "$b") and port ${a##*:} and port ${b##*:}"
    [ -z "${3:-}" ] || f="$f and $3"
    echo "($f) or (vlan and $f) or (vlan and vlan and $f)"
}
host_of() { local h=${1%:*}; h=${h#[}; echo "${h%]}"; }

# same_packets GOT WANT: the two captures hold the same packets (time, bytes)
same_packets() {
    cmp -s <(tcpdump -r "$1" -nn -tt -x --time-stamp-precision=nano 2>/dev/null) \
        <(tcpdump -r "$2" -nn -tt -x --time-stamp-precision=nano 2>/dev/null)
}

for cap in http dns_icmp mixed_vlan tcp_anomalies; do
    src="$PCAPS/$cap.pcap"
    A="$TMP/$cap"
    fs record --archive "$A" --read "$src" 2>/dev/null || fail "$cap: record failed"

    # ---- flows against tshark ----
    tshark_ids "$src" >"$TMP/$cap.tshark"
    flows_ids "$A" >"$TMP/$cap.flows"
    if [ -s "$TMP/$cap.tshark" ] && cmp -s "$TMP/$cap.tshark" "$TMP/$cap.flows"; then pass; else
        fail "$cap: flows' Community IDs differ from tshark's: $(diff "$TMP/$cap.tshark" "$TMP/$cap.flows" | head -6)"
    fi
    n=$(fs flows --archive "$A" --json | jq -r 'select(.proto == "icmp" or .proto == "icmp6") |
                                                 select(.community_id != null)' | wc -l)
    [ "$n" = 0 ] && pass || fail "$cap: $n ICMP flows with a community_id"
    # the table's column (before the free-text trigger) is the JSON key, flow by flow
    fs flows --archive "$A" | awk 'NR > 1 {print $12}' >"$TMP/$cap.col"
    fs flows --archive "$A" --json | jq -r '.community_id // "-"' >"$TMP/$cap.key"
    if [ "$(fs flows --archive "$A" | head -1 | awk '{print $12, $13}')" = "community_id trigger" ] &&
        cmp -s "$TMP/$cap.col" "$TMP/$cap.key"; then pass; else
        fail "$cap: the table's community_id column differs from the JSON: $(diff "$TMP/$cap.col" "$TMP/$cap.key" | head -4)"
    fi

    # ---- query --community-id: the tuple's packets (tcpdump), for every tshark ID ----
    # (a flow libpcap cannot see, UDP behind an IPv6 fragment header, is empty for both)
    nonempty=0
    while IFS=$'\t' read -r proto pair id; do
        fs query --archive "$A" --community-id "$id" -w "$TMP/got.pcap" 2>"$TMP/q.err" ||
            { fail "$cap: query --community-id $id: $(cat "$TMP/q.err")"; continue; }
        oracle "$src" "$TMP/want.pcap" "$(tuple_filter "$proto" "$pair")"
        [ "$(npackets "$TMP/want.pcap")" = 0 ] || nonempty=$((nonempty + 1))
        if cmp -s "$TMP/got.pcap" "$TMP/want.pcap"; then pass; else
            fail "$cap: query --community-id $id ($proto $pair): $(npackets "$TMP/got.pcap") packets, tcpdump $(npackets "$TMP/want.pcap")"
        fi
    done <"$TMP/$cap.tshark"
    [ "$nonempty" -ge $(($(wc -l <"$TMP/$cap.tshark") - 3)) ] && pass ||
        fail "$cap: only $nonempty of the IDs' flows have packets"

    # ---- ICMP: the packets tshark gives that ID (not behind IPv6 extension headers, which
    # libpcap's icmp6 does not see; fragments not reassembled: the first has the header) ----
    nodefrag=(-o ip.defragment:FALSE -o ipv6.defragment:FALSE)
    tshark -r "$src" --enable-protocol communityid "${nodefrag[@]}" \
        -Y '(icmp or icmpv6) and not ipv6.hopopts and not ipv6.fraghdr' \
        -T fields -e communityid 2>/dev/null | sort -u >"$TMP/$cap.icmp"
    while read -r id; do
        fs query --archive "$A" --community-id "$id" -w "$TMP/got.pcap" 2>/dev/null
        tshark -r "$src" --enable-protocol communityid "${nodefrag[@]}" \
            -Y "communityid == \"$id\"" -F nsecpcap -w "$TMP/want.pcap" 2>/dev/null
        if [ "$(npackets "$TMP/want.pcap")" -gt 0 ] && same_packets "$TMP/got.pcap" "$TMP/want.pcap"; then
            pass
        else
            fail "$cap: ICMP query --community-id $id: $(npackets "$TMP/got.pcap") packets, tshark $(npackets "$TMP/want.pcap")"
        fi
    done <"$TMP/$cap.icmp"
done

A="$TMP/tcp_anomalies"
src="$PCAPS/tcp_anomalies.pcap"
[ "$(wc -l <"$TMP/dns_icmp.icmp")" -ge 3 ] && pass || fail "dns_icmp: too few ICMP IDs to test"

# ---- with a FILTER: the and of both ----
IFS=$'\t' read -r proto pair id < <(head -1 "$TMP/tcp_anomalies.tshark")
fs query --archive "$A" --community-id "$id" -w "$TMP/got.pcap" 'tcp[tcpflags] & tcp-ack != 0' 2>/dev/null
oracle "$src" "$TMP/want.pcap" "$(tuple_filter "$proto" "$pair" 'tcp[tcpflags] & tcp-ack != 0')"
if [ "$(npackets "$TMP/want.pcap")" -gt 0 ] && cmp -s "$TMP/got.pcap" "$TMP/want.pcap"; then pass; else
    fail "query --community-id $id FILTER: $(npackets "$TMP/got.pcap") packets, tcpdump $(npackets "$TMP/want.pcap")"
fi

# ---- no such flow; not an ID ----
none="1:AAAAAAAAAAAAAAAAAAAAAAAAAAA="
fs query --archive "$A" --community-id "$none" -w "$TMP/none.pcap" 2>"$TMP/none.err"
rc=$?
[ $rc = 0 ] && [ "$(npackets "$TMP/none.pcap")" = 0 ] && pass ||
    fail "unknown ID: exit $rc, $(npackets "$TMP/none.pcap") packets"
one_line_error "$TMP/none.err" "^flowscope query: no flow with Community ID $none in the time range"
# an ID out of the time range: no flow either
fs query --archive "$A" --community-id "$id" --to 1970-01-02T00:00:00Z -w "$TMP/none.pcap" \
    2>"$TMP/none.err"
one_line_error "$TMP/none.err" "^flowscope query: no flow with Community ID"
for bad in "1:AAAA" "2:AAAAAAAAAAAAAAAAAAAAAAAAAAA=" "c026f7386ef200559e95a53276ed03fb5db908b3"; do
    fs query --archive "$A" --community-id "$bad" -w "$TMP/bad.pcap" 2>"$TMP/bad.err"
    rc=$?
    [ $rc = 2 ] && [ ! -e "$TMP/bad.pcap" ] && pass || fail "--community-id '$bad': exit $rc"
    one_line_error "$TMP/bad.err" "^flowscope query: --community-id '$bad': expected a Community ID"
done

# ---- the API: flows --remote and query --remote as locally ----
out="$TMP/serve.out"
"$FLOWSCOPE" serve --archive "$TMP/mixed_vlan" --listen 127.0.0.1:0 >"$out" 2>"$TMP/serve.err" &
SPID=$!
if wait_for "$out" '^flowscope serve: listening on http://127.0.0.1:[0-9]+$' "$SPID" 100; then
    URL=$(sed -n 's/^flowscope serve: listening on //p' "$out")
    for json in "" --json; do
        fs flows --archive "$TMP/mixed_vlan" $json >"$TMP/local" 2>/dev/null
        fs flows --remote "$URL" $json >"$TMP/remote" 2>"$TMP/remote.err"
        if grep -q '1:' "$TMP/local" && cmp -s "$TMP/local" "$TMP/remote"; then pass; else
            fail "flows --remote $json differs: $(diff "$TMP/local" "$TMP/remote" | head -4) $(cat "$TMP/remote.err")"
        fi
    done
    IFS=$'\t' read -r proto pair id < <(grep -m1 '^udp' "$TMP/mixed_vlan.tshark")
    fs query --archive "$TMP/mixed_vlan" --community-id "$id" -w "$TMP/local.pcap" 2>/dev/null
    fs query --remote "$URL" --community-id "$id" -w "$TMP/remote.pcap" 2>"$TMP/remote.err"
    if [ "$(npackets "$TMP/local.pcap")" -gt 0 ] && cmp -s "$TMP/local.pcap" "$TMP/remote.pcap"; then
        pass
    else
        fail "query --remote --community-id $id differs: $(cat "$TMP/remote.err")"
    fi
    code=$(curl -s -o "$TMP/bad.json" -w '%{http_code}' -G "$URL/api/v1/query" \
        --data-urlencode 'community_id=1:AAAA')
    [ "$code" = 400 ] && grep -q 'invalid Community ID' "$TMP/bad.json" && pass ||
        fail "community_id=1:AAAA: HTTP $code $(cat "$TMP/bad.json")"
    kill -TERM "$SPID"
    wait "$SPID"
    SPID=
else
    fail "serve did not start: $(cat "$TMP/serve.err")"
fi

finish
