#!/bin/bash
# Live capture benchmark: what each receiver stores of a fast sender's
# packets on a veth pair, what it drops and why, and the CPU it spends by
# thread; then, each receiver pinned to one core and the sender to the
# other, the highest rate it holds without loss.  Baselines (tcpdump,
# netsniff-ng, dumpcap) run in the same run, interleaved with flowscope.
# A benchmark, not a test: it prints, never judges.  Needs root (it makes a
# network namespace and a veth pair, and removes them).
#
#   tools/bench/live_bench.sh [BUILD_DIR] [N]     (default build/, best of N=3)
#   LIVE_PACKETS=2000000 LIVE_SEARCH=1 LIVE_ONLY='regex of receiver names'
#   LIVE_TRAFFIC='64 imix': the traffic of the first table
#   LIVE_STARTUP_QQ='512M 4G': the --qq-size values of the start-up table
#   LIVE_BASE=/path/to/other/flowscope: adds rows afpacket-1q-base, afpacket-2q-base and
#   a start-up row run with that binary (the before of a before/after, same run)
#
# Extra Debian packages (not in the Makefile's DEB_TEST: no test needs them):
# netsniff-ng (trafgen, netsniff-ng), tcpdump, tshark (dumpcap).
#
# Sender: trafgen (one process, core 0) from the namespace into the veth
# peer, 64-byte frames (60 + FCS) or IMIX (7:4:1 of 64, 576, 1500 B), UDP
# to 1024 source ports (1024 flows).  A veth delivers in the sender's
# context, so the sender's rate is also bounded by the receiver's socket
# work on that core.  Per receiver and traffic the best of N runs (most
# stored, then least CPU) is printed:
#   sent      trafgen's "packets outgoing"
#   stored    in the receiver's file or archive (its own count)
#   drops     by reason, as the receiver reports them (kernel ring, QQ, ...)
#   Mpps      the sender's rate (packets / its wall-clock time)
#   cpu_s     user+system seconds of the receiver's process (all threads,
#             exited ones included: /proc/PID/stat) from the send's start
#             until its CPU time stops growing (<= 3 s after the send)
#   us/pkt    cpu_s / stored
#   threads   CPU seconds by thread name (/proc/PID/task/*/stat)
# Search (LIVE_SEARCH=1): receiver on core 1, trafgen on core 0 at a fixed
# rate (-b NNNpps), 4 bisection steps between 50 kpps and the flat-out rate
# of the first part; "lossless" = stored == sent.
set -u
BUILD=${1:-build}
N=${2:-3}
FS=$BUILD/tools/flowscope
PACKETS=${LIVE_PACKETS:-1000000}
ONLY=${LIVE_ONLY:-.}
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "live_bench.sh needs root" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh" # bench_machine
for t in trafgen netsniff-ng tcpdump dumpcap; do
    command -v $t >/dev/null || { echo "needs $t (apt-get install netsniff-ng tcpdump tshark)" >&2; exit 1; }
