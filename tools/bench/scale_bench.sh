#!/bin/bash
# Scale-out benchmark (docs/scale-out.md): what the metadata tier costs and how the fleet
# query grows, on this machine, in one run.  Starts Debian's clickhouse-server on loopback
# with its data under a temporary directory (needs the clickhouse-server package: make deps).
#   2. flow rows: `flowscope gen` traffic with FLOWS concurrent flows recorded without export,
#      then sent by `record --flow-export` (a one-packet recording on the same archive: the
#      exporter sends every closed segment first): rows, seconds, rows/s; ClickHouse's bytes
#      per row after OPTIMIZE FINAL (system.parts: compressed on disk), beside the archive's
#      index bytes per flow record and the segments' bytes per packet.
#   1. the fleet query: N = 1, 2, 4, 8, 16 sensors (`flowscope serve` each, plain HTTP on
#      loopback), sensor 1 holding http.pcap and the others dns_icmp.pcap: a 5-tuple of
#      sensor 1 through `query --fleet` with every sensor asked (--all-sensors) and narrowed
#      by ClickHouse (only sensor 1): median of 5, milliseconds.
# A benchmark, not a test: it prints, never judges.
#
#   tools/bench/scale_bench.sh [BUILD_DIR] [FLOWS]      (default build/, 200000)
set -u
BUILD=${1:-build}
FLOWS=${2:-200000}
FS=$(realpath "$BUILD/tools/flowscope")
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
command -v clickhouse-server >/dev/null || { echo "clickhouse-server not installed (make deps)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$(cd "$HERE/../../../shared" && pwd)}
FLOWSCOPE=$FS
export FLOWSCOPE SHARED
. "$HERE/../../tests/e2e/lib.sh" # start_clickhouse, ch, ch_schema, stop_pid, wait_for, metric
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; [ -z "${CH_PID:-}" ] || stop_pid "$CH_PID"'
. "$HERE/bench_data.sh" # bench_machine, now_s
median5() { # median5 CMD...: the median wall seconds of 5 runs
    local t0 v=()
    for _ in 1 2 3 4 5; do
        t0=$(now_s)
        "$@" >/dev/null 2>&1
        v+=("$(echo "$(now_s) - $t0" | bc -l)")
    done
    printf '%s\n' "${v[@]}" | sort -n | sed -n 3p
}

start_clickhouse "$TMP/ch" || { echo "clickhouse-server did not start" >&2; exit 1; }
ch_schema "$HERE/../../docs/clickhouse-schema.sql" || exit 1
URL=clickhouse://127.0.0.1:$CH_PORT/flowscope.flows
bench_machine scale_bench
echo "# clickhouse-server $(ch 'SELECT version()') (one node, loopback, default settings)"

# ---- 1. the fleet query -------------------------------------------------------------------
PCAPS=$SHARED/pcaps
editcap -t -6.9 "$PCAPS/dns_icmp.pcap" "$TMP/d.pcap"
serve() { # serve NAME PCAP: records PCAP with --flow-export as sensor NAME, serves it; its URL
    "$FS" record --read "$2" --archive "$TMP/a$1" --status-interval 0 --flow-export "$URL" \
        --sensor "$1" 2>/dev/null
    "$FS" serve --archive "$TMP/a$1" --listen 127.0.0.1:0 >"$TMP/s$1.out" 2>&1 &
    PIDS+=($!)
    wait_for "$TMP/s$1.out" 'listening on' $! 100 >/dev/null
    echo "[sensor $1]" >>"$TMP/fleet.conf"
    sed -n 's/^flowscope serve: listening on /url = /p' "$TMP/s$1.out" >>"$TMP/fleet.conf"
}
echo "clickhouse = $URL" >"$TMP/fleet.conf"
END=$(for f in "$PCAPS/http.pcap" "$TMP/d.pcap"; do capinfos -Tr -e -S "$f"; done | awk -F'\t' '{print int($2)}' | sort -n | head -1)
FIVE='tcp and host 10.99.1.10 and port 34952 and host 10.99.1.80 and port 80'
echo "# 1. query --fleet, a 5-tuple only sensor 1 holds (2822 packets), --to $END; median of 5, ms"
printf '%-8s %14s %14s\n' sensors all_asked_ms narrowed_ms
n=0
for want in 1 2 4 8 16; do
    while [ "$n" -lt "$want" ]; do
        n=$((n + 1))
        if [ "$n" = 1 ]; then serve s1 "$PCAPS/http.pcap"; else serve "s$n" "$TMP/d.pcap"; fi
    done
    a=$(median5 "$FS" query --fleet "$TMP/fleet.conf" --all-sensors --to "$END" -w /dev/null "$FIVE")
    b=$(median5 "$FS" query --fleet "$TMP/fleet.conf" --to "$END" -w /dev/null "$FIVE")
    printf '%-8s %14.1f %14.1f\n' "$n" "$(echo "$a * 1000" | bc -l)" "$(echo "$b * 1000" | bc -l)"
done

# ---- 2. flow rows --------------------------------------------------------------------------
packets=$((FLOWS * 10))
"$FS" gen -w "$TMP/g.pcap" --flows "$FLOWS" --packets "$packets" --rate 200000 --seed 3 2>/dev/null
"$FS" record --read "$TMP/g.pcap" --archive "$TMP/ag" --status-interval 0 --segment-size 64M 2>/dev/null
"$FS" gen -w "$TMP/one.pcap" --flows 1 --packets 1 --start 1796000000 2>/dev/null
cp -a "$TMP/ag" "$TMP/ag2" && cp -a "$TMP/ag" "$TMP/ag3"
t0=$(now_s)
"$FS" record --read "$TMP/one.pcap" --archive "$TMP/ag" --status-interval 0 --flow-export "$URL" \
    --sensor bench 2>"$TMP/exp.err"
secs=$(echo "$(now_s) - $t0" | bc -l)
rows=$(sed -n 's/.*flow_export.rows=\([0-9]*\).*/\1/p' "$TMP/exp.err")
ch "OPTIMIZE TABLE flowscope.flows FINAL" >/dev/null
read -r chbytes chrows < <(ch "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts WHERE database = 'flowscope' AND table = 'flows' AND active")
info=$("$FS" info --archive "$TMP/ag")
seg_bytes=$(du -sb "$TMP/ag/segments" | cut -f1)
idx_bytes=$(du -sb "$TMP/ag/index" | cut -f1)
echo "# 2. flow rows: gen --flows $FLOWS --packets $packets ($(du -b "$TMP/g.pcap" | cut -f1) bytes of pcap)"
printf '%-34s %12s\n' measure value
printf '%-34s %12s\n' "flow rows sent" "$rows" "rows in ClickHouse (bench)" \
    "$(ch "SELECT count() FROM flowscope.flows WHERE sensor = 'bench'")"
printf '%-34s %12.2f\n' "export seconds (one recorder)" "$secs"
printf '%-34s %12.0f\n' "rows/s inserted" "$(echo "$rows / $secs" | bc -l)"
printf '%-34s %12.1f\n' "ClickHouse bytes/row (on disk)" "$(echo "$chbytes / $chrows" | bc -l)"
printf '%-34s %12.1f\n' "archive index bytes/flow row" "$(echo "$idx_bytes / $rows" | bc -l)"
echo "#   (the whole index file: terms, frames and flow records, per flow row)"
printf '%-34s %12.1f\n' "archive segment bytes/packet" "$(echo "$seg_bytes / $packets" | bc -l)"
echo "# (archive: $(echo "$info" | sed -n 's/^segments: *//p' | head -1))"
# two exporters at once (copies of the archive as sensors bench2, bench3): the node's share
t0=$(now_s)
EXP=()
for k in 2 3; do
    "$FS" record --read "$TMP/one.pcap" --archive "$TMP/ag$k" --status-interval 0 \
        --flow-export "$URL" --sensor "bench$k" 2>"$TMP/exp$k.err" &
    EXP+=($!)
done
wait "${EXP[@]}" # (not the ClickHouse server, a child too)
secs2=$(echo "$(now_s) - $t0" | bc -l)
rows2=$(cat "$TMP/exp2.err" "$TMP/exp3.err" | sed -n 's/.*flow_export.rows=\([0-9]*\).*/\1/p' | paste -sd+ | bc)
printf '%-34s %12.0f\n' "rows/s, two exporters at once" "$(echo "$rows2 / $secs2" | bc -l)"
# the narrowing's price grows with the rows it scans (the table's key is (sensor, segment,
# seq): a range prunes partitions by first_ns only): the 16-sensor query again, now that part
# 1 put its rows in the same table
b=$(median5 "$FS" query --fleet "$TMP/fleet.conf" --to "$END" -w /dev/null "$FIVE")
printf '%-8s %14s %14.1f   (with the %s rows of part 1 in the table too)\n' 16 - "$(echo "$b * 1000" | bc -l)" "$(ch 'SELECT count() FROM flowscope.flows')"
