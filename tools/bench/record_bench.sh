#!/bin/bash
# Record benchmark: full capture of ~1 GB pcaps (from the page cache) into an
# archive: Gbit/s and Mpps, bytes on disk per byte captured, index size; in
# the same run the baselines `tcpdump -r IN -w OUT` and
# `tcpdump -r IN -w - | zstd -1 > OUT.zst`, writing to the same filesystem.
# Then the compression ratio per zstd level on the real captures of
# ../shared/pcaps.  A benchmark, not a test: it prints, never judges.
#
#   [RUNS=3] tools/bench/record_bench.sh [BUILD_DIR]     (default build/; best of RUNS)
#
# Inputs (made once, kept in BENCH_DIR, default /var/tmp/flowscope-bench):
#   text    1 GB of `flowscope gen` traffic with HTTP-like payloads (compressible)
#   random  1 GB of `flowscope gen --payload random` (incompressible, like TLS)
#
# stored/z1: what the archive stores (segment files' tags and zstd frames, as
# `info` counts them, plus the index's bytes in use: LMDB pages holding data,
# not the file's free pages) over the size of `zstd -1` of the whole pcap.
set -u
BUILD=${1:-build}
FS=$BUILD/tools/flowscope
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh"
OUT=$BENCH_DIR/rec
RUNS=${RUNS:-3}
mkdir -p "$OUT"

make_input() { # NAME ARGS...: about 1 GB
    local f=$BENCH_DIR/rec-$1.pcap
    shift
    [ -s "$f" ] || "$FS" gen -w "$f" --flows 20000 --rate 100000 "$@" 2>/dev/null
    echo "$f"
}
TEXT=$(make_input text --packets 1500000)
RANDOMIN=$(make_input random --packets 1400000 --payload random)

bench_machine record_bench
echo "# output on $(df --output=fstype "$OUT" | tail -1) ($OUT); inputs from the page cache"
echo "# seconds: wall clock, start to exit, best of $RUNS runs (RUNS=N; the machine is shared);"
echo "# startup: of those, before the first packet (flow tables; a file's QQ faults in as used)."
echo "# --module stats: the QQ then holds packets until 90 % full (512 MiB touched)"
printf '%-8s %-42s %8s %8s %7s %10s %9s %8s %9s\n' input writer seconds Gbit/s Mpps disk/pcap index% startup \
    stored/z1

# row INPUT NAME SECONDS OUTBYTES [INDEXPCT [STARTUP [STORED/Z1]]]
row() {
    local in=$1 name=$2 secs=$3 outb=$4 idx=${5:--} startup=${6:--} vsz=${7:--}
    local bytes packets
    bytes=$(stat -c %s "$in")
    packets=$(capinfos -M -c "$in" 2>/dev/null | awk '/Number of packets/ {print $NF}')
    printf '%-8s %-42s %8.2f %8.2f %7.2f %10.3f %9s %8s %9s\n' "$(basename "$in" .pcap | sed 's/^rec-//')" \
        "$name" "$secs" "$(echo "$bytes * 8 / $secs / 1000000000" | bc -l)" \
        "$(echo "$packets / $secs / 1000000" | bc -l)" "$(echo "$outb / $bytes" | bc -l)" "$idx" \
        "$startup" "$vsz"
}

# stored ARCHIVE: segment bytes (tags and zstd frames) + index bytes in use, from `info`
stored() {
    "$FS" info --archive "$1" | awk '
        / stored compressed/ { for (i = 1; i < NF; i++) if ($(i + 1) == "stored") s = $i }
        /^index:/ { s += $2 } END { print s + 0 }'
}

# best SECS: keeps the smaller of $best and SECS in $best (and says whether it was smaller)
best() { if [ -z "$best" ] || [ "$(echo "$1 < $best" | bc -l)" = 1 ]; then best=$1; return 0; fi; return 1; }

