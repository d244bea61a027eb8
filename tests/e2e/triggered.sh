#!/bin/bash
# Triggered capture, with tcpdump as the oracle: record --capture triggered
# must archive exactly the packets of the flows a trigger fired on — every
# one of them, from the flow's first packet (time travel: the QQ still holds
# them when the trigger fires) — and nothing else.
. "$(dirname "$0")/lib.sh"

# flows_filter FILE FILTER: a tcpdump filter selecting the TCP flows (both
# directions) of the packets that match FILTER
flows_filter() {
    local sep="" out=""
    while read -r l; do
        [[ $l =~ IP6?\ ([0-9a-f:.]+)\.([0-9]+)\ \>\ ([0-9a-f:.]+)\.([0-9]+): ]] || continue
        out+="$sep(host ${BASH_REMATCH[1]} and host ${BASH_REMATCH[3]} and tcp port ${BASH_REMATCH[2]} and tcp port ${BASH_REMATCH[4]})"
        sep=" or "
    done < <(timeout 60 tcpdump -nn -r "$1" "$2" 2>/dev/null)
    echo "$out"
}

# triggered NAME SRC EXPECTED-FILTER RECORD-ARGS...: the archive must equal tcpdump's
# selection of EXPECTED-FILTER from SRC
triggered() {
    local name=$1 src=$2 want=$3
    shift 3
    local a=$TMP/$name
    fs record --read "$src" --archive "$a" --qq-size 64M --stats-interval 0 "$@" 2>"$TMP/err" ||
        { fail "$name: record failed: $(tail -2 "$TMP/err")"; return; }
    [ -n "$want" ] || { fail "$name: the oracle found no flow"; return; }
    oracle "$src" "$TMP/exp.pcap" "$want"
    fs query --archive "$a" -w "$TMP/got.pcap" 2>/dev/null || fail "$name: query"
    if cmp -s "$TMP/exp.pcap" "$TMP/got.pcap"; then pass; else
        fail "$name: archived $(npackets "$TMP/got.pcap") packets, tcpdump selects $(npackets "$TMP/exp.pcap")"
    fi
}

SRC=$PCAPS/tcp_anomalies.pcap
RST='tcp[tcpflags] & tcp-rst != 0'
want=$(flows_filter "$SRC" "$RST")
triggered rst "$SRC" "$want" --capture triggered --trigger "$RST"
[ "$(module_counter "$TMP/err" record "trigger:$RST" triggers)" = 11 ] && pass || fail "rst: expected 11 triggers: $(grep module "$TMP/err")"

# the same flows are tagged in the index in full capture too
fs record --read "$SRC" --archive "$TMP/all" --qq-size 64M --stats-interval 0 --trigger "$RST" 2>/dev/null ||
    fail "full capture with a trigger"
n=$(fs flows --archive "$TMP/all" --triggered 2>/dev/null | grep -c "trigger:tcp\[tcpflags\]")
[ "$n" = 11 ] && pass || fail "flows --triggered lists $n flows, expected 11"
[ "$(npackets <(fs query --archive "$TMP/all" -w - 2>/dev/null))" = "$(npackets "$SRC")" ] && pass ||
    fail "full capture with a trigger must still archive everything"

# several triggers: the union of their flows
SYN_TO_8080='tcp[tcpflags] & tcp-syn != 0 and dst port 8080'
want=$(flows_filter "$SRC" "($RST) or ($SYN_TO_8080)")
triggered two "$SRC" "$want" --capture triggered --trigger "$RST" --trigger "$SYN_TO_8080"

# events_filter EVENTS-FILE: a tcpdump filter for the flows `flowscope gen --events-out` listed
events_filter() {
    local sep="" out="" ev proto a pa b pb
    while read -r ev proto a pa b pb; do
        out+="$sep($proto and host $a and port $pa and host $b and port $pb)"
        sep=" or "
    done <"$1"
    echo "$out"
}

# ttl and threshold on generated traffic whose events are known
fs gen -w "$TMP/ttl.pcap" --packets 30000 --flows 200 --event ttl-change:6 \
    --events-out "$TMP/ttl.ev" --seed 11 2>/dev/null || fail "gen ttl"
[ "$(wc -l <"$TMP/ttl.ev")" = 6 ] && pass || fail "gen listed $(wc -l <"$TMP/ttl.ev") ttl events"
triggered ttl "$TMP/ttl.pcap" "$(events_filter "$TMP/ttl.ev")" --capture triggered --module ttl
[ "$(module_counter "$TMP/err" record ttl triggers)" = 6 ] && pass || fail "ttl: $(grep 'module\.' "$TMP/err")"
fs gen -w "$TMP/big.pcap" --packets 40000 --flows 100 --event big:3:1M \
    --events-out "$TMP/big.ev" --seed 12 2>/dev/null || fail "gen big"
triggered threshold "$TMP/big.pcap" "$(events_filter "$TMP/big.ev")" --capture triggered \
    --module threshold:bytes=700k
[ "$(module_counter "$TMP/err" record threshold:bytes=700k triggers)" = 3 ] && pass || fail "threshold: $(grep 'module\.' "$TMP/err")"

# an external module (docs/examples/module) that dumps its flows by a BPF filter of its own
if [ -n "${EXAMPLE_MODULE:-}" ]; then
    SYN8080='(tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst port 8080) or (ip6 and ip6[6] == 6 and ip6[53] & 0x12 == 2 and ip6[42:2] == 8080)'
    want=$(flows_filter "$SRC" "$SYN8080")
    triggered module "$SRC" "$want" --capture triggered --module "$EXAMPLE_MODULE:port=8080"
    [ "$(module_counter "$TMP/err" record "$EXAMPLE_MODULE:port=8080" triggers)" -gt 0 ] && pass || fail "the module never triggered"
else
    fail "EXAMPLE_MODULE is not set"
fi
finish