done
T=$(mktemp -d /tmp/live-bench.XXXXXX)
NS=fslbn$$ A=fslba$$ B=fslbb$$
# (the bench's own shell only: a job signalled before its exec runs the EXIT trap too)
cleanup() {
    [ "$BASHPID" = "$$" ] || return
    ip link del "$A" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS" && ip link add "$A" type veth peer name "$B" && ip link set "$B" netns "$NS" || exit 1
sysctl -qw "net.ipv6.conf.$A.disable_ipv6=1"
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$B.disable_ipv6=1"
ip link set "$A" up && ip netns exec "$NS" ip link set "$B" up
HZ=$(getconf CLK_TCK)
EAL="--no-huge -m 512 --no-pci --no-shconf -l 1" # lcore on core 1: trafgen has core 0

# trafgen packet of SIZE bytes (without FCS, >= 42): UDP from 1024 ports
pkt() {
    echo "{ eth(da=$(cat /sys/class/net/$A/address), sa=02:00:00:00:00:01, type=0x0800)," \
        "ipv4(saddr=10.9.0.1, daddr=10.9.0.2, proto=17), udp(sp=dinc(1024, 2047), dp=9)," \
        "fill(0x00, $(($1 - 42))) }"
}
pkt 60 >"$T/64.cfg"
{ for _ in 1 2 3 4 5 6 7; do pkt 60; done; for _ in 1 2 3 4; do pkt 572; done; pkt 1496; } >"$T/imix.cfg"

# send TRAFFIC COUNT [RATE]: trafgen on core 0; prints packets sent, and its rate (Mpps,
# wall clock) to $T/mpps
send() {
    local rate=() t0 n
    [ -n "${3:-}" ] && rate=(-b "${3}pps")
    t0=$(date +%s%N)
    n=$(ip netns exec "$NS" taskset -c 0 trafgen -o "$B" -i "$T/$1.cfg" -n "$2" -P 1 "${rate[@]}" \
        2>"$T/trafgen.err" | tr '\r' '\n' | sed -n 's/^ *\([0-9]*\) packets outgoing/\1/p')
    awk -v n="$n" -v ns="$(($(date +%s%N) - t0))" 'BEGIN { printf "%.3f\n", n * 1e3 / ns }' >"$T/mpps"
    echo "$n"
}

# snap PID FILE: the process's CPU ticks ("total T") and each thread's ("TID NAME T")
snap() {
    {
        awk '{ sub(/.*\) /, ""); print "total", $12 + $13 }' "/proc/$1/stat"
        for f in /proc/"$1"/task/*/stat; do
            sed 's/^\([0-9]*\) (\(.*\)) /\1\t\2\t/' "$f"
        done | awk -F'\t' '{ n = $2; gsub(/[0-9]+$/, "", n); gsub(/ /, "_", n); split($3, a, " ");
            print $1, n, a[12] + a[13] }'
        cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print "cs", s }'
    } >"$2" 2>/dev/null
}

# cpu BEFORE AFTER: "seconds name=s ... sleeps=N" between two snaps (sleeps: voluntary
# context switches of its live threads, i.e. wake-ups) (threads summed by name without
# their digits; "unattributed": the process total minus its live threads: threads that
# ended in between, and the kernel's rounding of per-thread against per-process time)
cpu() {
    awk -v hz="$HZ" 'NR == FNR { b[$1] = $NF; next }
        $1 == "total" { tot = $2 - b["total"]; next }
        $1 == "cs" { cs = $2 - b["cs"]; next }
        { d = $3 - ($1 in b ? b[$1] : 0); s[$2] += d; live += d }
        END { printf "%.2f ", tot / hz
              for (n in s) if (s[n] >= 0.01 * hz) printf "%s=%.2f ", n, s[n] / hz
              if (tot - live >= 0.01 * hz) printf "unattributed=%.2f ", (tot - live) / hz
              printf "sleeps=%d", cs }' "$1" "$2"
}

# counter FILE NAME: a flowscope counter from its final report
counter() { grep -o "[[:space:]]$2=[0-9]*" "$1" | tail -1 | cut -d= -f2; }

# start NAME: starts receiver NAME (on CPUS if set) in the background; sets PID.
# NAME-base: flowscope's NAME with the $LIVE_BASE binary (a baseline build)
start() {
    local name=${1%-base} out=$T/rx FS=$FS
    [ "$name" != "$1" ] && FS=$LIVE_BASE
    rm -rf "$out" "$out".*
    local pin=()
    [ -n "${CPUS:-}" ] && pin=(taskset -c "$CPUS")
    case $name in
    tcpdump) "${pin[@]}" tcpdump -i "$A" -w "$out.pcap" -B 65536 -q 2>"$out.err" & ;;
    netsniff-ng) "${pin[@]}" netsniff-ng --in "$A" --out "$out.pcap" --silent >"$out.err" 2>&1 & ;;
    dumpcap) "${pin[@]}" dumpcap -i "$A" -w "$out.pcapng" -q >"$out.err" 2>&1 & ;;
    afpacket-1q) "${pin[@]}" "$FS" record --afpacket "$A" --archive "$out" 2>"$out.err" & ;;
    afpacket-2q) "${pin[@]}" "$FS" record --afpacket "$A" --rx-queues 2 --archive "$out" 2>"$out.err" & ;;
    dpdk-af_packet) "${pin[@]}" "$FS" record --dpdk "$EAL --vdev=net_af_packet0,iface=$A" \
        --archive "$out" 2>"$out.err" & ;;
    dpdk-af_xdp) "${pin[@]}" "$FS" record --dpdk "$EAL --vdev=net_af_xdp0,iface=$A" \
        --archive "$out" 2>"$out.err" & ;;
    monitor-noop) "${pin[@]}" "$FS" monitor --afpacket "$A" --module noop 2>"$out.err" & ;;
    esac
    PID=$!
    ready "$1"
}

# ready NAME: waits (<= 20 s) until the receiver is capturing
ready() {
    local pat='.'
    case ${1%-base} in
    tcpdump | dumpcap) pat='[Ll]istening on|Capturing on' ;;
    netsniff-ng) pat='Running' ;;
    afpacket-* | dpdk-*) pat='^flowscope record: QQ' ;;
    monitor-*) pat='^flowscope monitor: ' ;;
    esac
    for _ in $(seq 200); do
        # flowscope: and its QQ pre-fault done (the start-up table measures that apart)
        grep -qE "$pat" "$T/rx.err" 2>/dev/null && ! grep -qs qq-prefault /proc/"$PID"/task/*/comm &&
            return 0
        kill -0 "$PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop NAME: SIGINT, wait (so not in a subshell: $PID is this shell's child); writes
# "stored drops-by-reason" to $T/stop
stop() {
    kill -INT "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    report "$1" >"$T/stop"
}

# report NAME: "stored drops-by-reason" from the stopped receiver's output
report() {
    local e=$T/rx.err
    case $1 in
    tcpdump) # "received by filter" - "captured": still in its buffer when SIGINT ended it
        awk '/packets captured/ { c = $1 } /received by filter/ { r = $1 }
            /dropped by kernel/ { k = $1 } END { printf "%s kernel=%s at_exit=%s\n", c, k, r - c }' "$e" ;;
    netsniff-ng) tr '\r' '\n' <"$e" | awk '/packets passed filter/ { p = $1 }
        /failed filter/ { f = $1 } END { printf "%s filter_space=%s\n", p, f }' ;;
    dumpcap) sed -n 's/^Packets received\/dropped on interface .*: \([0-9]*\)\/\([0-9]*\) (\(.*\)) .*/\1 \3/p' "$e" |
        tr '/' ' ' ;;
    monitor-*) echo "$(counter "$e" 'ingest\.[a-z]*\.packets')(seen)" \
        "ingest=$(counter "$e" 'ingest\.[a-z]*\.drops')" ;;
    *) echo "$(counter "$e" archive.writer.packets)" \
        "ingest=$(counter "$e" 'ingest\.[a-z]*\.drops')" \
        "qq=$(($(counter "$e" qq.overwritten_packets) + $(counter "$e" qq.dropped_busy)))" ;;
    esac
}

