#!/bin/bash
# The archive's flow records are keyed as modules and triggers key flows: the 5-tuple and
# both VLAN tags (archive format 3), an IPv4 flow's key without the IPv4-mapped prefixes
# (format 4: 25 bytes, not 49).  On tenants_pcap.py's capture (A: 802.1Q 42, B: QinQ
# 300/42, C: QinQ 300/43, identical addresses and ports) `flows` lists each tenant's flows
# apart, with tcpdump's packet counts; a trigger on B marks B's record only; verify and
# rebuild agree.  An archive written by format 2 (tests/e2e/data/tenants-format2.tar.gz,
# recorded by flowscope 29b86af with --trigger 'vlan 300 and vlan 42 and icmp': its records
# key by the outer tag only) or by format 3 (tenants-format3.tar.gz, flowscope 68942eb, the
# same capture and trigger: 49-byte keys) is still read, verified, upgraded to format 4 by
# the next record, and consistent after it (docs/archive-format.md, "Versioning").
. "$(dirname "$0")/lib.sh"
ROOT=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$TMP/tenants.pcap
python3 "$ROOT/tests/e2e/tenants_pcap.py" "$T" || { fail "tenants_pcap.py"; finish; }
TRIG_B='vlan 300 and vlan 42 and icmp'

# tcpdump's count of the capture's packets matching FILTER
count() { timeout 300 tcpdump -r "$T" "$1" 2>/dev/null | wc -l; }
# packets JSON VLAN INNER PROTO: the packets of the flows of that key in `flows --json` output
packets() {
    jq -s --argjson v "$2" --argjson i "$3" --arg p "$4" \
        '[.[] | select(.vlan == $v and .vlan_inner == $i and .proto == $p) |
          .packets_ab + .packets_ba] | add // 0' "$1"
}
# flows_json ARCHIVE OUT [ARGS...]: flows --json into OUT
flows_json() {
    local a=$1 out=$2
    shift 2
    fs flows --archive "$a" --json "$@" >"$out" 2>"$TMP/flows.err" ||
        fail "flows $a: $(cat "$TMP/flows.err")"
}
# per_tenant JSON FACTOR WHAT: each tenant's flows count FACTOR x tcpdump's packets
per_tenant() {
    local json=$1 k=$2 what=$3 p t v i got want
    for p in icmp tcp udp; do
        for t in "42 0 vlan 42" "300 42 vlan 300 and vlan 42" "300 43 vlan 300 and vlan 43"; do
            read -r v i _ <<<"$t"
            got=$(packets "$json" "$v" "$i" "$p")
            want=$(($(count "${t#* * } and $p") * k))
            [ "$got" = "$want" ] && pass ||
                fail "$what: $p vlan $v/$i: flows counts $got packets, tcpdump $want"
        done
    done
}

# key_lengths ARCHIVE: the lengths of its `flows` keys, each once, in order ("25 49 ")
key_lengths() {
    mdb_dump -s flows "$1/index" | awk '/^ / { if (++i % 2) print length($1) / 2 }' |
        sort -nu | tr '\n' ' '
}

# upgrade ARCHIVE WHAT LENGTHS: records the capture into ARCHIVE (of an older format) again:
# then FORMAT says 4, its `flows` keys have LENGTHS (key_lengths) and verify passes
upgrade() {
    fs record --read "$T" --archive "$1" --stats-interval 0 --trigger "$TRIG_B" >/dev/null 2>"$TMP/err" ||
        fail "record into $2: $(tail -2 "$TMP/err")"
    grep -qx 'flowscope-archive 4' "$1/FORMAT" && pass || fail "$2 not upgraded: $(cat "$1/FORMAT")"
    [ "$(key_lengths "$1")" = "$3" ] && pass || fail "upgraded $2: keys of $(key_lengths "$1")bytes"
    verify_ok "$1" "upgraded $2"
}
# triggered JSON: the flows of `flows --json` output with a trigger ("icmp 300/42 ...")
triggered() { jq -r 'select(.trigger != "") | "\(.proto) \(.vlan)/\(.vlan_inner)"' "$1" | sort | tr '\n' ' '; }

# ---- a new archive: nine flows, each tenant's own ----------------------------------------
A=$TMP/all
fs record --read "$T" --archive "$A" --stats-interval 0 --trigger "$TRIG_B" >/dev/null 2>"$TMP/err" ||
    fail "record: $(tail -2 "$TMP/err")"
