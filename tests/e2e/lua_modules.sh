#!/bin/bash
# Lua modules (docs/modules.md, docs/examples/lua/), each checked against an
# independent answer: the built-in C module it mirrors, tshark, or tcpdump
# selecting exactly the flows that must have been archived.  Then faults in
# user code: refused at start with file:line, or counted at run time while
# the recorder goes on (and fatal with --strict-modules).
. "$(dirname "$0")/lib.sh"
: "${SRC:?SRC must name the source tree}"
EX=$SRC/docs/examples/lua
BAD=$SRC/tests/e2e/lua

# rec NAME SRC ARGS...: record SRC into $TMP/NAME; stdout in $TMP/NAME.out, stderr in $TMP/NAME.err
rec() {
    local name=$1 src=$2
    shift 2
    rm -rf "${TMP:?}/$name"
    fs record --read "$src" --archive "$TMP/$name" --qq-size 64M --stats-interval 0 "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err"
}

# report NAME MODULE: the module's counter line, its names without "module.N.":
# "packets=P flows=F triggers=T expired=E evicted=V bad_filters=B errors=R"
report() {
    local n
    n=$(module_index "$TMP/$1.err" record "$2") || return
    sed -n "s/^flowscope record: \(module\.$n\.packets=\)/\1/p" "$TMP/$1.err" | head -1 |
        sed "s/module\.$n\.//g"
}

# archived NAME SRC FILTERS: the archive holds exactly the packets of SRC that tcpdump
# selects with the filters (one a line, one flow each, tagged or not): every
# flow's packets are all there, and nothing else
archived() {
    local name=$1 src=$2 total=0 f
    fs query --archive "$TMP/$name" -w "$TMP/all.pcap" 2>/dev/null || { fail "$name: query"; return; }
    while read -r f; do
        [ -n "$f" ] || continue
        f="($f) or (vlan and $f)"
        oracle "$src" "$TMP/exp.pcap" "$f"
        fs query --archive "$TMP/$name" -w "$TMP/got.pcap" "$f" 2>/dev/null || fail "$name: query $f"
        if [ "$(npackets "$TMP/exp.pcap")" -gt 0 ] && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap"; then pass; else
            fail "$name: $f: archived $(npackets "$TMP/got.pcap") packets, tcpdump selects $(npackets "$TMP/exp.pcap")"
        fi
        total=$((total + $(npackets "$TMP/exp.pcap")))
    done <<<"$3"
    [ "$(npackets "$TMP/all.pcap")" = "$total" ] && pass ||
        fail "$name: archived $(npackets "$TMP/all.pcap") packets in all, the flows have $total"
}

# flow_filter PROTO A PA B PB: tcpdump filter for one flow of the oracles
flow_filter() {
    case $1 in
    6 | 17) echo "$( [ "$1" = 6 ] && echo tcp || echo udp) and host $2 and host $4 and port $3 and port $5" ;;
    1) echo "icmp and host $2 and host $4" ;;
    58) echo "ip6 protochain 58 and host $2 and host $4" ;;
    *) echo "ip proto $1 and host $2 and host $4" ;;
    esac
}

# ev_filters FILE: one filter per line of "EVENT PROTO A PA B PB" (gen --events-out) or "PROTO A PA B PB"
ev_filters() { awk 'NF == 6 {$1 = ""} {print}' "$1" | while read -r pr a pa b pb; do
    echo "$pr and host $a and port $pa and host $b and port $pb"; done; }

gen_pcap="$TMP/gen.pcap"
fs gen -w "$gen_pcap" --packets 20000 --flows 300 --udp 30 --icmp 5 --vlan 20 --seed 5 2>/dev/null ||
    fail "gen"

# ---- noop: the same flows and packets as the C noop, no error ----------------------------------
for p in "$PCAPS/http.pcap" "$PCAPS/dns_icmp.pcap" "$PCAPS/mixed_vlan.pcap" \
    "$PCAPS/tcp_anomalies.pcap" "$gen_pcap"; do
    rec noop_c "$p" --module noop
    rec noop_lua "$p" --module "$EX/noop.lua"
    c=$(report noop_c noop) l=$(report noop_lua "$EX/noop.lua")
    [ -n "$c" ] && [ "$c" = "$l" ] && grep -q "errors=0$" <<<"$l" && pass ||
        fail "noop on $(basename "$p"): C '$c', Lua '$l'"
