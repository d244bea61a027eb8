#!/bin/bash
# DPDK source: net_pcap vdevs replay captures into flowscope record --dpdk; the
# archive must hold exactly the capture's packets (net_pcap hands over the
# file's timestamps, so the comparison with tcpdump is byte for byte).  The
# test stops the recorder with SIGINT once the status line shows every packet
# (net_pcap just stops delivering at the end of the file).  Also the errors:
# EAL failure, no such port, too many queues.
. "$(dirname "$0")/lib.sh"
EAL="--no-huge -m 512 --no-pci --no-shconf -l 0"

# wait_packets ERRFILE N PID: until the status line reports N packets (max 60 s)
wait_packets() {
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q " $2 pkts," "$1" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

for name in dns_icmp mixed_vlan tcp_anomalies http; do
    src=$PCAPS/$name.pcap
    a=$TMP/dpdk.$name
    n=$(npackets "$src")
    timeout --foreground 120 "$FLOWSCOPE" record --dpdk "$EAL --vdev=net_pcap0,rx_pcap=$src" --archive "$a" \
        --qq-size 32M --stats-interval 100ms 2>"$a.err" &
    pid=$!
    if wait_packets "$a.err" "$n" $pid; then pass; else fail "$name: never saw $n packets: $(tail -3 "$a.err")"; fi
    kill -INT $pid
    wait $pid
    rc=$?
    [ $rc -eq 0 ] && pass || fail "$name: record --dpdk exit $rc: $(tail -3 "$a.err")"
    grep -q "ended: signal" "$a.err" && pass || fail "$name: report does not say it ended on a signal"
    [ "$(counter "$a.err" record ingest.dpdk.packets)" = "$n" ] &&
        [ "$(counter "$a.err" record ingest.dpdk.drops)" = 0 ] && pass ||
        fail "$name: counters: $(grep ingest.dpdk "$a.err")"
    oracle "$src" "$TMP/exp.pcap"
    fs query --archive "$a" -w "$TMP/got.pcap" 2>/dev/null && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
        fail "$name: archive differs from the capture ($(npackets "$TMP/got.pcap") of $n packets)"
    grep -q "^  ingest.dpdk.packets=$n " <(fs info --archive "$a") && pass || fail "$name: info lacks the run's counters"
done

# a nanosecond file through net_pcap: DPDK 22.11's PMD opens it with pcap_open_offline and
# hands over microseconds, so the archive holds the file's times cut to the microsecond
# (tcpdump's microsecond copy, byte for byte) and the run line says so
fs gen -w "$TMP/ns.pcap" --packets 500 --seed 3 2>/dev/null || fail "gen ns.pcap"
a=$TMP/dpdk.ns # (each recording's stderr a file of its own: an earlier one's lines would match)
timeout --foreground 120 "$FLOWSCOPE" record --dpdk "$EAL --vdev=net_pcap0,rx_pcap=$TMP/ns.pcap" \
    --archive "$a" --qq-size 32M --stats-interval 100ms 2>"$a.err" &
pid=$!
wait_packets "$a.err" 500 $pid && pass || fail "ns.pcap: never saw 500 packets: $(tail -3 "$a.err")"
kill -INT $pid
wait $pid || fail "ns.pcap: record --dpdk exit $?"
grep -q "^flowscope record: run: .*dpdk port 0 (net_pcap), .*ended: signal; timestamps in microseconds: DPDK's net_pcap delivers no nanoseconds$" \
    "$a.err" && pass || fail "ns.pcap: the run line does not say net_pcap's timestamps are microseconds: $(grep 'run:' "$a.err")"
tcpdump -Z root -r "$TMP/ns.pcap" -w "$TMP/us-exp.pcap" 2>/dev/null # microseconds: cut, not rounded
fs query --archive "$TMP/dpdk.ns" --ts micro -w "$TMP/us-got.pcap" 2>/dev/null &&
    cmp -s "$TMP/us-exp.pcap" "$TMP/us-got.pcap" && pass ||
    fail "ns.pcap: the archive is not the file's packets at microsecond precision"

# errors: one line each, non-zero exit, nothing archived
expect_err() {
    local pat=$1
    shift
    "$@" 2>"$TMP/err" >/dev/null
    local rc=$?
    [ $rc -ne 0 ] && pass || fail "'$*' succeeded"
    one_line_error "$TMP/err" "$pat"
}
expect_err "DPDK EAL initialisation failed" fs record --dpdk "--no-such-eal-option" --archive "$TMP/e1"
expect_err "DPDK port 0 does not exist" fs record --dpdk "$EAL" --archive "$TMP/e2"
expect_err "DPDK port 3 does not exist" fs record --dpdk "$EAL --vdev=net_pcap0,rx_pcap=$PCAPS/dns_icmp.pcap" --port 3 --archive "$TMP/e3"
expect_err "has 1 RX queues; --rx-queues asks for 2" \
    fs record --dpdk "$EAL --vdev=net_pcap0,rx_pcap=$PCAPS/dns_icmp.pcap" --rx-queues 2 --archive "$TMP/e4"
for e in e1 e2 e3 e4; do [ ! -e "$TMP/$e" ] && pass || fail "$e: an archive was created by a failed start"; done
finish
