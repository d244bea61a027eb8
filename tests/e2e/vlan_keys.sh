#!/bin/bash
# VLAN-aware flow keys for modules and triggers, with tcpdump as the oracle, on
# tenants_pcap.py's capture: three tenants on identical addresses and ports, told apart
# only by VLAN tags (A: 802.1Q 42, B: QinQ 300/42, C: QinQ 300/43).  Under the default
# key (outer and inner tag) each tenant's flow is a flow of its own: --trigger, a C
# module (stats, the example .so), a Lua module (tests/e2e/lua/vlan_tenants.lua), record
# and monitor alike; a Lua module that asks for a VLAN-blind key sees one flow per 5-tuple.
. "$(dirname "$0")/lib.sh"
ROOT=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
LUA=$ROOT/tests/e2e/lua/vlan_tenants.lua
T=$TMP/tenants.pcap
python3 "$ROOT/tests/e2e/tenants_pcap.py" "$T" || { fail "tenants_pcap.py"; finish; }
[ "$(npackets "$T")" = 66 ] && pass || fail "the capture has $(npackets "$T") packets, not 66"

# each tenant's flows as tcpdump filters (the flow's packets, both directions)
HOSTS='host 10.1.0.1 and host 10.1.0.2'
A_ICMP="vlan 42 and icmp and $HOSTS"
B_ICMP="vlan 300 and vlan 42 and icmp and $HOSTS"
C_TCP="vlan 300 and vlan 43 and tcp and $HOSTS and port 40000 and port 80"

# archived NAME WANT-FILTER RECORD-ARGS...: record --capture triggered archives exactly
# tcpdump's selection of WANT-FILTER; the module's report line is left in $TMP/err
archived() {
    local name=$1 want=$2
    shift 2
    rm -rf "$TMP/$name"
    fs record --read "$T" --archive "$TMP/$name" --capture triggered --stats-interval 0 "$@" \
        >"$TMP/out" 2>"$TMP/err" || { fail "$name: record failed: $(tail -2 "$TMP/err")"; return; }
    oracle "$T" "$TMP/exp.pcap" "$want"
    fs query --archive "$TMP/$name" -w "$TMP/got.pcap" 2>/dev/null || fail "$name: query"
    if cmp -s "$TMP/exp.pcap" "$TMP/got.pcap"; then pass; else
        fail "$name: archived $(npackets "$TMP/got.pcap") packets, tcpdump selects $(npackets "$TMP/exp.pcap") ('$want')"
    fi
}

# module_flows NAME N: the module's report line in $TMP/err counts N flows
module_flows() {
    grep -qE "^flowscope [a-z]+: module\.([0-9]+)\.packets=66 module\.\1\.flows=$2 " "$TMP/err" && pass ||
        fail "$1: expected $2 flows: $(grep -E 'module\.[0-9]+\.packets=' "$TMP/err")"
}

# ---- --trigger: the issue's case, and each QinQ tenant alone ------------------------------
archived trig_a "$A_ICMP" --trigger 'vlan 42 and icmp'
module_flows trig_a 9
# the index lists only tenant A's ICMP flow as triggered
fs flows --archive "$TMP/trig_a" --triggered --json >"$TMP/flows.json" 2>"$TMP/flows.err" ||
    fail "flows --triggered --json: $(cat "$TMP/flows.err")"
if [ "$(wc -l <"$TMP/flows.json")" = 1 ] && grep -q '"proto":"icmp"' "$TMP/flows.json" &&
    grep -q '"vlan":42,' "$TMP/flows.json"; then pass; else
    fail "flows --triggered lists other flows than tenant A's ICMP: $(cat "$TMP/flows.json")"
fi
archived trig_b "$B_ICMP" --trigger 'vlan 300 and vlan 42 and icmp'
archived trig_c "$C_TCP" --trigger 'vlan 300 and vlan 43 and tcp'
# full capture: only tenant A's flow is tagged as triggered
rm -rf "$TMP/all"
fs record --read "$T" --archive "$TMP/all" --stats-interval 0 --trigger 'vlan 42 and icmp' 2>/dev/null ||
    fail "record --capture all"
n=$(fs flows --archive "$TMP/all" --triggered --json 2>/dev/null | grep -c '"vlan":42,')
m=$(fs flows --archive "$TMP/all" --triggered --json 2>/dev/null | wc -l)
[ "$n" = 1 ] && [ "$m" = 1 ] && pass || fail "full capture: $m flows triggered ($n of VLAN 42), expected 1"

