#!/bin/bash
# Query latency benchmark on a 10 GB archive of `flowscope gen` traffic (many
# flows over about three hours, a real capture laid into the middle): one
# 5-tuple, one host, one port within one minute, and a filter the index
# cannot answer within one minute; beside each, `tcpdump -r` over the same
# pcap with the same filter (tcpdump cannot seek to a minute: it reads it
# all, which is what answering without an index costs), in the same run.
# A benchmark, not a test: it prints, never judges.
#
#   tools/bench/query_bench.sh [BUILD_DIR] [SIZE]     (default build/, 10G)
set -u
BUILD=${1:-build}
SIZE=${2:-10G}
FS=$BUILD/tools/flowscope
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh"

bench_dataset "$SIZE" || { echo "dataset $SIZE failed" >&2; exit 1; }
MIN="--from $NEEDLE_FROM --to $((NEEDLE_FROM + 60))"
bench_machine query_bench
echo "# $SIZE: pcap $(stat -c %s "$PCAP") bytes, archive $(du -sb "$ARCH" | cut -f1) bytes, recorded in ${RECORD_SECS}s"
echo "# flowscope = median of 5 runs of 'query -w -'; tcpdump = one 'tcpdump -r PCAP -w - FILTER'"
printf '%-44s %-11s %9s %10s %10s %9s\n' query range packets flowscope_ms tcpdump_ms speedup
row() {
    local name=$1 range=$2 filter=$3 args=()
    [ "$range" = 1min ] && args=($MIN)
    local f t n
    f=$(median_time "$FS" query --archive "$ARCH" "${args[@]}" -w - "$filter")
    t=$(scan_time "$filter")
    n=$("$FS" query --archive "$ARCH" "${args[@]}" -w - "$filter" 2>/dev/null | tcpdump -r - 2>/dev/null | wc -l)
    printf '%-44s %-11s %9s %10.1f %10.1f %8.0fx\n' "$name" "$range" "$n" "$(echo "$f * 1000" | bc -l)" \
        "$(echo "$t * 1000" | bc -l)" "$(echo "$t / $f" | bc -l)"
}
row "5-tuple (DNS over TCP)" all "$Q_FLOW"
row "host 10.99.2.10" all "$Q_HOST"
row "port 53" 1min "port 53"
row "tcp[tcpflags] & tcp-rst != 0 (no index)" 1min "tcp[tcpflags] & tcp-rst != 0"
"$FS" query --archive "$ARCH" $MIN --explain "tcp[tcpflags] & tcp-rst != 0" | sed 's/^/#   explain: /'
"$FS" query --archive "$ARCH" --explain "$Q_FLOW" | sed 's/^/#   explain: /'