flows_json "$A" "$TMP/all.json"
n=$(wc -l <"$TMP/all.json")
[ "$n" = 9 ] && pass || fail "flows lists $n flows, expected 9 (3 tenants x 3): $(cat "$TMP/all.json")"
per_tenant "$TMP/all.json" 1 "new archive"
# the trigger on B marks B's ICMP flow only (C's record has none)
flows_json "$A" "$TMP/trig.json" --triggered
if [ "$(wc -l <"$TMP/trig.json")" = 1 ] &&
    [ "$(jq -r '"\(.proto) \(.vlan)/\(.vlan_inner)"' "$TMP/trig.json")" = "icmp 300/42" ]; then pass; else
    fail "--triggered lists other flows than tenant B's ICMP: $(cat "$TMP/trig.json")"
fi
c=$(jq -r 'select(.proto == "icmp" and .vlan == 300 and .vlan_inner == 43) | .trigger' "$TMP/all.json")
[ "$c" = "" ] && pass || fail "tenant C's ICMP record has trigger '$c'"
# text output: the tags as outer/inner
fs flows --archive "$A" >"$TMP/all.txt" 2>/dev/null
grep -qE '^\S+ +\S+ icmp +10\.1\.0\.1:0 +10\.1\.0\.2:0 +300/42 +6 +6 .*trigger:vlan 300 and vlan 42 and icmp$' \
    "$TMP/all.txt" && pass || fail "flows text: $(cat "$TMP/all.txt")"
grep -qE ' 10\.1\.0\.2:80 +300/43 ' "$TMP/all.txt" && grep -qE ' 10\.1\.0\.2:53 +42 ' "$TMP/all.txt" &&
    pass || fail "flows text lacks the tags: $(cat "$TMP/all.txt")"
grep -qx 'flowscope-archive 4' "$A/FORMAT" && pass || fail "FORMAT: $(cat "$A/FORMAT")"
[ "$(key_lengths "$A")" = "25 " ] && pass || fail "IPv4 flows' keys of $(key_lengths "$A")bytes"
verify_ok "$A" "new archive"
# a filter on one tenant lists that tenant's flow
fs flows --archive "$A" --json 'vlan 300 and vlan 43 and tcp' >"$TMP/f.json" 2>/dev/null
[ "$(jq -r '"\(.proto) \(.vlan)/\(.vlan_inner)"' "$TMP/f.json")" = "tcp 300/43" ] && pass ||
    fail "flows FILTER (tenant C's TCP): $(cat "$TMP/f.json")"
# rebuild gives the same list (triggers carried over)
fs index rebuild --archive "$A" >/dev/null 2>"$TMP/err" || fail "rebuild: $(tail -2 "$TMP/err")"
flows_json "$A" "$TMP/rebuilt.json"
cmp -s "$TMP/all.json" "$TMP/rebuilt.json" && pass ||
    fail "flows after rebuild differ: $(diff "$TMP/all.json" "$TMP/rebuilt.json" | head -6)"
verify_ok "$A" "rebuilt archive"

# ---- an archive of format 2: read as it is -----------------------------------------------
O=$TMP/old
mkdir -p "$O" && tar -C "$O" -xzf "$ROOT/tests/e2e/data/tenants-format2.tar.gz" || fail "fixture"
grep -qx 'flowscope-archive 2' "$O/FORMAT" && pass || fail "fixture FORMAT: $(cat "$O/FORMAT")"
fs info --archive "$O" 2>/dev/null | grep -q "(format 2)$" && pass || fail "info: $(fs info --archive "$O" 2>&1 | head -1)"
flows_json "$O" "$TMP/old.json"
n=$(wc -l <"$TMP/old.json")
[ "$n" = 6 ] && pass || fail "format 2: flows lists $n flows, expected 6: $(cat "$TMP/old.json")"
# its records key by the outer tag: B and C in one record of inner tag 0, as written
got=$(packets "$TMP/old.json" 300 0 icmp)
want=$(count 'vlan 300 and vlan and icmp')
[ "$got" = "$want" ] && pass || fail "format 2: VLAN 300 ICMP record counts $got, tcpdump $want"
verify_ok "$O" "format 2 archive"
fs query --archive "$O" -w "$TMP/got.pcap" 'vlan 300 and vlan 43 and icmp' 2>/dev/null || fail "format 2: query"
oracle "$T" "$TMP/exp.pcap" 'vlan 300 and vlan 43 and icmp'
cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass || fail "format 2: query differs from tcpdump"
fs flows --archive "$O" --json 'vlan 300 and vlan 43 and icmp' >"$TMP/f.json" 2>/dev/null
[ "$(jq -r '"\(.proto) \(.vlan)/\(.vlan_inner)"' "$TMP/f.json")" = "icmp 300/0" ] && pass ||
    fail "format 2: flows FILTER finds the outer-tag record: $(cat "$TMP/f.json")"