done

# ---- live_statistician: the built-in stats module's output, and tshark's top flow ---------------
for p in "$PCAPS/http.pcap" "$PCAPS/tcp_anomalies.pcap" "$gen_pcap"; do
    for n in 1 2; do
        rec st_c "$p" --analyzers $n --module stats
        rec st_lua "$p" --analyzers $n --module "$EX/live_statistician.lua"
        if [ -s "$TMP/st_c.out" ] &&
            diff <(sed 's/, took .*//' "$TMP/st_c.out") <(sed 's/, took .*//' "$TMP/st_lua.out") >/dev/null; then
            pass
        else
            fail "live_statistician on $(basename "$p"), $n analyzers: output differs from stats"
        fi
    done
done
# immediate mode runs the same Lua module on the same packets: the same output as record's
for p in "$PCAPS/http.pcap" "$PCAPS/tcp_anomalies.pcap"; do
    rec st_lua "$p" --module "$EX/live_statistician.lua"
    fs monitor --read "$p" --module "$EX/live_statistician.lua" --stats-interval 0 \
        >"$TMP/st_mon.out" 2>"$TMP/st_mon.err"
    if [ $? = 0 ] && [ -s "$TMP/st_lua.out" ] &&
        diff <(sed 's/, took .*//' "$TMP/st_lua.out") <(sed 's/, took .*//' "$TMP/st_mon.out") >/dev/null; then
        pass
    else
        fail "monitor with live_statistician on $(basename "$p"): output differs from record's"
    fi
done
fs monitor --read "$PCAPS/tcp_anomalies.pcap" --module "$EX/ttl_analysis.lua" --stats-interval 0 \
    >"$TMP/ttl_mon.out" 2>"$TMP/ttl_mon.err" || fail "monitor with ttl_analysis: $(tail -2 "$TMP/ttl_mon.err")"
# (tshark finds flows whose TTL changes in this capture: a count of 0 is no answer)
if want=$(bash "$SRC/tests/e2e/tshark_flows.sh" ttl "$PCAPS/tcp_anomalies.pcap"); then
    n=$(grep -c . <<<"$want")
    [ "$n" -gt 0 ] && [ "$(grep -c ' trigger .*ttl_analysis.lua: ' "$TMP/ttl_mon.out")" = "$n" ] && pass ||
        fail "monitor with ttl_analysis: $(grep -c trigger "$TMP/ttl_mon.out") triggers, tshark: $n flows"
else
    fail "monitor with ttl_analysis: tshark_flows.sh failed on tcp_anomalies.pcap"
