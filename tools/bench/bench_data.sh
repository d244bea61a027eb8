# Shared by the query benchmarks (sourced, not run): builds, or reuses, a
# dataset of a given size: a `flowscope gen` capture spanning hours with a
# real capture (../shared/pcaps/dns_icmp.pcap, one client's DNS and ICMP) laid
# into the middle of it as the needle, and an archive recorded from it.
#
#   BENCH_DIR  where datasets live (default /var/tmp/flowscope-bench); the
#              captures are deterministic and kept between runs, archives are
#              recorded again each run (they depend on the build)
#
# After `bench_dataset SIZE` (1G, 10G, ...): $PCAP, $ARCH, $NEEDLE_FROM (epoch
# seconds of the needle's first packet) and $RECORD_SECS are set.
BENCH_DIR=${BENCH_DIR:-/var/tmp/flowscope-bench}
SHARED=${SHARED:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../shared" 2>/dev/null && pwd)}
GEN_RATE=1500       # packets per second of capture time: 10G spans about 3 hours
GEN_PKT_BYTES=800   # mean pcap bytes per packet of this traffic (720 at 1G, 840 at 10G)
GEN_START=1795000000

# bench_machine NAME: the two lines every benchmark starts with: the machine (CPU model,
# CPUs online, memory, kernel) and the date; the commit of the flowscope measured
# ($FS --version) and the load average
bench_machine() {
    local model
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    echo "# $1  machine: $model, $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB," \
        "Linux $(uname -r), $(date -u +%FT%TZ)"
    echo "# flowscope $("$FS" --version 2>/dev/null | sed -n 's/^commit //p'), load" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# now_s: wall clock in seconds with nanoseconds
now_s() { date +%s.%N; }

# elapsed T0: seconds since T0, 3 decimals
elapsed() { echo "$(now_s) - $1" | bc -l | xargs printf '%.3f'; }

bench_dataset() {
    local size=$1 bytes packets d
    bytes=$(numfmt --from=iec "$size")
    packets=$((bytes / GEN_PKT_BYTES))
    d=$BENCH_DIR/$size
    mkdir -p "$d"
    PCAP=$d/traffic.pcap
    ARCH=$d/archive
    local span=$((packets / GEN_RATE))
    NEEDLE_FROM=$((GEN_START + span / 2))
    if [ ! -s "$PCAP" ]; then
        echo "# making $size of traffic in $PCAP ($packets packets over ${span}s) ..." >&2
        "$FS" gen -w "$d/gen.pcap" --packets "$packets" --rate $GEN_RATE --flows 5000 \
            --start $GEN_START 2>/dev/null || return 1
        local first
        first=$(tcpdump -tt -r "$SHARED/pcaps/dns_icmp.pcap" -c 1 2>/dev/null | cut -d' ' -f1)
        editcap -F nsecpcap -t "$(echo "$NEEDLE_FROM - $first" | bc -l)" \
            "$SHARED/pcaps/dns_icmp.pcap" "$d/needle.pcap" || return 1
        mergecap -F nsecpcap -w "$PCAP.tmp" "$d/gen.pcap" "$d/needle.pcap" || return 1
        mv "$PCAP.tmp" "$PCAP"
        rm -f "$d/gen.pcap" "$d/needle.pcap"
    fi
    cat "$PCAP" >/dev/null # into the page cache, for the record and for tcpdump
    rm -rf "$ARCH"
    local t0
    t0=$(now_s)
    "$FS" record --read "$PCAP" --archive "$ARCH" --capture all --stats-interval 0 \
        2>"$d/record.log" || { cat "$d/record.log" >&2; return 1; }
    RECORD_SECS=$(elapsed "$t0")
}

# median_time CMD...: runs CMD 5 times (after one warm-up), prints the median seconds
median_time() {
    local i t0 ts=()
    "$@" >/dev/null 2>&1
    for i in 1 2 3 4 5; do
        t0=$(now_s)
        "$@" >/dev/null 2>&1
        ts+=("$(elapsed "$t0")")
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p
}

# scan_time FILTER: seconds tcpdump takes to filter the whole capture (once: it is slow)
scan_time() {
    local t0
    t0=$(now_s)
    tcpdump -r "$PCAP" -w - "$1" 2>/dev/null >/dev/null
    elapsed "$t0"
}

# needle queries: one 5-tuple (a DNS-over-TCP session) and one host
Q_FLOW="host 10.99.2.10 and host 10.99.2.53 and tcp port 36735 and tcp port 53"
Q_HOST="host 10.99.2.10"
