#!/bin/bash
# flowscope monitor (immediate mode: modules on the source's bursts, no QQ,
# no archive):
#  * --module stats on a file prints what the stats module prints under
#    record, and its numbers agree with tshark (top flow: -z conv,tcp;
#    totals: the IP packets' frame lengths);
#  * --module ttl prints exactly the flows record --capture triggered
#    --module ttl archives (flowscope flows lists them);
#  * AF_PACKET (and libpcap --live) on a veth pair whose peer lives in a
#    network namespace this test creates (1 and 2 queues: every packet
#    tcpreplay sent is received or counted as dropped, every received packet
#    analysed, the stats totals as tshark counts the capture, each flow on
#    one queue), DPDK with a net_pcap vdev: stopped with SIGINT (exit 0,
#    report);
#  * SIGINT during a paced replay: exit 0, the report, every packet analysed;
#  * bad flags: exit 2 and one line;
#  * nothing written to disk.
. "$(dirname "$0")/lib.sh"
EAL="--no-huge -m 512 --no-pci --no-shconf -l 0"
cd "$TMP" || exit 1 # every run's working directory: it must stay empty (see the end)
mkdir -p "$TMP/out" "$TMP/empty"
O=$TMP/out

# source_counter ERRFILE NAME: the source's counter ingest.KIND.NAME (its total, not a queue's)
source_counter() { sed -n "s/^flowscope monitor: \(.* \)*ingest\.[a-z]*\.$2=\([0-9]*\)\( .*\)*$/\2/p" "$1" | head -1; }

# analysed ERRFILE: the sum of the analyzers' flowtrack.analyzerN.packets
analysed() { grep '^flowscope monitor: flowtrack\.' "$1" | tr ' ' '\n' | grep -E '^flowtrack\.analyzer[0-9]+\.packets=' | awk -F= '{s += $2} END {print s + 0}'; }

# ---- stats on a file: the same output as under record, numbers as tshark counts ----------
SRC=$PCAPS/http.pcap
(cd "$TMP/empty" && fs monitor --read "$SRC" --module stats >"$O/mon.out" 2>"$O/mon.err")
rc=$?
[ $rc -eq 0 ] && pass || fail "monitor --read --module stats: exit $rc: $(cat "$O/mon.err")"
(cd "$O" && fs record --read "$SRC" --archive "$O/rec" --module stats --stats-interval 0 >"$O/rec.out" 2>"$O/rec.err") ||
    fail "record --module stats: $(tail -2 "$O/rec.err")"
grep -q "^Top flows over" "$O/mon.out" && pass || fail "monitor printed no stats report"
# "took" is the wall-clock time of the report itself
if diff <(sed 's/, took .*//' "$O/mon.out") <(sed 's/, took .*//' "$O/rec.out") >"$O/diff"; then pass; else
    fail "monitor's stats output differs from record's: $(head -5 "$O/diff")"
fi

# one window holding the whole capture (100 s: 8 bytes per bit and 100 s keep bps and pps exact)
fs monitor --read "$SRC" --module stats:interval=100s,top=1 >"$O/top.out" 2>"$O/top.err" || fail "stats:interval=100s"
[ "$(grep -c '^Top flows over sliding 100s window' "$O/top.out")" = 1 ] && pass || fail "expected one 100 s report: $(cat "$O/top.out")"
read -r got_a got_pa got_b got_pb got_pkts < <(sed -n 's/^1 [0-9.]* \([0-9.]*\) ipv[46]_5tuple{ip_a: \([^,]*\), ip_b: \([^,]*\), port_a: \([0-9]*\), port_b: \([0-9]*\), proto: tcp}/\2 \4 \3 \5 \1/p' "$O/top.out")
got_pkts=$(awk -v p="$got_pkts" 'BEGIN {printf "%d", p * 100 + 0.5}')
# tshark's conversation with the most frames: "A:PA <-> B:PB ... total frames in field 10"
read -r want_1 want_2 want_pkts < <(tshark -r "$SRC" -q -z conv,tcp 2>/dev/null | awk '$2 == "<->" {print $1, $3, $10}' | sort -k3,3nr | head -1)
have="$got_a:$got_pa $got_b:$got_pb"
if [ "$have" = "$want_1 $want_2" ] || [ "$have" = "$want_2 $want_1" ]; then pass; else
    fail "top flow $have, tshark's is $want_1 <-> $want_2"
