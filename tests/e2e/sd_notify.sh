#!/bin/bash
# record and monitor under a service manager (sd_notify(3), docs/cli.md "Running as a
# service"), without systemd: notify_listen.py plays its part on a unix datagram socket in
# the test's directory and runs the command with NOTIFY_SOCKET (and WATCHDOG_USEC) set.
#  * READY=1 comes once the source is open and the archive recovered: at READY the archive's
#    files exist and stderr already holds the recovery line; STATUS= carries the status
#    lines (the same text as on stderr); WATCHDOG=1 comes while the pipeline is idle but
#    alive (a FIFO the test holds open, nothing written yet); STOPPING=1 once the input
#    ends, and the archive then holds every packet (capinfos counts them).
#  * no WATCHDOG_USEC, or a WATCHDOG_PID that is not ours: READY=1 but no WATCHDOG=1.
#  * a hung analyzer (fault_module.so:hang never returns from a packet): the pings stop
#    while the status lines go on; the same run with a module that works goes on pinging.
#  * monitor: READY=1, STATUS=, WATCHDOG=1, STOPPING=1.
# Every wait is for an event (a line from the listener or on stderr), bounded.
. "$(dirname "$0")/lib.sh"
LISTEN="python3 $(dirname "$0")/notify_listen.py"
HTTP=$PCAPS/http.pcap
DNS=$PCAPS/dns_icmp.pcap

# listen NAME ARGS...: runs `flowscope ARGS` under the listener in the background: the
# datagrams' lines in $TMP/NAME.msgs, stdout and stderr in $TMP/NAME.out and .err, the listener's pid in $LPID,
# flowscope's in $TMP/NAME.pid.  With AT_READY set: the sizes of those paths at READY=1.
listen() {
    local name=$1 at=() p
    shift
    for p in ${AT_READY:-}; do at+=(--at-ready "$p"); done
    rm -f "$TMP/$name.sock" "$TMP/$name.msgs" "$TMP/$name.pid"
    : >"$TMP/$name.err"
    $LISTEN "$TMP/$name.sock" "$TMP/$name.msgs" "$TMP/$name.pid" "${at[@]}" -- \
        "$FLOWSCOPE" "$@" >"$TMP/$name.out" 2>>"$TMP/$name.err" 3>&- &
    LPID=$!
}

# count NAME REGEX [FROM]: lines of NAME's messages matching REGEX (after line FROM)
count() { tail -n +"$((${3:-0} + 1))" "$TMP/$1.msgs" 2>/dev/null | grep -cE "$2"; }

# wait_msgs NAME REGEX N [FROM]: until N lines match (after line FROM); 1 if the listener
# ends first or after ~60 s
wait_msgs() {
    local i
    for ((i = 0; i < 600; i++)); do
        [ "$(count "$1" "$2" "${4:-0}")" -ge "$3" ] && return 0
        kill -0 "$LPID" 2>/dev/null || { [ "$(count "$1" "$2" "${4:-0}")" -ge "$3" ]; return; }
        sleep 0.1
    done
    return 1
}

# first_line NAME REGEX: the line number of the first message matching REGEX (0: none)
first_line() { grep -nE -m1 "$2" "$TMP/$1.msgs" 2>/dev/null | cut -d: -f1 | grep . || echo 0; }

# ---- record from a FIFO the test holds: ready, status, idle pings, stopping -----------------
A=$TMP/a
crashed_archive "$A" "$DNS" || fail "could not leave an archive to recover"
mkfifo "$TMP/in.pcap"
export WATCHDOG_USEC=400000 # pings every 200 ms
AT_READY="$A/FORMAT $A/index/data.mdb $TMP/rec.err" \
    listen rec record --read "$TMP/in.pcap" --archive "$A" --qq-size 32M --status-interval 100ms
exec 3<>"$TMP/in.pcap" # the writer: the recorder waits for it
timeout 60 head -c 24 "$HTTP" >&3 # the pcap header alone: the source opens, then waits
wait_msgs rec '^READY=1$' 1 && pass || fail "record: no READY=1: $(head -c 300 "$TMP/rec.err")"
for f in "$A/FORMAT" "$A/index/data.mdb"; do
    grep -qE "^at-ready $f [0-9]+$" "$TMP/rec.msgs" && pass || fail "READY=1 came before $f existed"
done
size=$(sed -n "s|^at-ready $TMP/rec.err \([0-9]*\)$|\1|p" "$TMP/rec.msgs")
head -c "${size:-0}" "$TMP/rec.err" | grep -q 'archive: segment 1: left open by a crash' && pass ||
    fail "READY=1 came before the archive was recovered (stderr at READY: $(head -c "${size:-0}" "$TMP/rec.err" | head -c 300))"