grep -qx 'flowscope-archive 2' "$O/FORMAT" && pass || fail "readers changed FORMAT: $(cat "$O/FORMAT")"

# ---- recording into it upgrades it to format 4; old records stay as they are ------------
upgrade "$O" "format 2" "25 47 "
flows_json "$O" "$TMP/mixed.json"
# segment 1's six records as they were, segment 2's nine (A's merge with segment 1's)
n=$(wc -l <"$TMP/mixed.json")
[ "$n" = 12 ] && pass || fail "upgraded: flows lists $n flows, expected 12: $(cat "$TMP/mixed.json")"
[ "$(packets "$TMP/mixed.json" 300 0 icmp)" = "$want" ] && [ "$(packets "$TMP/mixed.json" 300 43 icmp)" = 12 ] &&
    [ "$(packets "$TMP/mixed.json" 42 0 icmp)" = 24 ] && pass || fail "upgraded: counts: $(cat "$TMP/mixed.json")"
fs query --archive "$O" -w "$TMP/got.pcap" 2>/dev/null || fail "upgraded: query"
[ "$(npackets "$TMP/got.pcap")" = 132 ] && pass || fail "upgraded: query gives $(npackets "$TMP/got.pcap") packets"
# rebuild keys segment 1 again from its packets: nine flows with twice the counts; the old
# record's trigger goes to both flows it stood for (B and C)
fs index rebuild --archive "$O" >/dev/null 2>"$TMP/err" || fail "rebuild upgraded: $(tail -2 "$TMP/err")"
flows_json "$O" "$TMP/rebuilt.json"
n=$(wc -l <"$TMP/rebuilt.json")
[ "$n" = 9 ] && pass || fail "rebuilt upgraded: $n flows, expected 9"
per_tenant "$TMP/rebuilt.json" 2 "rebuilt upgraded"
t=$(triggered "$TMP/rebuilt.json")
[ "$t" = "icmp 300/42 icmp 300/43 " ] && pass || fail "rebuilt upgraded: triggered: $t"
verify_ok "$O" "rebuilt upgraded archive"

# ---- an archive of format 3: read as it is, upgraded to format 4 by the next record ------
N=$TMP/f3
mkdir -p "$N" && tar -C "$N" -xzf "$ROOT/tests/e2e/data/tenants-format3.tar.gz" || fail "fixture 3"
grep -qx 'flowscope-archive 3' "$N/FORMAT" && pass || fail "fixture 3 FORMAT: $(cat "$N/FORMAT")"
[ "$(key_lengths "$N")" = "49 " ] && pass || fail "fixture 3: keys of $(key_lengths "$N")bytes"
flows_json "$N" "$TMP/f3.json"
cmp -s "$TMP/all.json" "$TMP/f3.json" && pass ||
    fail "format 3: flows differ from format 4's: $(diff "$TMP/all.json" "$TMP/f3.json" | head -6)"
verify_ok "$N" "format 3 archive"
# segment 1's records as they were, segment 2's short; the same flows, so they merge
upgrade "$N" "format 3" "25 49 "
flows_json "$N" "$TMP/f3up.json"
n=$(wc -l <"$TMP/f3up.json")
[ "$n" = 9 ] && pass || fail "upgraded format 3: flows lists $n flows, expected 9: $(cat "$TMP/f3up.json")"
per_tenant "$TMP/f3up.json" 2 "upgraded format 3"
t=$(triggered "$TMP/f3up.json")
[ "$t" = "icmp 300/42 " ] && pass || fail "upgraded format 3: triggered: $t"
fs index rebuild --archive "$N" >/dev/null 2>"$TMP/err" || fail "rebuild format 3: $(tail -2 "$TMP/err")"
[ "$(key_lengths "$N")" = "25 " ] && pass || fail "rebuilt format 3: keys of $(key_lengths "$N")bytes"
flows_json "$N" "$TMP/f3re.json"
cmp -s "$TMP/f3up.json" "$TMP/f3re.json" && pass ||
    fail "format 3: flows after rebuild differ: $(diff "$TMP/f3up.json" "$TMP/f3re.json" | head -6)"
verify_ok "$N" "rebuilt format 3 archive"

# OLD_FLOWSCOPE (optional, a flowscope of format 2 or 3): it refuses the upgraded archive by name
if [ -n "${OLD_FLOWSCOPE:-}" ]; then
    timeout 300 "$OLD_FLOWSCOPE" flows --archive "$O" >/dev/null 2>"$TMP/err" && fail "old flowscope read format 4"
    one_line_error "$TMP/err" "archive format version 4, this flowscope reads version"
fi
finish