fi
[ "$got_pkts" = "$want_pkts" ] && pass || fail "top flow: $got_pkts packets, tshark counts $want_pkts"
# totals: the IP packets (stats ignores the rest) and their frame lengths
read -r want_n want_bytes < <(tshark -r "$SRC" -Y 'ip or ipv6' -T fields -e frame.len 2>/dev/null | awk '{n++; b += $1} END {print n, b}')
grep -q "cumulative packets $want_n \[.*cumulative bytes $want_bytes \[" "$O/top.out" && pass ||
    fail "totals: $(tail -1 "$O/top.out"), tshark: $want_n packets, $want_bytes bytes"
n=$(npackets "$SRC")
[ "$(counter "$O/top.err" monitor ingest.file.packets)" = "$n" ] && pass || fail "ingest counters: $(cat "$O/top.err")"
[ "$(analysed "$O/top.err")" = "$n" ] && pass || fail "not every packet analysed: $(grep flowtrack "$O/top.err")"
grep -q "ended: end of input" "$O/top.err" && pass || fail "report: $(head -1 "$O/top.err")"

# ---- ttl: the flows record --capture triggered archives -----------------------------------
SRC=$PCAPS/tcp_anomalies.pcap
fs monitor --read "$SRC" --module ttl >"$O/ttl.out" 2>"$O/ttl.err" || fail "monitor --module ttl: $(cat "$O/ttl.err")"
fs record --read "$SRC" --archive "$O/ttl" --capture triggered --module ttl --stats-interval 0 2>"$O/rec.err" >/dev/null ||
    fail "record --module ttl: $(tail -2 "$O/rec.err")"
sed -n 's/^[0-9TZ:.-]* trigger ttl: \([a-z0-9]*\) \(.*\) <-> \(.*\)$/\1 \2 \3/p' "$O/ttl.out" | sort >"$O/ttl.have"
fs flows --archive "$O/ttl" | awk 'NR > 1 {print $3, $4, $5}' | sort >"$O/ttl.want"
[ -s "$O/ttl.want" ] && pass || fail "record archived no triggered flow"
cmp -s "$O/ttl.have" "$O/ttl.want" && pass || fail "ttl: monitor printed $(wc -l <"$O/ttl.have") flows, record archived $(wc -l <"$O/ttl.want"): $(diff "$O/ttl.have" "$O/ttl.want" | head -4)"
[ "$(wc -l <"$O/ttl.out")" = "$(counter "$O/ttl.err" monitor monitor.triggers)" ] && pass ||
    fail "trigger lines vs the report's count: $(wc -l <"$O/ttl.out") vs $(grep monitor.triggers "$O/ttl.err")"

# ---- SIGINT during a paced replay ------------------------------------------------------------
# The input is a pipe this test holds open until the monitor has exited: the replay cannot
# end before the signal lands, however slow the machine.  (The capture's 21 s of traffic go
# into it: the signal lands while the monitor still has input, not while it waits on an
# empty pipe.)
mkfifo "$O/sig.in"
timeout --foreground 120 "$FLOWSCOPE" monitor --read - --replay-speed 1 --module stats:interval=1s \
    --stats-interval 100ms <"$O/sig.in" >"$O/sig.out" 2>"$O/sig.err" &
pid=$!
exec 3>"$O/sig.in"
cat "$SRC" >&3 &
writer=$!
# (wait_for, from lib.sh, up to 60 s here)
wait_for "$O/sig.err" " [1-9][0-9]* pkts," $pid 600 && pass || fail "the paced replay never started: $(cat "$O/sig.err")"
kill -INT $pid
wait $pid
rc=$?
exec 3>&-
kill $writer 2>/dev/null # (it ends on its own once the pipe has no reader)
wait $writer 2>/dev/null
rm -f "$O/sig.in"
[ $rc -eq 0 ] && pass || fail "SIGINT: exit $rc: $(tail -2 "$O/sig.err")"
grep -q "ended: signal" "$O/sig.err" && pass || fail "the report does not say it ended on a signal: $(grep run: "$O/sig.err")"
got=$(counter "$O/sig.err" monitor ingest.file.packets)
[ -n "$got" ] && [ "$got" -gt 0 ] && [ "$got" -lt "$(npackets "$SRC")" ] && pass || fail "SIGINT: $got packets received"
[ "$(analysed "$O/sig.err")" = "$got" ] && pass || fail "SIGINT: received $got, analysed $(analysed "$O/sig.err")"
grep -q "^Active flows" "$O/sig.out" && pass || fail "SIGINT: no stats report printed"