# settle: waits (<= 3 s) until the receiver's CPU time stops growing (it has taken every
# packet); a receiver that spins (netsniff-ng 0.6.8 here) is measured over those 3 s too
settle() {
    local a b=x
    for _ in $(seq 15); do
        a=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat" 2>/dev/null)
        [ "$a" = "$b" ] && return
        b=$a
        sleep 0.2
    done
}

# run NAME TRAFFIC COUNT [RATE]: one measurement; prints "sent stored cpu threads | drops"
run() {
    start "$1" || { echo "- - - did-not-start: $(head -c 200 "$T/rx.err" | tr '\n' ' ')"; return; }
    local sent c
    snap "$PID" "$T/cpu0"
    sent=$(send "$2" "$3" "${4:-}")
    sleep 1.2 # tcpdump and dumpcap retire a kernel ring block after 1 s: let them have it
    settle
    snap "$PID" "$T/cpu1"
    c=$(cpu "$T/cpu0" "$T/cpu1")
    stop "$1"
    local s
    s=$(cat "$T/stop")
    echo "$sent ${s%% *} ${c%% *} $(cat "$T/mpps") ${c#* }| ${s#* }"
}

RX="tcpdump netsniff-ng dumpcap afpacket-1q afpacket-2q dpdk-af_packet dpdk-af_xdp monitor-noop"
[ -n "${LIVE_BASE:-}" ] && RX="$RX afpacket-1q-base afpacket-2q-base"
RX=$(for r in $RX; do echo "$r"; done | grep -E "$ONLY" | tr '\n' ' ')
bench_machine live_bench
echo "# $PACKETS packets per run, trafgen flat out (core 0), receivers unpinned; best of N=$N, interleaved"
printf '%-7s %-16s %8s %8s %6s %6s %6s  %s\n' traffic receiver sent stored Mpps cpu_s us/pkt \
    "cpu by thread (s) | drops"
