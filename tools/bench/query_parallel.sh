#!/bin/bash
# Large answers on all cores: queries whose answer is most of the archive,
# `flowscope query --workers 1` (decompress, match, write on one thread)
# against the default (a worker per online CPU decompressing and matching
# ahead of the writing thread, query/readahead.c), and beside them, in the
# same run and interleaved (A B C A B C ...), `tcpdump -r PCAP -w OUT` of
# the uncompressed capture from the page cache with the same filter, and
# `cat PCAP > OUT` (the copy alone: what writing OUT costs whatever reads).
# Then index rebuild --workers 1 against the default (a writer per worker,
# a segment file each: bounded by the largest segment) and index verify
# --workers 1 against the default (frames decompressed on a second thread
# ahead of the checks).
# Best of N runs each, N printed.  A benchmark, not a test: it prints, never
# judges.
#
#   tools/bench/query_parallel.sh [BUILD_DIR] [SIZE] [N]   (default build/, 384M, 5)
#
# SIZE is what bench_data.sh makes (384M: a 332 MB pcap, 503 k packets, 5000
# flows at a time, 25 % IPv6); OUT is a new file in BENCH_OUT (default /dev/shm, a
# tmpfs: the page cache without a disk's writeback), then /dev/null.
set -u
BUILD=${1:-build}
SIZE=${2:-384M}
N=${3:-5}
FS=$BUILD/tools/flowscope
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh"
OUTDIR=${BENCH_OUT:-/dev/shm}

bench_dataset "$SIZE" || { echo "dataset $SIZE failed" >&2; exit 1; }
bench_machine query_parallel
echo "# $SIZE: pcap $(stat -c %s "$PCAP") bytes, archive $(du -sb "$ARCH" | cut -f1) bytes"
echo "# times: best of $N, interleaved; fs1 = query --workers 1, fsN = query (workers: $(nproc))"

# best_of VAR CMD...: runs CMD once, keeps the least seconds in the array entry VAR
declare -A BEST
run_timed() {
    local key=$1 t0 t
    shift
    t0=$(now_s)
    "$@" >/dev/null 2>&1
    t=$(elapsed "$t0")
    if [ -z "${BEST[$key]:-}" ] || [ "$(echo "$t < ${BEST[$key]}" | bc -l)" = 1 ]; then
        BEST[$key]=$t
    fi
}

# fresh OUT: a file OUT removed before a command writes it (untimed), so that every peer writes
# a new file, as `-w FILE` usually does: overwriting the last answer would add the kernel's
# freeing of its pages (~0.06 s for 332 MB in /dev/shm) to each peer's time
fresh() { [ "$1" = /dev/null ] || rm -f "$1"; }

# tcpdump and flowscope with the filter, writing to $1 (a path)
peer_tcpdump() { tcpdump -Z root -r "$PCAP" -w "$1" ${2:+"$2"}; } # -Z root: no chown of OUT
peer_fs() { "$FS" query --archive "$ARCH" --workers "$2" -w "$1" "$3"; }
peer_cat() { cat "$PCAP" >"$1"; }

ROWS=("whole archive|" "net 10.2.0.0/16 (IPv4: 3/4)|net 10.2.0.0/16" "host 10.2.0.1 (busiest)|host 10.2.0.1"
      "5-tuple|$Q_FLOW")
for out in "$OUTDIR/query_parallel.$$.out" /dev/null; do
    BEST=()
    for _ in $(seq "$N"); do
        fresh "$out" && run_timed cat peer_cat "$out"
        for r in "${ROWS[@]}"; do
            f=${r#*|}
            fresh "$out" && run_timed "td|$r" peer_tcpdump "$out" "$f"
            fresh "$out" && run_timed "f1|$r" peer_fs "$out" 1 "$f"
            fresh "$out" && run_timed "fN|$r" peer_fs "$out" "$(nproc)" "$f"
        done
    done
    fresh "$out" # never /dev/null: it would come back a regular file
    echo "# OUT = $( [ "$out" = /dev/null ] && echo /dev/null || echo "a new file in $OUTDIR")"
    printf '%-30s %9s %11s %9s %9s %9s %9s %8s %8s\n' query packets frames cat_s tcpdump_s fs1_s fsN_s \
        "td/fsN" "fs1/fsN"
    for r in "${ROWS[@]}"; do
        f=${r#*|}
        np=$("$FS" query --archive "$ARCH" -w - "$f" 2>/dev/null | capinfos -M -c - 2>/dev/null |
            awk '/Number of packets/ {print $NF}')
        fr=$("$FS" query --archive "$ARCH" --explain "$f" | sed -n 's/^frames: \([0-9]*\) of \([0-9]*\).*/\1\/\2/p')
        printf '%-30s %9s %11s %9s %9s %9s %9s %7.2fx %7.2fx\n' "${r%%|*}" "$np" "$fr" "${BEST[cat]}" \
            "${BEST[td|$r]}" "${BEST[f1|$r]}" "${BEST[fN|$r]}" \
            "$(echo "${BEST[td|$r]} / ${BEST[fN|$r]}" | bc -l)" \
            "$(echo "${BEST[f1|$r]} / ${BEST[fN|$r]}" | bc -l)"
    done
done

BEST=()
for _ in $(seq "$N"); do
    run_timed verify1 "$FS" index verify --archive "$ARCH" --workers 1
    run_timed verifyN "$FS" index verify --archive "$ARCH"
    run_timed rb1 "$FS" index rebuild --archive "$ARCH" --workers 1
    run_timed rbN "$FS" index rebuild --archive "$ARCH" --workers "$(nproc)"
done
echo "# $(ls "$ARCH/segments" | wc -l) segment files, frames per segment: $("$FS" query --archive "$ARCH" \
    --explain '' | sed -n 's/^  segment [0-9]*: \([0-9]*\) frames/\1/p' | tr '\n' ' ')"
printf '%-30s %9s %9s %8s\n' command 1worker_s N_s "1/N"
printf '%-30s %9s %9s %7.2fx\n' "index rebuild" "${BEST[rb1]}" "${BEST[rbN]}" \
    "$(echo "${BEST[rb1]} / ${BEST[rbN]}" | bc -l)"
printf '%-30s %9s %9s %7.2fx\n' "index verify" "${BEST[verify1]}" "${BEST[verifyN]}" \
    "$(echo "${BEST[verify1]} / ${BEST[verifyN]}" | bc -l)"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