# ---- DPDK: net_pcap vdev ------------------------------------------------------------------------
for name in http mixed_vlan; do
    SRC=$PCAPS/$name.pcap
    n=$(npackets "$SRC")
    timeout --foreground 120 "$FLOWSCOPE" monitor --dpdk "$EAL --vdev=net_pcap0,rx_pcap=$SRC" --module stats \
        --stats-interval 100ms >"$O/dpdk.out" 2>"$O/dpdk.err" &
    pid=$!
    wait_for "$O/dpdk.err" " $n pkts," $pid 600 && pass || fail "dpdk $name: never saw $n packets: $(tail -3 "$O/dpdk.err")"
    kill -INT $pid
    wait $pid
    rc=$?
    [ $rc -eq 0 ] && pass || fail "dpdk $name: exit $rc: $(tail -3 "$O/dpdk.err")"
    grep -q "ended: signal; timestamps in microseconds: DPDK's net_pcap delivers no nanoseconds$" \
        "$O/dpdk.err" && pass || fail "dpdk $name: report (ended: signal, net_pcap's microseconds): $(grep run: "$O/dpdk.err")"
    [ "$(counter "$O/dpdk.err" monitor ingest.dpdk.packets)" = "$n" ] &&
        [ "$(counter "$O/dpdk.err" monitor ingest.dpdk.drops)" = 0 ] && pass ||
        fail "dpdk $name: counters: $(grep ingest.dpdk "$O/dpdk.err")"
    [ "$(analysed "$O/dpdk.err")" = "$n" ] && pass || fail "dpdk $name: analysed $(analysed "$O/dpdk.err") of $n"
    # the stats module saw every IP packet (VLAN-tagged too): its totals, as tshark counts them
    read -r ip ipbytes < <(tshark -r "$SRC" -Y 'ip or ipv6' -T fields -e frame.len 2>/dev/null | awk '{n++; b += $1} END {print n, b}')
    grep -q "cumulative packets $ip \[.*cumulative bytes $ipbytes \[" "$O/dpdk.out" && pass ||
        fail "dpdk $name: stats totals $(tail -1 "$O/dpdk.out"), tshark: $ip IP packets, $ipbytes bytes"
done

# ---- AF_PACKET on a veth pair ------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
    note "AF_PACKET: needs root (network namespaces): the rest runs, then the test is skipped"
else
    veth_pair m || fail "cannot create the veth pair"

    # live NAME SRC ARGS...: monitor while tcpreplay sends SRC; stop with SIGINT; check counts
    live() {
        local name=$1 src=$2
        shift 2
        local err=$O/$name.err
        timeout --foreground 120 "$FLOWSCOPE" monitor --stats-interval 100ms --module stats "$@" \
            >"$O/$name.out" 2>"$err" &
        local pid=$!
        wait_for "$err" " pkts," $pid 600 || { fail "$name: did not start: $(cat "$err")"; return; }
        replay "$name" "$src" $pid || return
        local sent=$SENT got drops
        stop_when_counted "$name" "$err" $pid
        grep -q "ended: signal" "$err" && pass || fail "$name: report: $(grep run: "$err")"
        got=$(source_counter "$err" packets)
        drops=$(source_counter "$err" drops)
        [ "$((got + drops))" = "$sent" ] && pass || fail "$name: sent $sent, received $got + dropped $drops"
        [ "$(analysed "$err")" = "$got" ] && pass || fail "$name: received $got, analysed $(analysed "$err")"
        note "$name: sent $sent; $(grep -E 'ingest\.[a-z]*\.packets=|flowtrack\.' "$err" | tr '\n' ' ')"
        # with nothing dropped the stats module saw the capture's IP packets (VLAN tags put back)
        if [ "$drops" = 0 ]; then
            local ip ipbytes
            read -r ip ipbytes < <(tshark -r "$src" -Y 'ip or ipv6' -T fields -e frame.len 2>/dev/null | awk '{n++; b += $1} END {print n, b}')
            grep -q "cumulative packets $ip \[.*cumulative bytes $ipbytes \[" "$O/$name.out" && pass ||
                fail "$name: stats totals $(tail -1 "$O/$name.out"), tshark: $ip IP packets, $ipbytes bytes"
        fi
    }

    live afpacket-dns "$PCAPS/dns_icmp.pcap" --afpacket "$A"
    live afpacket-vlan "$PCAPS/mixed_vlan.pcap" --afpacket "$A"
    live live-dns "$PCAPS/dns_icmp.pcap" --live "$A"
    live afpacket-2q "$PCAPS/http.pcap" --afpacket "$A" --rx-queues 2
    err=$O/afpacket-2q.err
    [ "$(counter "$err" monitor flowtrack.split_across_analyzers)" = 0 ] && pass || fail "2 queues: a flow reached two queues: $(grep flowtrack "$err")"
    [ "$(counter "$err" monitor flowtrack.analyzer0.packets)" -gt 0 ] &&
        [ "$(counter "$err" monitor flowtrack.analyzer1.packets)" -gt 0 ] && pass ||
        fail "2 queues: a queue got nothing: $(grep flowtrack "$err")"
    [ -n "$(counter "$err" monitor ingest.afpacket.q1.packets)" ] && pass || fail "2 queues: no per-queue counters"
