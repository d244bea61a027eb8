#!/bin/bash
# Live sources on a veth pair whose peer lives in a network namespace this
# test creates (no traffic leaves it): tcpreplay sends a known capture into
# the peer; flowscope record (--afpacket, --live, --dpdk net_af_packet)
# captures the other end.  Every packet sent is counted (sent = archived +
# counted drops); with no drops the archive holds exactly the capture's
# frames (VLAN tags included), in order for one queue; with drops (only the
# small-QQ case expects them: the captures fit the 32 MiB kernel ring and QQ,
# DPDK's is paced) it holds a part of them, in order.  With 2 AF_PACKET queues both directions
# of every flow reach the same analyzer.
. "$(dirname "$0")/lib.sh"
DIGEST=$1
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
veth_pair "" || { fail "cannot create the veth pair"; finish; }

# in_order_part WANT HAVE: every line of HAVE is a line of WANT, in WANT's order (lines may
# repeat: a capture may hold the same frame twice, so not lib.sh's subsequence, whose
# digests are unique)
in_order_part() {
    awk 'NR == FNR { w[++n] = $0; next }
         { do i++; while (i <= n && w[i] != $0); if (i > n) { bad = 1; exit } }
         END { exit bad }' "$1" "$2"
}

# capture NAME SRC RECORD-ARGS...: record while tcpreplay sends SRC; checks counts and bytes
capture() {
    local name=$1 src=$2 kind
    shift 2
    local a=$TMP/$name err=$TMP/$name.err
    timeout --foreground 120 "$FLOWSCOPE" record --archive "$a" --qq-size 32M \
        --stats-interval 100ms "$@" >"$TMP/$name.out" 2>"$err" &
    local pid=$!
    # the source is open before the QQ line (socket bound, kernel ring set up, DPDK port
    # started): what arrives from then on waits in the kernel's ring for its thread
    wait_for "$err" "^flowscope record: QQ" $pid || { fail "$name: did not start: $(cat "$err")"; return; }
    replay "$name" "$src" $pid "${REPLAY:---topspeed}" || return
    local sent=$SENT got drops
    stop_when_counted "$name" "$err" $pid
    kind=$(sed -n 's/^flowscope record: run: .*), \([a-z]*\) .*/\1/p' "$err")
    got=$(counter "$err" record "ingest.$kind.packets")
    drops=$(counter "$err" record "ingest.$kind.drops")
    [ "$((got + drops))" = "$sent" ] && pass || fail "$name: sent $sent, received $got + dropped $drops"
    # what the QQ had to discard (ring full) is counted there: archived = received - that
    local lost
    lost=$(($(counter "$err" record qq.overwritten_packets) + $(counter "$err" record qq.dropped_busy)))
    fs query --archive "$a" -w "$TMP/$name.pcap" 2>/dev/null || fail "$name: query"
    [ "$(npackets "$TMP/$name.pcap")" = "$((got - lost))" ] && pass ||
        fail "$name: archive holds $(npackets "$TMP/$name.pcap"), counters say $got received, $lost lost in the QQ"
    drops=$((drops + lost))
    "$DIGEST" "$src" >"$TMP/want"
    "$DIGEST" "$TMP/$name.pcap" >"$TMP/have"
    # two queues interleave: the same frames, in any order (sorted, "in order" is "among")
    if grep -q "rx-queues 2" <<<"$*"; then sort -o "$TMP/want" "$TMP/want"; sort -o "$TMP/have" "$TMP/have"; fi
    if [ "$drops" = 0 ]; then
        cmp -s "$TMP/want" "$TMP/have" && pass || fail "$name: archived frames differ from the capture's ($(diff "$TMP/want" "$TMP/have" | head -3))"
    else
        note "$name: $drops packets dropped (counted): the archived frames must be a part of the capture's"
        [ -s "$TMP/have" ] && in_order_part "$TMP/want" "$TMP/have" && pass ||
            fail "$name: $drops dropped; the $(wc -l <"$TMP/have") archived frames are not a part of the capture's, in order"
    fi
}

capture afpacket-dns "$PCAPS/dns_icmp.pcap" --afpacket "$A"
capture afpacket-vlan "$PCAPS/mixed_vlan.pcap" --afpacket "$A"
# a QQ smaller than the capture, whose packets a module holds: the ring overwrites what the
# dumpers have not taken (counted); the rest is archived in order
capture afpacket-small-qq "$PCAPS/http.pcap" --afpacket "$A" --module stats --qq-size 8M
capture live-dns "$PCAPS/dns_icmp.pcap" --live "$A"
# net_af_packet joins a PACKET_FANOUT group with the DEFRAG flag (DPDK 22.11): the kernel
# reassembles IP fragments before it hands them over, so use a capture without fragments;
# and it does not report its kernel ring's drops, so send at a pace it keeps up with even
# in a sanitizer build on a busy machine, with a ring 16 times the default (the other
# sources count every drop, so they get full speed)
REPLAY=--pps=5000 capture dpdk-afpacket "$PCAPS/tcp_anomalies.pcap" \
    --dpdk "--no-huge -m 512 --no-pci --no-shconf -l 0 --vdev=net_af_packet0,iface=$A,framecnt=8192"
