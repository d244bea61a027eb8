#!/bin/bash
# Query scaling benchmark: the time to extract one 5-tuple and one host from
# archives of 1 GB and 10 GB of `flowscope gen` traffic (the same real
# capture laid into the middle of each, so the answer is the same), against
# `tcpdump -r` over the same pcap with the same filter, in the same run.
# The query should stay flat (within 2x) while tcpdump grows with the data.
# A benchmark, not a test: it prints, never judges.
#
#   tools/bench/query_scaling.sh [BUILD_DIR] [SIZE...]   (default build/, 1G 10G)
#
# Needs about 2.5x the largest size free in BENCH_DIR (default
# /var/tmp/flowscope-bench; see bench_data.sh) and as much RAM for the page
# cache, so that both sides read from memory.
set -u
BUILD=${1:-build}
shift 2>/dev/null
SIZES=("${@:-1G}")
[ $# -eq 0 ] && SIZES=(1G 10G)
FS=$BUILD/tools/flowscope
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh"

bench_machine query_scaling
echo "# 5-tuple: $Q_FLOW"
echo "# host:    $Q_HOST"
echo "# times: flowscope = median of 5 runs, tcpdump -r = one run; all from the page cache"
printf '%-6s %12s %12s %9s | %11s %11s %8s | %11s %11s %8s\n' size pcap_bytes archive_bytes packets \
    "5tuple_fs_s" "tcpdump_s" speedup "host_fs_s" "tcpdump_s" speedup
for size in "${SIZES[@]}"; do
    bench_dataset "$size" || { echo "dataset $size failed" >&2; exit 1; }
    ab=$(du -sb "$ARCH" | cut -f1)
    np=$(tr ' ' '\n' <"$BENCH_DIR/$size/record.log" | sed -n 's/^archive\.writer\.packets=//p')
    f1=$(median_time "$FS" query --archive "$ARCH" -w - "$Q_FLOW")
    t1=$(scan_time "$Q_FLOW")
    f2=$(median_time "$FS" query --archive "$ARCH" -w - "$Q_HOST")
    t2=$(scan_time "$Q_HOST")
    n1=$("$FS" query --archive "$ARCH" -w - "$Q_FLOW" 2>/dev/null | tcpdump -r - 2>/dev/null | wc -l)
    n2=$("$FS" query --archive "$ARCH" -w - "$Q_HOST" 2>/dev/null | tcpdump -r - 2>/dev/null | wc -l)
    printf '%-6s %12s %12s %9s | %11s %11s %7.0fx | %11s %11s %7.0fx\n' "$size" "$(stat -c %s "$PCAP")" \
        "$ab" "$np" "$f1" "$t1" "$(echo "$t1 / $f1" | bc -l)" "$f2" "$t2" "$(echo "$t2 / $f2" | bc -l)"
    echo "#   $size: answers $n1 and $n2 packets; record took ${RECORD_SECS}s"
done
