#!/bin/bash
# Modules given bad values or misbehaving, under record and monitor:
#  * a built-in module's numeric argument that is no number of its kind
#    (inf, nan, 1e30, beyond 64 bits, a fraction of a count): exit 2 and one
#    line naming the module and the argument, no archive created;
#  * a C (or Lua) module whose build_filter returns an expression libpcap cannot
#    compile: its flows are archived by their keys (tcpdump's "tcp" is the
#    oracle, the module triggering every TCP flow), counted as bad_filters,
#    and one warning line names the module, the filter and libpcap's error;
#  * a C module whose handle_packet returns -1: errors counted, no trigger.
# The C module is tests/e2e/fault_module.c ($FAULT_MODULE), its behaviour
# chosen by its argument.
. "$(dirname "$0")/lib.sh"
: "${FAULT_MODULE:?FAULT_MODULE must name the fault_module.so test module}"
SRC=$PCAPS/http.pcap

# ---- numeric arguments: strict, one line, exit 2 ----------------------------------------------
for cmd in record monitor; do
    for spec in stats:top=inf stats:idle=nan threshold:bytes=1e30 stats:interval=-1s \
        threshold:packets=1.5 threshold:rate=18446744073709551616; do
        arg=${spec#*:}
        a=$TMP/arch-$cmd
        rm -rf "$a"
        if [ "$cmd" = record ]; then
            fs record --read "$SRC" --archive "$a" --stats-interval 0 --module "$spec" >/dev/null 2>"$TMP/err"
        else
            fs monitor --read "$SRC" --stats-interval 0 --module "$spec" >/dev/null 2>"$TMP/err"
        fi
        rc=$?
        [ $rc -eq 2 ] && pass || fail "$cmd --module $spec: exit $rc, want 2: $(head -c 300 "$TMP/err")"
        one_line_error "$TMP/err" "^flowscope $cmd: module ${spec%%:*}: bad argument '$arg': expected a (duration|whole count) such as" ||
            true
        [ ! -e "$a" ] && pass || fail "$cmd --module $spec: archive $a created"
    done
done

# module_field ERRFILE CMD SPEC FIELD: counter module.N.FIELD of the module SPEC (lib.sh)
module_field() { module_counter "$@"; }

# ---- build_filter gives "tcp and (((": the flows archived by their keys, counted, said once ----
fs gen -w "$TMP/gen.pcap" --packets 20000 --flows 300 --udp 30 --icmp 5 --seed 5 2>/dev/null || fail "gen"
M=$FAULT_MODULE
for src in "$PCAPS/dns_icmp.pcap" "$TMP/gen.pcap"; do
    name=$(basename "$src" .pcap)
    a=$TMP/bf-$name
    fs record --read "$src" --archive "$a" --qq-size 64M --stats-interval 0 --capture triggered \
        --module "$M:bad_filter" >/dev/null 2>"$TMP/bf.err"
    rc=$?
    [ $rc -eq 0 ] && pass || fail "bad_filter on $name: exit $rc: $(tail -2 "$TMP/bf.err")"
    # the module triggers every TCP flow: the archive must hold exactly tcpdump's "tcp"
    oracle "$src" "$TMP/exp.pcap" tcp
    fs query --archive "$a" -w "$TMP/got.pcap" 2>/dev/null || fail "bad_filter on $name: query"
    cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
        fail "bad_filter on $name: archived $(npackets "$TMP/got.pcap") packets, tcpdump selects $(npackets "$TMP/exp.pcap") (tcp)"
    # one warning for the module, naming it, the filter and libpcap's error
    n=$(grep -c "build_filter" "$TMP/bf.err")
    w=$(grep "build_filter" "$TMP/bf.err")
    [ "$n" = 1 ] && grep -qF "flowscope: module $M: build_filter for flow tcp " <<<"$w" &&
        grep -qF "invalid filter 'tcp and ((('" <<<"$w" && grep -q "syntax error" <<<"$w" && pass ||
        fail "bad_filter on $name: want one warning line, got $n: $(head -c 400 <<<"$w")"
    # counted: every trigger (one per TCP flow, as tshark counts them) had a bad filter
    flows=$(tshark -r "$src" -q -z conv,tcp 2>/dev/null | grep -c "<->")
    t=$(module_field "$TMP/bf.err" record "$M:bad_filter" triggers)
    b=$(module_field "$TMP/bf.err" record "$M:bad_filter" bad_filters)
    [ "$t" = "$flows" ] && [ "$b" = "$flows" ] && pass ||
        fail "bad_filter on $name: triggers '$t', bad_filters '$b', tshark's TCP flows $flows"
done
# a Lua module's buildPacketFilter that does not compile: the same, by the same engine path
cat >"$TMP/badf.lua" <<'EOF'
local ffi = require("ffi")
ffi.cdef [[ struct badf_state { uint8_t unused; }; ]]
local m = {stateType = "struct badf_state", defaultState = {}}
function m.handlePacket(key, state, pkt, first) return pkt.pkt.proto == 6 end
function m.buildPacketFilter(key) return "tcp and (((" end
return m
EOF
src=$PCAPS/dns_icmp.pcap
fs record --read "$src" --archive "$TMP/bf-lua" --qq-size 64M --stats-interval 0 --capture triggered \
    --module "$TMP/badf.lua" >/dev/null 2>"$TMP/bf.err" || fail "bad Lua filter: $(tail -2 "$TMP/bf.err")"
oracle "$src" "$TMP/exp.pcap" tcp
fs query --archive "$TMP/bf-lua" -w "$TMP/got.pcap" 2>/dev/null || fail "bad Lua filter: query"
b=$(module_field "$TMP/bf.err" record "$TMP/badf.lua" bad_filters)
cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && [ "$b" = 8 ] &&
    [ "$(grep -c "module $TMP/badf.lua: buildPacketFilter for flow" "$TMP/bf.err")" = 1 ] && pass ||
    fail "bad Lua filter: archived $(npackets "$TMP/got.pcap") packets (tcpdump: $(npackets "$TMP/exp.pcap")), bad_filters '$b': $(head -c 300 "$TMP/bf.err")"
# a Lua module with its own key type (no 5-tuple) whose buildPacketFilter does not compile,
# or gives no filter: its key cannot select packets, so nothing is archived, no rule is added
# by a misread key, and the one line says so with the key as the module's type shows it
for f in 'return "ip and ((("' 'return ""'; do
    sed "s|return (\"%s proto %d\"):format(key.family == 4 and \"ip\" or \"ip6\", key.proto)|$f|" \
        "$(dirname "$0")/lua/proto_key.lua" >"$TMP/ownkey.lua"
    grep -qF "$f" "$TMP/ownkey.lua" || fail "own key: sed did not change proto_key.lua"
    rm -rf "$TMP/ok-lua"
    fs record --read "$src" --archive "$TMP/ok-lua" --qq-size 64M --stats-interval 0 \
        --capture triggered --module "$TMP/ownkey.lua" >/dev/null 2>"$TMP/ok.err" ||
        fail "own key ($f): $(tail -2 "$TMP/ok.err")"
    b=$(module_field "$TMP/ok.err" record "$TMP/ownkey.lua" bad_filters)
    t=$(module_field "$TMP/ok.err" record "$TMP/ownkey.lua" triggers)
    fs query --archive "$TMP/ok-lua" -w "$TMP/ok.pcap" 2>/dev/null
    n=$(npackets "$TMP/ok.pcap")
    w=$(grep "module $TMP/ownkey.lua: buildPacketFilter for flow struct pk_key [0-9a-f]*: .*a key of the module's own type selects no packet: such flows are not archived" "$TMP/ok.err")
    [ "$b" = 6 ] && [ "$t" = 6 ] && [ "$n" = 0 ] && [ "$(wc -l <<<"$w")" = 1 ] && [ -n "$w" ] &&
        [ "$(counter "$TMP/ok.err" record dumper.rules_added)" = 0 ] && pass ||
        fail "own key ($f): triggers '$t', bad_filters '$b', archived '$n': $(grep -v ' \(ingest\|qq\|run\|QQ\)' "$TMP/ok.err" | head -c 600)"
done
# monitor: the same count and one warning
fs monitor --read "$PCAPS/dns_icmp.pcap" --stats-interval 0 --module "$M:bad_filter" \
    >"$TMP/mon.out" 2>"$TMP/mon.err"
rc=$?
t=$(module_field "$TMP/mon.err" monitor "$M:bad_filter" triggers)
b=$(module_field "$TMP/mon.err" monitor "$M:bad_filter" bad_filters)
[ $rc -eq 0 ] && [ "$(grep -c build_filter "$TMP/mon.err")" = 1 ] && [ "$t" = 8 ] && [ "$b" = 8 ] &&
    [ "$(grep -c " trigger " "$TMP/mon.out")" = 8 ] && pass ||
    fail "monitor bad_filter: exit $rc, triggers '$t', bad_filters '$b': $(head -c 400 "$TMP/mon.err")"

# ---- handle_packet returns -1: an error, counted, never a trigger ----------------------------
fs record --read "$SRC" --archive "$TMP/err-arch" --qq-size 64M --stats-interval 0 --capture triggered \
    --module "$M:error" >/dev/null 2>"$TMP/er.err"
rc=$?
p=$(module_field "$TMP/er.err" record "$M:error" packets)
t=$(module_field "$TMP/er.err" record "$M:error" triggers)
e=$(module_field "$TMP/er.err" record "$M:error" errors)
[ $rc -eq 0 ] && [ -n "$p" ] && [ "$p" -gt 0 ] && [ "$t" = 0 ] && [ "$e" = "$p" ] && pass ||
    fail "handle_packet -1 (record): exit $rc, packets '$p', triggers '$t', errors '$e'"
[ "$(counter "$TMP/er.err" record dumper.rules_added)" = 0 ] && pass || fail "handle_packet -1: $(grep dumper "$TMP/er.err")"
[ "$(npackets <(fs query --archive "$TMP/err-arch" -w - 2>/dev/null))" = 0 ] && pass ||
    fail "handle_packet -1: the archive holds packets"
fs monitor --read "$SRC" --stats-interval 0 --module "$M:error" >"$TMP/mon.out" 2>"$TMP/mon.err"
rc=$?
p=$(module_field "$TMP/mon.err" monitor "$M:error" packets)
t=$(module_field "$TMP/mon.err" monitor "$M:error" triggers)
e=$(module_field "$TMP/mon.err" monitor "$M:error" errors)
[ $rc -eq 0 ] && [ -n "$p" ] && [ "$p" -gt 0 ] && [ "$t" = 0 ] && [ "$e" = "$p" ] &&
    ! grep -q " trigger " "$TMP/mon.out" && pass ||
    fail "handle_packet -1 (monitor): exit $rc, packets '$p', triggers '$t', errors '$e'"

finish