capture afpacket-2q "$PCAPS/http.pcap" --afpacket "$A" --rx-queues 2
err=$TMP/afpacket-2q.err
[ "$(counter "$err" record flowtrack.split_across_analyzers)" = 0 ] && pass || fail "2 queues: a flow reached two analyzers: $(grep flowtrack "$err")"
[ "$(counter "$err" record flowtrack.analyzer0.packets)" -gt 0 ] &&
    [ "$(counter "$err" record flowtrack.analyzer1.packets)" -gt 0 ] && pass ||
    fail "2 queues: an analyzer got nothing: $(grep flowtrack "$err")"

# A quiet link: a few packets, then silence.  With no module nothing holds packets in the
# ring and a chunk goes to the dumpers a second after it was started, full or not: a query
# while record runs finds them within seconds (not when 2 MiB more traffic has come, nor
# at shutdown).  With a module they stay in the ring (held until 90 % full, or for
# --qq-hold-max, default 60 s).
# quiet NAME ARGS...: record from $A into $TMP/NAME (status lines every 100 ms); QPID
quiet() {
    local name=$1 a=$TMP/$1 err=$TMP/$1.err
    shift
    timeout --foreground 120 "$FLOWSCOPE" record --archive "$a" --qq-size 32M \
        --stats-interval 100ms --afpacket "$A" "$@" >"$TMP/$name.out" 2>"$err" &
    QPID=$!
    wait_for "$err" "^flowscope record: QQ" $QPID || { fail "$name: did not start: $(cat "$err")"; return 1; }
}
# archived NAME: packets a query finds in $TMP/NAME now
archived() {
    local n=0
    fs query --archive "$TMP/$1" -w "$TMP/$1.pcap" 2>/dev/null && n=$(npackets "$TMP/$1.pcap")
    echo "${n:-0}"
}
# found_while_recording NAME PID: a query finds every packet sent while record still runs
found_while_recording() {
    local n=0 i
    for ((i = 0; i < 100; i++)); do # at most ~20 s
        n=$(archived "$1")
        [ "$n" -ge "$SENT" ] && break
        sleep 0.2
    done
    kill -0 "$2" 2>/dev/null && [ "$n" = "$SENT" ] && pass ||
        fail "$1: a query during the recording found $n of $SENT packets"
}
# stop NAME PID: SIGINT ends the recording, exit 0
stop() {
    kill -INT "$2"
    wait "$2" && pass || fail "$1: record failed: $(tail -2 "$TMP/$1.err")"
}
if quiet quiet && replay quiet "$PCAPS/dns_icmp.pcap" $QPID --pps=1000; then
    grep -q "; packets archived at once" "$TMP/quiet.err" && pass || fail "quiet: $(head -1 "$TMP/quiet.err")"
    found_while_recording quiet $QPID
    stop quiet $QPID
fi
# With a module, two recorders on the link at once, given the same packets: one holding them
# for 3 s (--qq-hold-max 3s), one for the default 60 s.  Once the second has received them
# all (its status line) and then the first has released them to its archive (a query finds
# them), the second has held them for over 3 s too: its archive must have none.
if quiet quiet-hold --module stats --qq-hold-max 3s; then
    HPID=$QPID
    if quiet quiet-module --module stats && replay quiet-module "$PCAPS/dns_icmp.pcap" $QPID --pps=1000; then
        grep -q "; packets held until 90 % full or for 3 s" "$TMP/quiet-hold.err" && pass ||
            fail "quiet-hold: $(head -1 "$TMP/quiet-hold.err")"
        grep -q "; packets held until 90 % full or for 60 s$" "$TMP/quiet-module.err" && pass ||
            fail "quiet-module: $(head -1 "$TMP/quiet-module.err")"
        wait_counted "$TMP/quiet-module.err" && pass ||
            fail "quiet-module: did not receive the $SENT packets sent: $(tail -1 "$TMP/quiet-module.err")"
        found_while_recording quiet-hold $HPID
        n=$(archived quiet-module)
        [ "$n" = 0 ] && pass || fail "quiet-module: $n packets left the ring early (held for 60 s)"
        stop quiet-module $QPID
        n=$(archived quiet-module)
        [ "$n" = "$SENT" ] && pass || fail "quiet-module: $n of $SENT archived at the end"
    fi
    stop quiet-hold $HPID
fi

# errors: one line naming the cause, nothing created
fs record --afpacket fsno$$ --archive "$TMP/e1" 2>"$TMP/err" && fail "no such interface accepted" || pass
one_line_error "$TMP/err" "no such interface: fsno$$"
fs record --live fsno$$ --archive "$TMP/e2" 2>"$TMP/err" && fail "no such interface accepted (live)" || pass
one_line_error "$TMP/err" "fsno$$"
chmod 755 "$TMP"
setpriv --reuid=65534 --regid=65534 --clear-groups "$FLOWSCOPE" record --afpacket "$A" --archive "$TMP/e3" 2>"$TMP/err" &&
    fail "AF_PACKET without privileges accepted" || pass
one_line_error "$TMP/err" "Operation not permitted"
for e in e1 e2 e3; do [ ! -e "$TMP/$e" ] && pass || fail "$e: a failed start created an archive"; done
finish