fi

# ---- bad flags: exit 2, one line ----------------------------------------------------------------
bad_flag() {
    local pat=$1
    shift
    (cd "$TMP/empty" && fs monitor "$@" >/dev/null 2>"$O/bad.err")
    local rc=$?
    [ $rc -eq 2 ] && pass || fail "monitor $*: exit $rc, expected 2"
    one_line_error "$O/bad.err" "^flowscope monitor: .*$pat"
}
bad_flag "a source .* is required" --module stats
bad_flag "give one source" --read "$PCAPS/http.pcap" --live lo
bad_flag "no module 'nosuch'" --read "$PCAPS/http.pcap" --module nosuch
bad_flag "no module 'nosuch'" --dpdk "$EAL" --module nosuch
bad_flag "--rx-queues needs --dpdk or --afpacket" --live lo --rx-queues 2
bad_flag "--analyzers" --read "$PCAPS/http.pcap" --analyzers 2
bad_flag "--archive" --read "$PCAPS/http.pcap" --archive "$TMP/empty/a"
bad_flag "--rx-queues '0'" --afpacket lo --rx-queues 0
bad_flag "nothing to run: give --module M or --trigger BPF" --read "$PCAPS/http.pcap"

# ---- a file cut short: the cut packet is analysed (nothing is stored), exit 3 ------------------
size=$(stat -c %s "$PCAPS/http.pcap")
head -c $((size - 10)) "$PCAPS/http.pcap" >"$O/cut.pcap"
fs monitor --read "$O/cut.pcap" --module stats --stats-interval 0 >/dev/null 2>"$O/cut.err"
rc=$?
[ $rc -eq 3 ] && pass || fail "monitor on a cut file: exit $rc, expected 3"
grep -q "cut.pcap: truncated at byte $((size - 10)): last record has 56 of 66 captured bytes (analysed as a 56-byte packet)" \
    "$O/cut.err" && ! grep -q "stored" "$O/cut.err" && pass || fail "monitor on a cut file: $(tail -1 "$O/cut.err")"
[ "$(analysed "$O/cut.err")" = "$(npackets "$PCAPS/http.pcap")" ] && pass || fail "the cut packet was not analysed: $(grep flowtrack "$O/cut.err")"
fs monitor --read "$TMP/nosuch.pcap" --module stats 2>"$O/bad.err" >/dev/null
[ $? -eq 1 ] && pass || fail "a missing file: expected exit 1"
one_line_error "$O/bad.err" "nosuch.pcap: No such file"

# ---- nothing written to disk ------------------------------------------------------------------
# every monitor run but the first had the test's own directory as its working directory, the
# first and the bad flags the empty one; only this test's files are in the first
[ -z "$(ls -A "$TMP/empty")" ] && pass || fail "monitor wrote into its working directory: $(ls -A "$TMP/empty")"
[ "$(ls -A "$TMP" | sort | tr '\n' ' ')" = "empty out " ] && pass || fail "files appeared: $(ls -A "$TMP")"
[ "$(id -u)" = 0 ] || skip "AF_PACKET and --live on a veth pair need root (network namespaces)"
finish