fi
# one window over the whole capture: the top flow has the most bytes (tshark -z conv,tcp)
rec st_one "$PCAPS/http.pcap" --module "$EX/live_statistician.lua:interval=3600,top=3"
got=$(grep -m1 '^1 ' "$TMP/st_one.out" | grep -o 'ip_a: [^,]*, ip_b: [^,]*, port_a: [0-9]*, port_b: [0-9]*')
conv=$(tshark_ok -r "$PCAPS/http.pcap" -q -z conv,tcp) || fail "live_statistician top flow: tshark -z conv,tcp failed"
want=$(awk '
    / <-> / { split($1, a, ":"); split($3, b, ":"); pa = a[length(a)]; pb = b[length(b)]
              sub(/:[0-9]+$/, "", $1); sub(/:[0-9]+$/, "", $3)
              bytes = $10; unit = $11; m = unit == "kB" ? 1e3 : unit == "MB" ? 1e6 : 1
              if (bytes * m > best) { best = bytes * m; top = $1 " " pa " " $3 " " pb } }
    END { print top }' <<<"$conv")
read -r A PA B PB <<<"$want"
[ -n "$PB" ] && grep -qE "ip_a: ($A|$B), ip_b: ($A|$B), port_a: ($PA|$PB), port_b: ($PA|$PB)" <<<"$got" && pass ||
    fail "live_statistician top flow '$got', tshark's '$want'"

# ---- ttl_analysis: exactly the flows whose TTL changes (tshark), archived completely (tcpdump) ----
for p in "$PCAPS/tcp_anomalies.pcap" "$PCAPS/mixed_vlan.pcap" "$PCAPS/http.pcap"; do
    want=$(bash "$SRC/tests/e2e/tshark_flows.sh" ttl "$p") ||
        { fail "ttl_analysis on $(basename "$p"): tshark_flows.sh failed"; continue; }
    n=$(grep -c . <<<"$want")
    rec ttl "$p" --capture triggered --module "$EX/ttl_analysis.lua"
    grep -q "triggers=$n .*errors=0$" <<<"$(report ttl "$EX/ttl_analysis.lua")" && pass ||
        fail "ttl_analysis on $(basename "$p"): $(report ttl "$EX/ttl_analysis.lua"), tshark finds $n flows"
    [ "$n" -gt 0 ] || continue
    archived ttl "$p" "$(while read -r pr a pa b pb; do flow_filter "$pr" "$a" "$pa" "$b" "$pb"; done <<<"$want")"
done
fs gen -w "$TMP/ttl.pcap" --packets 30000 --flows 200 --event ttl-change:6 \
    --events-out "$TMP/ttl.ev" --seed 11 2>/dev/null || fail "gen ttl"
rec ttl_gen "$TMP/ttl.pcap" --capture triggered --module "$EX/ttl_analysis.lua"
[ "$(module_counter "$TMP/ttl_gen.err" record "$EX/ttl_analysis.lua" triggers)" = 6 ] && pass || fail "ttl_analysis on gen: $(grep module "$TMP/ttl_gen.err")"
archived ttl_gen "$TMP/ttl.pcap" "$(ev_filters "$TMP/ttl.ev")"

# ---- quic_migration: the scripted migrations of a generated capture ----------------------------
python3 "$SRC/tests/e2e/quic_pcap.py" "$TMP/quic.pcap" "$TMP/quic.exp" || fail "quic_pcap.py"
rec quic "$TMP/quic.pcap" --capture triggered --module "$EX/quic_migration.lua"
grep -q "triggers=2 .*errors=0$" <<<"$(report quic "$EX/quic_migration.lua")" && pass || fail "quic_migration: $(grep module "$TMP/quic.err")"
[ "$(grep -c 'connection moved' "$TMP/quic.out")" = 2 ] && pass || fail "quic_migration printed: $(cat "$TMP/quic.out")"
archived quic "$TMP/quic.pcap" "$(ev_filters "$TMP/quic.exp")"

# no QUIC in the shared captures nor in gen's traffic: nothing to trigger, nothing failing
for p in "$PCAPS/http.pcap" "$PCAPS/dns_icmp.pcap" "$PCAPS/mixed_vlan.pcap" \
    "$PCAPS/tcp_anomalies.pcap" "$gen_pcap"; do
    rec quic0 "$p" --module "$EX/quic_migration.lua"
    grep -q "triggers=0 .*errors=0$" <<<"$(report quic0 "$EX/quic_migration.lua")" && pass ||
        fail "quic_migration on $(basename "$p"): $(grep module "$TMP/quic0.err")"
done

# ---- example_user_module: custom key, sampling, its own dump filter, expiry ---------------------
M="$EX/example_user_module.lua"
rec sample "$PCAPS/http.pcap" --capture triggered --module "$M:rate=0.5,seed=3"
n=$(grep -c '^example_user_module: sampled' "$TMP/sample.out")
[ "$(module_counter "$TMP/sample.err" record "$M:rate=0.5,seed=3" triggers)" = "$n" ] && [ "$n" -gt 0 ] && pass ||
    fail "example_user_module: $n sampled, $(grep module "$TMP/sample.err")"
archived sample "$PCAPS/http.pcap" "$(sed -n 's/^example_user_module: sampled //p' "$TMP/sample.out")"
# rate 1: every host pair and protocol (tshark) triggers
for p in "$PCAPS/http.pcap" "$PCAPS/dns_icmp.pcap" "$gen_pcap"; do
    rec sample_all "$p" --capture triggered --module "$M:rate=1"
    pairs=$(bash "$SRC/tests/e2e/tshark_flows.sh" pairs "$p") ||
        { fail "example_user_module rate=1 on $(basename "$p"): tshark_flows.sh failed"; continue; }
    pairs=$(grep -c . <<<"$pairs")
    [ "$pairs" -gt 0 ] && grep -q "flows=[0-9]* triggers=$pairs .*errors=0$" <<<"$(report sample_all "$M:rate=1")" && pass ||
        fail "example_user_module rate=1 on $(basename "$p"): $(grep module "$TMP/sample_all.err"), tshark: $pairs host pairs"
done
# expiry: a flow silent for idle is purged; the finalizer's purged counts add up to the report's
fs gen -w "$TMP/slow.pcap" --packets 3000 --flows 40 --rate 100 --seed 9 2>/dev/null || fail "gen slow"
rec expire "$TMP/slow.pcap" --module "$M:rate=0,idle=2,interval=1"
purged=$(awk '/^example_user_module: flows/ {s += $NF} END {print s + 0}' "$TMP/expire.out")
expired=$(module_counter "$TMP/expire.err" record "$M:rate=0,idle=2,interval=1" expired)
[ "$purged" -gt 0 ] && [ "$purged" = "$expired" ] && pass ||
    fail "example_user_module expiry: finalizers purged $purged, report expired $expired"

# ---- no allocation per packet once compiled: ~100 k packets a pass (the first ones warm up) -----
fs gen -w "$TMP/alloc.pcap" --packets 1000000 --flows 2000 --rate 100000 --seed 3 2>/dev/null ||
    fail "gen alloc"
rec alloc "$TMP/alloc.pcap" --module "$BAD/alloc_probe.lua"
worst=$(awk '/^alloc_probe:/ {n++; if (n > 2 && $2 > w) w = $2} END {print n + 0, w + 0}' "$TMP/alloc.err")
read -r passes bytes <<<"$worst"
[ "$passes" -ge 8 ] && [ "$bytes" -lt 65536 ] && pass ||
    fail "alloc_probe: $passes passes, up to $bytes bytes a pass (a cdata per packet would be megabytes)"

# ---- several flow key types (the reference's tuple keys: IPv4 and IPv6 5-tuples, as seen) ------
# oracle: tshark's unidirectional 5-tuples and packets with a TCP/UDP header (ICMP errors
# quote one: left out; later fragments carry none)
for f in dns_icmp http tcp_anomalies; do
    P=$PCAPS/$f.pcap
    v4=$(tshark_ok -r "$P" -o ip.defragment:FALSE -Y 'ip && !icmp && (tcp || udp) && ip.frag_offset == 0' \
        -T fields -e ip.src -e ip.dst -e ip.proto -e tcp.srcport -e tcp.dstport -e udp.srcport \
        -e udp.dstport) || { fail "tuple_keys on $f: tshark (IPv4) failed"; continue; }
    v6=$(tshark_ok -r "$P" -Y 'ipv6 && !icmpv6 && (tcp || udp)' -T fields -e ipv6.src -e ipv6.dst \
        -e ipv6.nxt -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport) ||
        { fail "tuple_keys on $f: tshark (IPv6) failed"; continue; }
    want="tuple_keys: v4 flows $(sort -u <<<"$v4" | grep -c .) packets $(grep -c . <<<"$v4"); v6 flows $(sort -u <<<"$v6" | grep -c .) packets $(grep -c . <<<"$v6")"
    rec tk_$f "$P" --capture triggered --module "$BAD/tuple_keys.lua"
    got=$(grep '^tuple_keys:' "$TMP/tk_$f.out")
    [ "$got" = "$want" ] && pass || fail "tuple_keys on $f: '$got', tshark: '$want'"
    # each flow to port 53 triggered and dumped by the filter built from its own key type
    fs query --archive "$TMP/tk_$f" -w "$TMP/tk.pcap" 2>/dev/null
    tcpdump -Z root -r "$P" --time-stamp-precision=nano -w "$TMP/tk.exp" '(tcp or udp) and dst port 53' 2>/dev/null
    cmp -s "$TMP/tk.pcap" "$TMP/tk.exp" && pass || fail "tuple_keys on $f: the archive is not tcpdump's 'dst port 53'"
done
printf 'local ffi = require("ffi")\nffi.cdef[[struct k1 { uint8_t b[40]; }; struct k2 { uint8_t b[4]; };]]\nreturn {stateType = "struct k2", flowKeys = {"struct k1", "struct k2"},\n  extractFlowKey = function() return false end, handlePacket = function() end,\n  buildPacketFilter = function() return "" end}\n' >"$TMP/bigkey.lua"
rec bigkey "$PCAPS/http.pcap" --module "$TMP/bigkey.lua"
[ $? = 2 ] && one_line_error "$TMP/bigkey.err" "bigkey\.lua:[0-9]+: module\.flowKeys\[1\] is 40 bytes, at most 39" && pass ||
    fail "a key type too big for several: $(cat "$TMP/bigkey.err")"

# ---- faults in user code ----------------------------------------------------------------------
rec bad "$PCAPS/http.pcap" --module "$BAD/syntax_error.lua"
[ $? -ne 0 ] && one_line_error "$TMP/bad.err" "syntax_error\.lua:5: .*expected" && [ ! -e "$TMP/bad" ] && pass ||
    fail "syntax error: $(cat "$TMP/bad.err")"
rec bad2 "$PCAPS/http.pcap" --module "$BAD/missing_field.lua"
[ $? -ne 0 ] && one_line_error "$TMP/bad2.err" "missing_field\.lua:[0-9]+: module\.handlePacket is missing" && pass ||
    fail "missing field: $(cat "$TMP/bad2.err")"
for n in 1 2; do
    rec raise "$PCAPS/tcp_anomalies.pcap" --analyzers $n --module "$BAD/raise_every_100.lua"
    [ $? -eq 0 ] && pass || fail "raise: record failed with $n analyzers"
    pk=$(report raise "$BAD/raise_every_100.lua" | grep -o 'packets=[0-9]*' | grep -o '[0-9]*')
    er=$(report raise "$BAD/raise_every_100.lua" | grep -o 'errors=[0-9]*' | grep -o '[0-9]*')
    # one analyzer sees every packet here (a file is one queue)
    [ -n "$pk" ] && [ "$er" = $((pk / 100)) ] && pass || fail "raise: packets $pk, errors $er"
    held=$(awk '/^raise_every_100:/ {s += $5} END {print s + 0}' "$TMP/raise.out")
    [ "$held" = $((pk - er)) ] && pass || fail "raise: states hold $held packets, want $((pk - er))"
    [ "$(grep -c 'deliberate error$' "$TMP/raise.err")" -le 6 ] && grep -q 'stack traceback' "$TMP/raise.err" &&
        pass || fail "raise: the log is not rate-limited: $(grep -c 'deliberate' "$TMP/raise.err") lines"
    fs query --archive "$TMP/raise" -w "$TMP/raise.pcap" 2>/dev/null
    [ "$(npackets "$TMP/raise.pcap")" = "$(npackets "$PCAPS/tcp_anomalies.pcap")" ] &&
        pass || fail "raise: the recorder did not archive everything"
done
rec strict "$PCAPS/tcp_anomalies.pcap" --strict-modules --module "$BAD/raise_every_100.lua"
[ $? -eq 1 ] && grep -q 'fatal with --strict-modules: .*packet 100: deliberate error' "$TMP/strict.err" &&
    grep -q 'raise_every_100.lua:18:' "$TMP/strict.err" && pass || fail "--strict-modules: $(head -3 "$TMP/strict.err")"
# ... and ends the run in order: the report, a closed archive that verifies, one line saying why
grep -q 'ended: module error (--strict-modules)' "$TMP/strict.err" &&
    tail -1 "$TMP/strict.err" | grep -q '^flowscope record: stopped: a module failed with --strict-modules' &&
    pass || fail "--strict-modules: report or last line: $(tail -2 "$TMP/strict.err")"
[ "$(grep -c 'fatal with --strict-modules' "$TMP/strict.err")" = 1 ] && pass ||
    fail "--strict-modules: the fatal error is reported $(grep -c 'fatal with' "$TMP/strict.err") times"
ls "$TMP"/strict/segments/*.open >/dev/null 2>&1 && fail "--strict-modules left an open segment" || pass
fs index verify --archive "$TMP/strict" >/dev/null 2>&1 && pass || fail "--strict-modules: the archive does not verify"
fs monitor --read "$PCAPS/tcp_anomalies.pcap" --strict-modules --module "$BAD/raise_every_100.lua" \
    --stats-interval 0 >/dev/null 2>"$TMP/mstrict.err"
[ $? -eq 1 ] && grep -q 'fatal with --strict-modules' "$TMP/mstrict.err" &&
    grep -q 'ended: module error (--strict-modules)' "$TMP/mstrict.err" && pass ||
    fail "monitor --strict-modules: $(tail -2 "$TMP/mstrict.err")"
finish
