# flowscope flows: the filter, --top and --sort, against independent answers.
#
# For a filter on what does not change within a flow (addresses, ports,
# protocol, VLAN), the flows `flows FILTER` lists must be exactly the flows of
# an archive recorded from `tcpdump -r CAPTURE -w - FILTER`, with the same
# packet and byte counts.  For TCP flags (which do change) the same flows must
# be listed, with the counts of the whole flow; the same for directional
# primitives (src, dst).  --top N --sort K must be the
# first N of the full listing ordered by K with jq.
. "$(dirname "$0")/lib.sh"

# keys ARCHIVE [ARGS...]: one line per flow: endpoints, protocol, VLAN, counts.
keys() {
    local arch=$1
    shift
    fs flows --archive "$arch" --json "$@" |
        jq -r '[.proto,.a,.b,.vlan,.packets_ab,.packets_ba,.bytes_ab,.bytes_ba] | @tsv' | sort
}

# pairs ARCHIVE [ARGS...]: one line per flow: protocol, both endpoints as a set, VLAN.
pairs() {
    local arch=$1
    shift
    fs flows --archive "$arch" --json "$@" |
        jq -r '[.proto, ([.a,.b] | sort | join(" ")), .vlan] | @tsv' | sort
}

INVARIANT=("port 80" "host 10.99.1.10" "udp" "icmp" "ip6 and udp" "not port 53"
           "net 10.99.0.0/16 and tcp" "vlan 100 and port 8080" "port 7008 or port 7009"
           "ip proto 17 and not vlan")
# a flow is listed when a packet of either direction would match: the counts
# are those of the whole flow, so only the flows themselves are compared
SELECTING=("tcp[tcpflags] & tcp-rst != 0" "tcp[tcpflags] & tcp-syn != 0"
           "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0" "tcp dst port 80" "src host 10.99.2.53")

for cap in http dns_icmp mixed_vlan tcp_anomalies; do
    src="$PCAPS/$cap.pcap"
    arch="$TMP/$cap"
    fs record --archive "$arch" --read "$src" 2>/dev/null || fail "$cap: record failed"
    for f in "${INVARIANT[@]}"; do
        oracle "$src" "$TMP/o.pcap" "$f"
        rm -rf "$TMP/o"
        if [ "$(npackets "$TMP/o.pcap")" = 0 ]; then
            want=""
        else
            fs record --archive "$TMP/o" --read "$TMP/o.pcap" 2>/dev/null || fail "$cap: record oracle"
            want=$(keys "$TMP/o")
        fi
        got=$(keys "$arch" "$f")
        if [ "$got" = "$want" ]; then pass; else
            fail "$cap '$f': flows differ: $(diff <(echo "$want") <(echo "$got") | head -5)"
        fi
    done
    for f in "${SELECTING[@]}"; do
        # the flows with a matching packet (the oracle archive may see a flow
        # from its other end first: endpoints are compared as a set)
        oracle "$src" "$TMP/o.pcap" "$f"
        rm -rf "$TMP/o"
        want=""
        if [ "$(npackets "$TMP/o.pcap")" != 0 ]; then
            fs record --archive "$TMP/o" --read "$TMP/o.pcap" 2>/dev/null || fail "$cap: record oracle"
            want=$(pairs "$TMP/o")
        fi
        got=$(pairs "$TMP/$cap" "$f")
        if [ "$got" = "$want" ]; then pass; else
            fail "$cap '$f': flows differ: $(diff <(echo "$want") <(echo "$got") | head -5)"
        fi
    done
    for k in bytes packets duration; do
        case $k in
        bytes) e='.bytes_ab+.bytes_ba' ;;
        packets) e='.packets_ab+.packets_ba' ;;
        duration) e='.duration' ;;
        esac
        want=$(fs flows --archive "$arch" --json |
            jq -rs "sort_by([-($e), .first]) | .[:3][] | [.a,.b,.proto] | @tsv")
        got=$(fs flows --archive "$arch" --json --top 3 --sort $k | jq -r '[.a,.b,.proto] | @tsv')
        if [ "$got" = "$want" ]; then pass; else fail "$cap --top 3 --sort $k: '$got' != '$want'"; fi
    done
    # --top alone sorts by bytes; --sort alone keeps every flow
    a=$(fs flows --archive "$arch" --top 2 --json | jq -r .a)
    b=$(fs flows --archive "$arch" --top 2 --sort bytes --json | jq -r .a)
    [ "$a" = "$b" ] && pass || fail "$cap: --top without --sort is not by bytes"
    a=$(fs flows --archive "$arch" --json | wc -l)
    b=$(fs flows --archive "$arch" --json --sort packets | wc -l)
    [ "$a" = "$b" ] && pass || fail "$cap: --sort changed the number of flows ($a vs $b)"
done

# --from/--to: the flows active in the range (a packet in it, or first before
# and last after it); every flow with a packet in the window (editcap cuts
# the capture) is among them
src=$PCAPS/http.pcap
for w in "2026-11-27T05:29:34.530000000Z 2026-11-27T05:29:34.540000000Z" \
         "2026-11-27T05:29:36.750000000Z 2026-11-27T05:29:36.800000000Z" \
         "2026-11-27T05:29:30.000000000Z 2026-11-27T05:29:35.000000000Z"; do
    set -- $w
    want=$(fs flows --archive "$TMP/http" --json |
        jq -r --arg f "$1" --arg t "$2" 'select(.last >= $f and .first < $t) | [.proto,.a,.b] | @tsv')
    got=$(fs flows --archive "$TMP/http" --json --from "$1" --to "$2" | jq -r '[.proto,.a,.b] | @tsv')
    [ -n "$got" ] && [ "$got" = "$want" ] && pass || fail "flows --from $1 --to $2: '$got' != '$want'"
    editcap -F nsecpcap -A "${1%Z}" -B "${2%Z}" "$src" "$TMP/w.pcap" 2>/dev/null
    rm -rf "$TMP/w"
    fs record --archive "$TMP/w" --read "$TMP/w.pcap" 2>/dev/null
    inner=$(pairs "$TMP/w" | cut -f1,2)
    outer=$(fs flows --archive "$TMP/http" --json --from "$1" --to "$2" |
        jq -r '[.proto, ([.a,.b] | sort | join(" "))] | @tsv' | sort)
    [ -n "$inner" ] && [ -z "$(comm -23 <(echo "$inner") <(echo "$outer"))" ] && pass ||
        fail "flows --from $1 --to $2 misses a flow with packets in the window"
done

# wrong input: one line, exit 2
fs flows --archive "$TMP/http" 'port' 2>"$TMP/err" >/dev/null
[ $? = 2 ] && pass || fail "bad filter: exit status not 2"
one_line_error "$TMP/err" "^flowscope flows: invalid filter 'port'"
fs flows --archive "$TMP/http" --sort size 2>"$TMP/err" >/dev/null
[ $? = 2 ] && pass || fail "bad --sort: exit status not 2"
one_line_error "$TMP/err" "^flowscope flows: --sort 'size'"
fs flows --archive "$TMP/http" --top 0 2>"$TMP/err" >/dev/null
[ $? = 2 ] && pass || fail "--top 0: exit status not 2"
one_line_error "$TMP/err" "^flowscope flows: --top '0'"
finish
