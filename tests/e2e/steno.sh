#!/bin/bash
# Stenographer queries, translated (query_steno_translate, through the
# steno_translate helper) and run by `flowscope query`, return exactly what
# `tcpdump -r` returns for an equivalent filter written by hand (and, for
# before/after, what editcap -A/-B keeps): the same bytes.  A query the
# translation refuses gives one line naming the column.
#
# usage: steno.sh STENO_TRANSLATE
. "$(dirname "$0")/lib.sh"
ST=$1

# ns_to_epoch NS: "S.NNNNNNNNN", as --from/--to and editcap take it
ns_to_epoch() { printf '%d.%09d' $(($1 / 1000000000)) $(($1 % 1000000000)); }

# epoch_ns FILE K: packet K's time in ns since 1970
epoch_ns() {
    local t
    t=$(tcpdump -tt -nn --time-stamp-precision=nano -r "$1" -c "$2" 2>/dev/null | tail -1 | cut -d' ' -f1)
    echo "${t%.*}${t#*.}"
}

# rfc3339_ns NS: RFC 3339 UTC with nanoseconds
rfc3339_ns() { printf '%s.%09dZ' "$(date -u -d "@$(($1 / 1000000000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000000000)); }

# check SRC ARCHIVE NOW STENO_QUERY HAND_FILTER [FROM_NS TO_NS]: the translated query's
# answer equals tcpdump's for HAND_FILTER on SRC cut to [FROM, TO) (0 = open).
check() {
    local src=$1 arch=$2 now=$3 q=$4 hand=$5 from=${6:-0} to=${7:-0} t
    "$ST" "$now" "$q" >"$TMP/tr" 2>"$TMP/tr.err" || { fail "'$q': refused: $(cat "$TMP/tr.err")"; return; }
    mapfile -t t <"$TMP/tr"
    [ "${t[1]}" = "$from" ] && [ "${t[2]}" = "$to" ] ||
        { fail "'$q': range ${t[1]}..${t[2]}, expected $from..$to"; return; }
    local qargs=() in=$src
    [ "$from" = 0 ] || qargs+=(--from "$(ns_to_epoch "$from")")
    [ "$to" = 0 ] || qargs+=(--to "$(ns_to_epoch "$to")")
    [ -z "${t[0]}" ] || qargs+=("${t[0]}")
    if [ "$from" != 0 ] || [ "$to" != 0 ]; then
        local cut=()
        [ "$from" = 0 ] || cut+=(-A "$(ns_to_epoch "$from")")
        [ "$to" = 0 ] || cut+=(-B "$(ns_to_epoch "$to")")
        editcap -F nsecpcap "${cut[@]}" "$src" "$TMP/win.pcap" 2>/dev/null || { fail "editcap"; return; }
        in=$TMP/win.pcap
    fi
    local hargs=()
    [ -z "$hand" ] || hargs=("$hand")
    oracle "$in" "$TMP/exp.pcap" "${hargs[@]}" || { fail "'$q': tcpdump refuses '$hand'"; return; }
    fs query --archive "$arch" -w "$TMP/got.pcap" "${qargs[@]}" 2>"$TMP/q.err" ||
        { fail "'$q' -> '${t[0]}': flowscope query failed: $(cat "$TMP/q.err")"; return; }
    if cmp -s "$TMP/exp.pcap" "$TMP/got.pcap"; then pass; else
        fail "$(basename "$src"): '$q' -> '${t[0]}' differs from tcpdump '$hand' ($(npackets "$TMP/exp.pcap") vs $(npackets "$TMP/got.pcap") packets)"
    fi
}

QUERIES=(
    # Stenographer query  ;;  the same written by hand for tcpdump
    "host 10.99.1.80 ;; ip host 10.99.1.80"
    "host fd00:99:2::53 ;; ip6 host fd00:99:2::53"
    "host 10.99.2.10 and host 10.99.2.53 ;; ip host 10.99.2.10 and ip host 10.99.2.53"
    "net 10.99.0.0/16 ;; ip net 10.99"
    "net 10.99.2.77/24 ;; ip net 10.99.2.0/24"
    "net 10.99.2.7 mask 255.255.255.0 ;; ip net 10.99.2.0 mask 255.255.255.0"
    "net fd00:99::/32 ;; ip6 net fd00:99::/32"
    "port 80 ;; tcp port 80 or udp port 80"
    "port 53 ;; tcp port 53 or udp port 53"
    "ip proto 17 ;; ip proto 17 or ip6 proto 17"
    "ip proto 58 ;; ip6 proto 58"
    "tcp ;; ip proto 6 or ip6 proto 6"
    "udp ;; ip proto 17 or ip6 proto 17"
    "icmp ;; ip proto 1"
    "udp and port 53 or tcp and port 80 ;; (udp and (tcp port 53 or udp port 53) or tcp) and (tcp port 80 or udp port 80)"
    "(udp && port 53) || (tcp and port 80) ;; (udp and udp port 53) or (tcp and tcp port 80)"
    "icmp or (host 10.99.2.10 and (tcp or udp)) ;; ip proto 1 or (ip host 10.99.2.10 and (tcp or udp))"
    "host 1.2.3.4 ;; ip host 1.2.3.4"
)

for src in "$PCAPS"/{http,dns_icmp,mixed_vlan,tcp_anomalies}.pcap; do
    arch=$TMP/a-$(basename "$src" .pcap)
    fs record --read "$src" --archive "$arch" --stats-interval 0 2>"$TMP/rec.err" ||
        { fail "record $src: $(tail -3 "$TMP/rec.err")"; continue; }
    for qh in "${QUERIES[@]}"; do
        check "$src" "$arch" 0 "${qh%% ;; *}" "${qh#* ;; }"
    done
    # before/after: packet times as RFC 3339, and as "N ago" from a fixed now
    n=$(npackets "$src")
    t1=$(epoch_ns "$src" $((n / 4 + 1)))
    t2=$(epoch_ns "$src" $((n * 3 / 4 + 1)))
    check "$src" "$arch" 0 "after $(rfc3339_ns "$t1") and before $(rfc3339_ns "$t2")" "" "$t1" "$t2"
    check "$src" "$arch" 0 "tcp and (after $(rfc3339_ns "$t1") and port 80)" \
        "(ip proto 6 or ip6 proto 6) and (tcp port 80 or udp port 80)" "$t1" 0
    now=$((t2 + 5 * 60 * 1000000000))
    check "$src" "$arch" "$now" "udp or icmp and before 5m ago" "udp or ip proto 1" 0 "$t2"
    now=$((t1 + 2 * 3600 * 1000000000))
    check "$src" "$arch" "$now" "after 2h ago" "" "$t1" 0
done

# refused: one line, with the column
NOW=1796212800000000000 # 2026-12-02T12:00:00Z
if "$ST" $NOW "port 80 or after 2h ago" >/dev/null 2>"$TMP/e"; then fail "time under 'or' accepted"; else
    one_line_error "$TMP/e" "column 12: before/after under 'or'"
fi
if "$ST" $NOW "host 10.99.1.80 and port 99999" >/dev/null 2>"$TMP/e"; then fail "port 99999 accepted"; else
    one_line_error "$TMP/e" "column 26: expected a port number"
fi
finish