[ -n "${LIVE_DEBUG:-}" ] && { for r in $RX; do CPUS="" run "$r" 64 "$PACKETS"; cat "$T/trafgen.err" "$T/rx.err" | tail -5; done; exit; }
declare -A best
for traffic in ${LIVE_TRAFFIC:-64 imix}; do
    for _ in $(seq "$N"); do
        for r in $RX; do
            line=$(CPUS='' run "$r" "$traffic" "$PACKETS")
            read -r sent stored c _ <<<"$line"
            [ "$c" = - ] && c=1e9 # did not start
            old=${best[$traffic.$r]:-}
            read -r _ ostored oc _ <<<"${old:-- -1 1e9}"
            if [ -z "$old" ] || [ "${stored%%(*}" -gt "${ostored%%(*}" ] 2>/dev/null ||
                { [ "${stored%%(*}" = "${ostored%%(*}" ] && awk "BEGIN{exit !($c < $oc)}"; }; then
                best[$traffic.$r]=$line
            fi
        done
    done
    for r in $RX; do
        read -r sent stored c mpps rest <<<"${best[$traffic.$r]}"
        n=${stored%%(*}
        upp=$(awk -v c="$c" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", c * 1e6 / n; else print "-" }' 2>/dev/null)
        printf '%-7s %-16s %8s %8s %6s %6s %6s  %s\n' "$traffic" "$r" "$sent" "$stored" "$mpps" "$c" "$upp" "$rest"
    done
done

# start-up: exec to capturing (the "QQ" line, printed once the source and the QQ are
# ready), and the CPU spent by then; with LIVE_BASE=another flowscope binary, interleaved
startup() {
    local t0 t1
    rm -rf "$T/rx" "$T/rx.err"
    t0=$(date +%s%N)
    "$1" record --afpacket "$A" --archive "$T/rx" --qq-size "$2" 2>"$T/rx.err" &
    PID=$!
    until grep -q '^flowscope record: QQ' "$T/rx.err" 2>/dev/null; do
        kill -0 $PID 2>/dev/null || break
        sleep 0.005
    done
    t1=$(date +%s%N)
    snap $PID "$T/cpu1"
    echo "total 0" >"$T/cpu0"
    printf '%.3f %s\n' "$(((t1 - t0) / 1000))e-6" "$(cpu "$T/cpu0" "$T/cpu1" | cut -d' ' -f1)"
    kill -INT $PID
    wait $PID
}
echo "# start-up of record --afpacket: seconds from exec to the QQ line, CPU s by then; best of N=$N"
printf '%-8s %-44s %8s %7s\n' qq_size binary ready_s cpu_s
BINS=$FS
[ -n "${LIVE_BASE:-}" ] && BINS="$LIVE_BASE $FS"
declare -A sbest
for size in ${LIVE_STARTUP_QQ:-512M 4G}; do
    for _ in $(seq "$N"); do
        for b in $BINS; do
            r=$(startup "$b" "$size")
            o=${sbest[$size.$b]:-9e9 0}
            awk "BEGIN{exit !(${r%% *} < ${o%% *})}" && sbest[$size.$b]=$r
        done
    done
    for b in $BINS; do
        read -r rs cs <<<"${sbest[$size.$b]}"
        printf '%-8s %-44s %8s %7s\n' "$size" "$b" "$rs" "$cs"
    done
done

[ "${LIVE_SEARCH:-1}" = 1 ] || exit 0
# lossless SEND RATE: 1 if receiver $r on core 1 stored every packet at RATE pps
lossless() {
    local line sent stored
    line=$(CPUS=1 run "$r" 64 "$((RATE_PACKETS))" "$1")
    read -r sent stored _ mpps _ <<<"$line"
    [ "$sent" = "${stored%%(*}" ] && echo "$mpps" >"$T/ok_mpps"
}
RATE_PACKETS=${LIVE_SEARCH_PACKETS:-300000}
HI=${LIVE_SEARCH_MAX:-1000000}
echo "# one core: receiver on core 1 (taskset), trafgen on core 0 at a fixed rate, 64 B, $RATE_PACKETS packets a step;"
echo "# bisection 4 steps over [50000, $HI] pps; lossless = stored == sent"
printf '%-15s %12s %12s %14s\n' receiver lossless_pps lossy_pps "at (sent Mpps)"
for r in $RX; do
    case $r in dpdk-* | *-base) continue ;; esac # the EAL pins its own lcores; baselines: above
    lo=50000 hi=$HI ok=0
    echo - >"$T/ok_mpps"
    if lossless "$hi"; then lo=$hi hi=- ok=1; else
        for _ in 1 2 3 4; do
            mid=$(((lo + hi) / 2))
            if lossless "$mid"; then lo=$mid ok=1; else hi=$mid; fi
        done
        [ $ok = 1 ] || lossless "$lo" || { hi=$lo lo="<$lo"; }
    fi
    printf '%-15s %12s %12s %14s\n' "$r" "$lo" "$hi" "$(cat "$T/ok_mpps")"
done