for in in "$TEXT" "$RANDOMIN"; do
    cat "$in" >/dev/null
    best=
    for r in $(seq "$RUNS"); do
        rm -f "$OUT/t.pcap"
        t0=$(now_s)
        tcpdump -r "$in" -w "$OUT/t.pcap" 2>/dev/null && sync "$OUT/t.pcap"
        best "$(elapsed "$t0")" && outb=$(stat -c %s "$OUT/t.pcap")
    done
    row "$in" "tcpdump -w (baseline)" "$best" "$outb"
    rm -f "$OUT/t.pcap"
    best=
    for r in $(seq "$RUNS"); do
        rm -f "$OUT/t.pcap.zst"
        t0=$(now_s)
        tcpdump -r "$in" -w - 2>/dev/null | zstd -q -1 -o "$OUT/t.pcap.zst" && sync "$OUT/t.pcap.zst"
        best "$(elapsed "$t0")" && outb=$(stat -c %s "$OUT/t.pcap.zst")
    done
    zst1=$(stat -c %s "$OUT/t.pcap.zst")
    row "$in" "tcpdump -w - | zstd -1 (baseline)" "$best" "$outb" - - 1.000
    rm -f "$OUT/t.pcap.zst"
    for cfg in "" "--dumpers 1" "--zstd-level 1" "--dumpers 1 --zstd-level 1" "--zstd-level -1" \
        "--zstd-level -3" "--module stats"; do
        best=
        for r in $(seq "$RUNS"); do
            rm -rf "$OUT/a"
            t0=$(now_s)
            # shellcheck disable=SC2086 # cfg is a list of options
            "$FS" record --read "$in" --archive "$OUT/a" --stats-interval 0 $cfg 2>"$OUT/err" >/dev/null ||
                { echo "record $cfg failed: $(tail -1 "$OUT/err")"; continue 2; }
            secs=$(elapsed "$t0")
            best "$secs" || continue
            idx=$("$FS" info --archive "$OUT/a" | sed -n 's/.*(.*), \([0-9.]*%\) of stored.*/\1/p')
            run=$(sed -n 's/.* run: .* (\([0-9.]*\) s), .*/\1/p' "$OUT/err")
            outb=$(du -sb "$OUT/a" | cut -f1)
            startup=$(echo "$secs - ${run:-0}" | bc -l | xargs printf '%.2f')
            vsz=$(echo "$(stored "$OUT/a") / $zst1" | bc -l | xargs printf '%.3f')
        done
        row "$in" "flowscope record ${cfg:-(defaults: 2 dumpers, -2)}" "$best" "$outb" "$idx" "$startup" \
            "$vsz"
    done
done
rm -rf "$OUT/a"

echo "# compression ratio (pcap bytes / compressed segment bytes) on the real captures;"
echo "# stored/z1: at default settings, segments + index in use over \`zstd -1\` of the file"
printf '%-16s' capture
LEVELS=(3 1 -1 -2 -3 -5)
for l in "${LEVELS[@]}"; do printf ' %8s' "level $l"; done
printf ' %9s\n' stored/z1
for p in "$SHARED"/pcaps/*.pcap; do
    printf '%-16s' "$(basename "$p" .pcap)"
    for l in "${LEVELS[@]}"; do
        rm -rf "$OUT/r"
        "$FS" record --read "$p" --archive "$OUT/r" --zstd-level "$l" --dumpers 1 --stats-interval 0 \
            2>"$OUT/err" >/dev/null
        printf ' %8s' "$("$FS" info --archive "$OUT/r" | awk '/ stored compressed/ {
            for (i = 1; i < NF; i++) { if ($(i + 1) == "captured") p = $i; if ($(i + 1) == "stored") s = $i }
            if (s) printf "%.3f", p / s }')"
    done
    rm -rf "$OUT/r"
    "$FS" record --read "$p" --archive "$OUT/r" --stats-interval 0 2>"$OUT/err" >/dev/null
    printf ' %9.3f\n' "$(echo "$(stored "$OUT/r") / $(zstd -q -1 -c "$p" | wc -c)" | bc -l)"
done
rm -rf "$OUT/r" "$OUT/err"
