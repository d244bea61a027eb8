#!/bin/bash
# Ingest benchmark: Mpps and Gbit/s per source into the QQ (no analysis, no
# dumping), with `tcpdump -i IFACE -w /dev/null` on the same veth traffic as
# the baseline, in the same run.  A benchmark, not a test: it prints, never
# judges.  Needs root (it creates a network namespace and a veth pair, and
# removes them).
#
#   tools/bench/ingest_bench.sh [BUILD_DIR]      (default build/)
#
# Traffic: `flowscope gen` captures (small packets, and a mix), sent with
# `tcpreplay --topspeed` from the namespace into the veth.  On a veth the
# sender is usually the limit (FACTS.md: ~0.5-0.6 Mpps), so the columns that
# matter are the drops and how close each source gets to what was sent.
# File sources (pcap file, DPDK net_pcap) read a file as fast as they can.
set -u
BUILD=${1:-build}
FS=$BUILD/tools/flowscope
IB=$BUILD/tools/bench/ingest_bench
[ -x "$FS" ] && [ -x "$IB" ] || { echo "build first (make)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "ingest_bench.sh needs root" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh" # bench_machine
T=$(mktemp -d /tmp/ingest-bench.XXXXXX)
NS=fsbn$$ A=fsba$$ B=fsbb$$
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

"$FS" gen -w "$T/small.pcap" --packets 500000 --flows 1000 --size 0-0 --udp 50 2>/dev/null
"$FS" gen -w "$T/mix.pcap" --packets 300000 --flows 1000 2>/dev/null
EAL="--no-huge -m 512 --no-pci --no-shconf -l 0"

bench_machine ingest_bench
echo "# veth rows: tcpreplay --topspeed into the peer; rate = packets received / capture time"
printf '%-10s %-22s %9s %9s %9s %8s %8s\n' traffic source sent received drops Mpps Gbit/s

# replay TRAFFIC: sends it, prints packets sent
replay() {
    ip netns exec "$NS" tcpreplay -i "$B" --topspeed "$1" 2>&1 | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p'
}

# row TRAFFIC NAME CMD...: runs a capturer (ingest_bench) while replaying
row() {
    local traffic=$1 name=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err" &
    local pid=$!
    sleep 1
    local sent
    sent=$(replay "$T/$traffic.pcap")
    wait $pid
    read -r _ pk _ by _ dr _ secs _ mpps _ gbps <"$T/out"
    printf '%-10s %-22s %9s %9s %9s %8s %8s\n' "$traffic" "$name" "$sent" "${pk:-?}" "${dr:-?}" \
        "${mpps:-?}" "${gbps:-?}"
}

# the baseline: tcpdump on the same traffic, in the same run
baseline() {
    local traffic=$1
    tcpdump -i "$A" -w /dev/null -B 65536 2>"$T/tcpdump.err" &
    local pid=$!
    sleep 1
    local sent t0 t1
    t0=$(date +%s.%N)
    sent=$(replay "$T/$traffic.pcap")
    t1=$(date +%s.%N)
    sleep 1
    kill -INT $pid
    wait $pid
    local cap drop
    cap=$(sed -n 's/^\([0-9]*\) packets captured/\1/p' "$T/tcpdump.err")
    drop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$T/tcpdump.err")
    local secs
    secs=$(awk "BEGIN{print $t1 - $t0}")
    printf '%-10s %-22s %9s %9s %9s %8.3f %8s\n' "$traffic" "tcpdump (baseline)" "$sent" "$cap" "$drop" \
        "$(awk "BEGIN{print $cap / $secs / 1e6}")" "(sender-timed)"
}

for traffic in small mix; do
    baseline "$traffic"
    row "$traffic" "afpacket 1 queue" "$IB" afpacket "$A" 1
    row "$traffic" "afpacket 2 queues" "$IB" afpacket "$A" 2
    row "$traffic" "live (libpcap)" "$IB" live "$A"
    row "$traffic" "dpdk net_af_packet" "$IB" dpdk "$EAL --vdev=net_af_packet0,iface=$A"
done
echo "# dpdk net_af_packet (DPDK 22.11) does not report its kernel ring's drops: sent - received is its loss"
echo "# file rows: the source reads a file flat out (no veth, no sender limit)"
for traffic in small mix; do
    read -r _ pk _ by _ dr _ secs _ mpps _ gbps < <("$IB" file "$T/$traffic.pcap")
    printf '%-10s %-22s %9s %9s %9s %8s %8s\n' "$traffic" "file (--read)" - "$pk" "$dr" "$mpps" "$gbps"
    read -r _ pk _ by _ dr _ secs _ mpps _ gbps < <("$IB" dpdk "$EAL --vdev=net_pcap0,rx_pcap=$T/$traffic.pcap")
    printf '%-10s %-22s %9s %9s %9s %8s %8s\n' "$traffic" "dpdk net_pcap" - "$pk" "$dr" "$mpps" "$gbps"
done
