#!/bin/bash
# The counters of the final reports (docs/counters.md):
#  - every counter record and monitor print (file source, modules, retention, --listen, --eve,
#    --ipfix: to a port nobody listens on) is in
#    docs/counters.md's table, and every counter of the table is printed;
#  - every counter line is name=value words only, names dotted, values decimal;
#  - flowscope info's "last run" holds the same counter lines as record printed;
#  - the values of a known case: packets and bytes as capinfos and tshark count them, the
#    archive's pcap bytes as the pcap tcpdump writes, the flows and the ttl module's triggers
#    as tshark finds them, nothing dropped, the trigger lines monitor printed.
. "$(dirname "$0")/lib.sh"
: "${SRC:?SRC must name the source tree}"
DOC=$SRC/docs/counters.md
IN=$PCAPS/tcp_anomalies.pcap
RST='tcp[tcpflags] & tcp-rst != 0'

# counter_lines ERRFILE CMD: the report's counter lines (first word holds '='), prefix cut
counter_lines() { sed -n "s/^flowscope $2: //p" "$1" | awk '$1 ~ /=/'; }

# names: the counter names of counter lines on stdin, instances as docs/counters.md writes them
names() {
    tr ' ' '\n' | sed -n 's/=.*//p' |
        sed -E 's/^ingest\.(file|dpdk|afpacket|live)\./ingest.KIND./; s/^ingest\.KIND\.q[0-9]+\./ingest.KIND./
                s/^flowtrack\.analyzer[0-9]+\./flowtrack.analyzerN./; s/^module\.[0-9]+\./module.N./'
}

fs record --read "$IN" --archive "$TMP/a" --dumpers 1 --max-disk 8G --module ttl --trigger "$RST" --listen 127.0.0.1:0 \
    --eve "$TMP/eve.json" --ipfix 127.0.0.1:9 --flow-export clickhouse://127.0.0.1:9/x.y --sensor t \
    --stats-interval 0 2>"$TMP/rec.err" || fail "record: $(tail -2 "$TMP/rec.err")"
fs monitor --read "$IN" --module ttl --trigger "$RST" --stats-interval 0 >"$TMP/mon.out" \
    2>"$TMP/mon.err" || fail "monitor: $(tail -2 "$TMP/mon.err")"

# ---- the names: the commands and the document agree ---------------------------------------
sed -n 's/^| `\([a-zA-Z0-9_.]*\)` |.*/\1/p' "$DOC" | sort -u >"$TMP/doc.names"
[ "$(wc -l <"$TMP/doc.names")" -gt 40 ] && pass || fail "docs/counters.md lists $(wc -l <"$TMP/doc.names") counters"
{ counter_lines "$TMP/rec.err" record; counter_lines "$TMP/mon.err" monitor; } | names | sort -u >"$TMP/printed.names"
missing=$(comm -23 "$TMP/printed.names" "$TMP/doc.names" | tr '\n' ' ')
[ -s "$TMP/printed.names" ] && [ -z "$missing" ] && pass ||
    fail "counters printed but not in docs/counters.md: '${missing}' ($(wc -l <"$TMP/printed.names") printed)"
unprinted=$(comm -13 "$TMP/printed.names" "$TMP/doc.names" | tr '\n' ' ')
[ -z "$unprinted" ] && pass || fail "counters in docs/counters.md that record and monitor do not print: $unprinted"

# every counter line is name=value words, nothing else; no name twice
bad=$({ counter_lines "$TMP/rec.err" record; counter_lines "$TMP/mon.err" monitor; } | tr ' ' '\n' |
    grep -cvE '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+=[0-9]+$')
[ "$bad" = 0 ] && pass || fail "$bad words of counter lines are not name=value"
dup=$(counter_lines "$TMP/rec.err" record | tr ' ' '\n' | sed 's/=.*//' | sort | uniq -d | tr '\n' ' ')
[ -z "$dup" ] && pass || fail "record prints counters twice: $dup"
# the modules by position, each named on a line of its own
grep -qxF "flowscope record: module.0: ttl" "$TMP/rec.err" &&
    grep -qxF "flowscope record: module.1: trigger:$RST" "$TMP/rec.err" && pass ||
    fail "module name lines: $(grep 'module\.[0-9]*:' "$TMP/rec.err")"

# ---- flowscope info: the same counter lines, stored with the archive -------------------------
fs info --archive "$TMP/a" | sed -n '/^last run:$/,$p' | sed -n 's/^  //p' | awk '$1 ~ /=/' >"$TMP/info.lines"
counter_lines "$TMP/rec.err" record >"$TMP/rec.lines"
[ -s "$TMP/info.lines" ] && cmp -s "$TMP/info.lines" "$TMP/rec.lines" && pass ||
    fail "info's last run differs from record's report: $(diff "$TMP/rec.lines" "$TMP/info.lines" | head -4)"

# ---- the values of a known case ---------------------------------------------------------------
n=$(npackets "$IN")
read -r wire cap < <(tshark -r "$IN" -T fields -e frame.len -e frame.cap_len 2>/dev/null |
    awk '{w += $1; c += $2} END {print w, c}')
oracle "$IN" "$TMP/exp.pcap" # the pcap tcpdump writes: what one segment holds, uncompressed
flows=$(bash "$SRC/tests/e2e/tshark_flows.sh" flows "$IN" | grep -c .)
ttl=$(bash "$SRC/tests/e2e/tshark_flows.sh" ttl "$IN" | grep -c .)
# want CMD NAME VALUE: counter NAME of CMD's report is VALUE
want() {
    local got
    got=$(counter "$TMP/${1:0:3}.err" "$1" "$2")
    [ "$got" = "$3" ] && pass || fail "$1: $2=$got, expected $3"
}
for cmd in record monitor; do
    want $cmd ingest.file.packets "$n"
    want $cmd ingest.file.wire_bytes "$wire"
    want $cmd ingest.file.captured_bytes "$cap"
    want $cmd ingest.file.drops 0
    want $cmd flowtrack.analyzer0.packets "$n"
    want $cmd flowtrack.packets "$n"
    want $cmd flowtrack.flows "$flows"
    want $cmd flowtrack.split_across_analyzers 0
    want $cmd module.0.flows "$flows"
    want $cmd module.0.triggers "$ttl"
    want $cmd module.0.errors 0
done
want record qq.packets "$n"
want record qq.captured_bytes "$cap"
want record qq.overwritten_packets 0
want record qq.dropped_busy 0
want record archive.writer.packets "$n"
want record archive.writer.wire_bytes "$wire"
want record archive.writer.segments 1
want record archive.writer.pcap_bytes "$(stat -c %s "$TMP/exp.pcap")"
want record archive.writer.unstored_packets 0
want record retention.dropped_segments 0
[ "$(stored "$TMP/a")" = "$n" ] && pass || fail "info: $(stored "$TMP/a") packets stored, $n in the input"
t0=$(counter "$TMP/rec.err" record module.0.triggers)
t1=$(counter "$TMP/rec.err" record module.1.triggers)
want record dumper.rules_added $((t0 + t1))
# monitor: one trigger line per trigger, each module's as many as its counter says
want monitor monitor.triggers "$(grep -c ' trigger ' "$TMP/mon.out")"
want monitor module.0.triggers "$(grep -c ' trigger ttl: ' "$TMP/mon.out")"
want monitor module.1.triggers "$(grep -cF " trigger trigger:$RST: " "$TMP/mon.out")"
want monitor module.1.triggers "$t1"

finish
