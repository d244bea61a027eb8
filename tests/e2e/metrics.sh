#!/bin/bash
# The Prometheus exposition of a recording's final counters (`flowscope info --metrics`,
# tools/metrics.c): promtool (the Prometheus project's own checker) accepts it; every
# counter of the run's report is a sample with the same value (the `drops` sums are the
# sums of their reason samples); module names are label values; every family is
# documented in docs/metrics.md and every documented family is there.
. "$(dirname "$0")/lib.sh"
: "${SRC:?SRC must name the source tree}"
IN=$PCAPS/tcp_anomalies.pcap
RST='tcp[tcpflags] & tcp-rst != 0'
command -v promtool >/dev/null || { fail "promtool not found (Debian package prometheus)"; finish; }

fs record --read "$IN" --archive "$TMP/a" --dumpers 2 --analyzers 2 --max-disk 8G --module ttl \
    --trigger "$RST" --listen 127.0.0.1:0 --eve "$TMP/eve.json" --ipfix 127.0.0.1:9 \
    --flow-export clickhouse://127.0.0.1:9/x.y --sensor t \
    --stats-interval 0 2>"$TMP/rec.err" ||
    fail "record: $(tail -2 "$TMP/rec.err")"
fs info --archive "$TMP/a" --metrics >"$TMP/m.prom" 2>"$TMP/m.err"
rc=$?
[ $rc -eq 0 ] && [ -s "$TMP/m.prom" ] && pass || fail "info --metrics: exit $rc: $(head -3 "$TMP/m.err")"
grep -q '^# flowscope:' "$TMP/m.prom" && fail "counters left out: $(grep '^# flowscope:' "$TMP/m.prom")"
promtool check metrics <"$TMP/m.prom" >"$TMP/promtool.out" 2>&1 && pass ||
    fail "promtool check metrics: $(head -5 "$TMP/promtool.out")"

# sample NAME LABELS: the value of the sample NAME{LABELS} (LABELS as printed, may be empty)
sample() {
    local s=$1
    [ -z "$2" ] || s="$1{$2}"
    awk -v s="$s " 'substr($0, 1, length(s)) == s {print $NF}' "$TMP/m.prom"
}
# report VALUE of counter NAME in the run's report
report() { sed -n 's/^flowscope record: //p' "$TMP/rec.err" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

check() { # COUNTER METRIC LABELS
    local want got
    want=$(report "$1")
    got=$(sample "$2" "$3")
    [ -n "$want" ] && [ "$want" = "$got" ] && pass || fail "$1=$want but $2{$3} is '$got'"
}
check ingest.file.packets flowscope_ingest_packets_total 'source="file"'
check ingest.file.dropped_kernel flowscope_ingest_dropped_packets_total 'source="file",reason="kernel"'
check qq.size_bytes flowscope_qq_size_bytes ''
check qq.overwritten_packets flowscope_qq_overwritten_packets_total ''
check flowtrack.analyzer1.flows flowscope_flowtrack_analyzer_flows_total 'analyzer="1"'
check flowtrack.flows flowscope_flowtrack_flows_total ''
check module.0.packets flowscope_module_packets_total 'module="0",name="ttl"'
check module.1.triggers flowscope_module_triggers_total "module=\"1\",name=\"trigger:$RST\""
check dumper.triggered_packets flowscope_dumper_triggered_packets_total ''
check archive.writer.file_bytes flowscope_archive_writer_file_bytes_total ''
check archive.writer.full_events flowscope_archive_writer_disk_full_events_total ''
check retention.archive_bytes flowscope_retention_archive_bytes ''
[ "$(sample flowscope_archive_packets '')" = "$(stored "$TMP/a")" ] && pass ||
    fail "flowscope_archive_packets $(sample flowscope_archive_packets '') but info says $(stored "$TMP/a")"

# every counter is one sample (drops: the reasons' sum), values alike as multisets
sed -n 's/^flowscope record: //p' "$TMP/rec.err" | awk '$1 ~ /=/' | tr ' ' '\n' |
    grep -v '\.drops=' | sed 's/.*=//' | sort >"$TMP/want.values"
grep -v '^#' "$TMP/m.prom" | grep -v -E '^flowscope_archive_(segments|packets|wire_bytes|stored_bytes|index_bytes) ' | awk '{print $NF}' | sort >"$TMP/got.values"
cmp -s "$TMP/want.values" "$TMP/got.values" && pass ||
    fail "$(wc -l <"$TMP/want.values") counters, $(wc -l <"$TMP/got.values") samples, or values differ"
drops=$(report ingest.file.drops)
sum=$(awk '$1 ~ /^flowscope_ingest_dropped_packets_total/ {s += $2} END {print s + 0}' "$TMP/m.prom")
[ "$drops" = "$sum" ] && pass || fail "ingest.file.drops=$drops, the reasons sum to $sum"

# docs/metrics.md: the families printed and the families documented agree
sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' "$TMP/m.prom" | sort -u >"$TMP/fam"
sed -n 's/^| `\(flowscope_[a-z_]*\)`.*/\1/p' "$SRC/docs/metrics.md" | sort -u >"$TMP/doc"
undocumented=$(comm -23 "$TMP/fam" "$TMP/doc" | tr '\n' ' ')
[ -z "$undocumented" ] && pass || fail "families not in docs/metrics.md: $undocumented"
# documented but only printed by monitor, by several-queue sources, or by GET /metrics
# (e2e_prometheus checks those)
unseen=$(comm -13 "$TMP/fam" "$TMP/doc" | grep -v -e '^flowscope_ingest_queue_' -e '^flowscope_monitor_' \
    -e '^flowscope_api_' -e '^flowscope_archive_disk_free_bytes$' -e '^flowscope_qq_fill_ratio$' \
    -e '^flowscope_qq_window_seconds$' | tr '\n' ' ')
[ -z "$unseen" ] && pass || fail "docs/metrics.md families a recording does not print: $unseen"

fs info --archive "$TMP/a" --metrics extra >/dev/null 2>&1
[ $? -eq 2 ] && pass || fail "info --metrics extra: not a usage error"
finish