grep -qE '^STATUS=recording file .*in\.pcap into ' "$TMP/rec.msgs" && pass || fail "READY=1 without its STATUS="
# idle but alive: the status lines and the pings go on while nothing arrives
wait_msgs rec '^STATUS=file .* 0 pkts,' 2 && pass || fail "no STATUS= with the status line"
wait_msgs rec '^WATCHDOG=1$' 2 && pass || fail "no WATCHDOG=1 while idle: $(tr '\n' ' ' <"$TMP/rec.msgs" | head -c 300)"
[ "$(first_line rec '^READY=1$')" -lt "$(first_line rec '^WATCHDOG=1$')" ] && pass || fail "WATCHDOG=1 before READY=1"
count rec '^STOPPING=1$' | grep -qx 0 && pass || fail "STOPPING=1 while the source is still open"
# the rest, bounded: a recorder that is gone would leave the FIFO without a reader
timeout 120 tail -c +25 "$HTTP" >&3 || fail "could not write the packets into the FIFO"
exec 3>&- # end of input
wait "$LPID"
rc=$?
[ $rc -eq 0 ] && pass || fail "record: exit $rc: $(tail -3 "$TMP/rec.err")"
[ "$(count rec '^STOPPING=1$')" = 1 ] && pass || fail "no STOPPING=1 at the end"
[ "$(first_line rec '^STOPPING=1$')" -gt "$(first_line rec '^WATCHDOG=1$')" ] && pass || fail "STOPPING=1 before the pings"
# STATUS= is the status line, as printed on stderr
bad=0
while IFS= read -r line; do
    grep -qxF "flowscope record: ${line#STATUS=}" "$TMP/rec.err" || bad=$((bad + 1))
done < <(grep -E '^STATUS=file .* pkts,' "$TMP/rec.msgs")
[ "$bad" = 0 ] && pass || fail "$bad STATUS= lines are not status lines of stderr"
# 8978 packets before, plus the crashed run's (recovered)
[ "$(stored "$A")" -ge "$(npackets "$HTTP")" ] && pass || fail "archive holds $(stored "$A") packets, $HTTP has $(npackets "$HTTP")"

# ---- no watchdog asked for, or asked of another process: no pings ------------------------------
for how in unset other-pid; do
    if [ $how = unset ]; then unset WATCHDOG_USEC WATCHDOG_PID; else
        export WATCHDOG_USEC=200000 WATCHDOG_PID=1; fi
    listen nowd record --read "$DNS" --replay-speed 2 --archive "$TMP/nowd-$how" --qq-size 16M \
        --status-interval 100ms
    wait_msgs nowd '^STATUS=file .* pkts,' 6 || fail "$how: no status lines"
    wait "$LPID" || fail "$how: record: exit $?: $(tail -2 "$TMP/nowd.err")"
    [ "$(count nowd '^READY=1$')" = 1 ] && [ "$(count nowd '^WATCHDOG=1$')" = 0 ] && pass ||
        fail "WATCHDOG_USEC $how: $(count nowd '^READY=1$') READY=1 and $(count nowd '^WATCHDOG=1$') WATCHDOG=1 (want 1, 0)"
done
unset WATCHDOG_PID

# ---- a hung analyzer stops the pings; a working module does not -------------------------------
# status lines and the watchdog's checks at the same period (100 ms): alive, about one ping
# per status line; hung, none after the hang but the one that may already have been due
if [ -z "${FAULT_MODULE:-}" ]; then fail "FAULT_MODULE is not set (tests/e2e/CMakeLists.txt)"; else
    export WATCHDOG_USEC=200000
    for mod in noop "$FAULT_MODULE:hang"; do
        listen hang record --read "$DNS" --replay-speed 0.1 --archive "$TMP/hang-${mod##*:}" \
            --qq-size 16M --status-interval 100ms --module "$mod"
        wait_msgs hang '^READY=1$' 1 || fail "$mod: no READY=1: $(head -c 300 "$TMP/hang.err")"
        if [ "$mod" = noop ]; then
            from=$(wc -l <"$TMP/hang.msgs")
        else
            wait_for "$TMP/hang.err" '^fault_module: hanging' "$LPID" || fail "the module did not hang"
            from=$(wc -l <"$TMP/hang.msgs")
        fi
        wait_msgs hang '^STATUS=file .* pkts,' 10 "$from" || fail "$mod: status lines stopped"
        pings=$(count hang '^WATCHDOG=1$' "$from")
        if [ "$mod" = noop ]; then
            [ "$pings" -ge 5 ] && pass || fail "a working module: $pings pings over 10 status lines"
        else
            [ "$pings" -le 1 ] && pass || fail "a hung analyzer: still $pings pings over 10 status lines"
        fi
        kill -TERM "$(cat "$TMP/hang.pid")"
        wait_msgs hang '^STOPPING=1$' 1 && pass || fail "$mod: no STOPPING=1 after SIGTERM"
        [ "$mod" = noop ] || kill -TERM "$(cat "$TMP/hang.pid")" # the drain waits for the hung thread
        wait "$LPID"
        rc=$?
        { [ "$mod" = noop ] && [ $rc = 0 ]; } || { [ "$mod" != noop ] && [ $rc = 130 ]; } && pass ||
            fail "$mod: exit $rc after SIGTERM: $(tail -2 "$TMP/hang.err")"
    done
fi

# ---- monitor ----------------------------------------------------------------------------------
export WATCHDOG_USEC=400000
listen mon monitor --read "$DNS" --replay-speed 2 --module stats --status-interval 100ms
wait "$LPID" >/dev/null || fail "monitor: exit $?: $(tail -2 "$TMP/mon.err")"
for m in '^READY=1$' '^STATUS=file .* pkts,' '^WATCHDOG=1$' '^STOPPING=1$'; do
    [ "$(count mon "$m")" -ge 1 ] && pass || fail "monitor: no message matching $m"
done
finish