# ---- C modules: stats counts every tenant's flows; the example .so dumps by its filter ----
fs record --read "$T" --archive "$TMP/stats" --stats-interval 0 --module stats:interval=1000s,top=20 \
    >"$TMP/stats.out" 2>"$TMP/err" || fail "record --module stats: $(tail -2 "$TMP/err")"
module_flows "record stats" 9
grep -q "^Active flows 9," "$TMP/stats.out" && pass || fail "stats under record: $(grep Active "$TMP/stats.out")"
n=$(grep -c 'proto: icmp, vlan: 300/42}' "$TMP/stats.out")
[ "$n" = 1 ] && pass || fail "stats lists tenant B's ICMP flow $n times: $(cat "$TMP/stats.out")"
if [ -n "${EXAMPLE_MODULE:-}" ]; then
    # a SYN to port 80 in every tenant: three flows, each dumped by its own filter (the
    # oracle: TCP behind one tag or two)
    archived example 'vlan and (tcp or (vlan and tcp))' --module "$EXAMPLE_MODULE:port=80"
    m="$EXAMPLE_MODULE:port=80"
    [ "$(module_counter "$TMP/err" record "$m" packets) $(module_counter "$TMP/err" record "$m" flows) $(module_counter "$TMP/err" record "$m" triggers)" = "66 9 3" ] && pass ||
        fail "example module: $(grep 'module\.' "$TMP/err")"
else
    fail "EXAMPLE_MODULE is not set"
fi

# ---- a Lua module: its default key is VLAN-aware; ignoreVlan makes it blind -------------
archived lua "$B_ICMP" --module "$LUA"
module_flows lua 9
grep -q "^vlan_tenants flows: 9$" "$TMP/out" && pass || fail "lua: the finalizer saw: $(cat "$TMP/out")"
archived lua_filter "$B_ICMP" --module "$LUA:filter"
grep -qx "vlan_tenants filter: vlan 300 and vlan 42 and ip proto 1 and $HOSTS" "$TMP/out" && pass ||
    fail "lua key_filter: $(grep filter "$TMP/out")"
fs record --read "$T" --archive "$TMP/blind" --stats-interval 0 --module "$LUA:blind" \
    >"$TMP/out" 2>"$TMP/err" || fail "record blind: $(tail -2 "$TMP/err")"
module_flows "lua blind" 3
grep -q "^vlan_tenants flows: 3$" "$TMP/out" && pass || fail "lua blind: the finalizer saw: $(cat "$TMP/out")"

# ---- monitor: the same keys, printed with both tags -------------------------------------
# mon NAME ARGS...: monitor on the capture; stdout in $TMP/out, stderr in $TMP/err
mon() {
    local name=$1
    shift
    fs monitor --read "$T" --stats-interval 0 "$@" >"$TMP/out" 2>"$TMP/err" ||
        fail "$name: monitor failed: $(tail -2 "$TMP/err")"
}
# one_trigger NAME KEY: stdout holds exactly one trigger line, for KEY
one_trigger() {
    local n
    n=$(grep -c ' trigger ' "$TMP/out")
    if [ "$n" = 1 ] && grep -qE " trigger .*: $2( filter .*)?$" "$TMP/out"; then pass; else
        fail "$1: expected one trigger of '$2': $(grep ' trigger ' "$TMP/out")"
    fi
}
mon "monitor trigger A" --trigger 'vlan 42 and icmp'
one_trigger "monitor trigger A" "icmp 10.1.0.1:0 <-> 10.1.0.2:0 vlan 42"
module_flows "monitor trigger A" 9
mon "monitor trigger C" --trigger 'vlan 300 and vlan 43 and tcp'
one_trigger "monitor trigger C" "tcp 10.1.0.1:40000 <-> 10.1.0.2:80 vlan 300/43"
mon "monitor stats" --module stats:interval=1000s,top=20
grep -q "^Active flows 9," "$TMP/out" && pass || fail "monitor stats: $(grep Active "$TMP/out")"
module_flows "monitor stats" 9
mon "monitor lua" --module "$LUA"
one_trigger "monitor lua" "icmp 10.1.0.1:0 <-> 10.1.0.2:0 vlan 300/42"
grep -q "^vlan_tenants flows: 9$" "$TMP/out" && pass || fail "monitor lua: $(cat "$TMP/out")"
mon "monitor lua blind" --module "$LUA:blind"
grep -q "^vlan_tenants flows: 3$" "$TMP/out" && pass || fail "monitor lua blind: $(cat "$TMP/out")"
finish
