#!/bin/bash
# e2e_eve: record --eve FILE (docs/triggers.md): a detector's alert log, followed as tail -F,
# triggers the flows its alerts name, with their packets from before the alert.  The alert
# lines are written as Suricata's EVE and Zeek's notice.log define them (eve_alert.py, the
# fields of each flow's first packet read by tshark); tcpdump is the oracle.
#  * http.pcap goes through a FIFO this script holds open (the recorder runs until the script
#    closes it, the whole capture in its ring), --capture triggered;
#  * appended to the log: a flow record (skipped), two malformed lines, an alert by 5-tuple,
#    one by Community ID alone written in two parts; then the
#    log is rotated (mv, one more alert appended to the old file, a Zeek notice in the new
#    one) and truncated (copytruncate); an alert already in the file at the start is not read;
#  * the archive is exactly the four triggered flows, packet for packet and to the
#    nanosecond; flows --triggered names each trigger (eve: SIGNATURE, zeek: NOTE: msg); the
#    eve.* and trigger.eve_requests counters, in /metrics while it runs and in the report;
#  * --eve-from-start reads the alerts already there, --eve-filter 'severity<=2' passes one of
#    them (not severity 3, nor a Zeek notice); a bad --eve path or --eve-filter is one
#    line and a documented status.
# Usage: eve.sh PKTDIGEST
. "$(dirname "$0")/lib.sh"
PKTDIGEST=${1:?usage: eve.sh PKTDIGEST}
HERE=$(dirname "$0")
SRC=$PCAPS/http.pcap
PIDS=()
at_exit 'exec 3>&- 2>/dev/null; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done'

# alert NAME DISPLAY-FILTER SID SEVERITY [FORM]: $TMP/NAME.line, an alert line for that flow
alert() {
    python3 "$HERE/eve_alert.py" "$SRC" "$2" "$3" "$4" "test $1" "${5:-eve}" >"$TMP/$1.line" ||
        { fail "eve_alert.py $1"; finish; }
}
# m NAME: a sample of the recorder's /metrics
m() { metric "$URL" "$1"; }
# wait_metric NAME VALUE: until the metric has that value (~30 s bound)
wait_metric() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(m "$1")" = "$2" ] && return 0
        kill -0 "$RPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# start NAME ARGS...: a recorder reading FIFO $TMP/NAME.fifo (held open on fd 3; http.pcap's
# file header written, the packets are the caller's), its API's URL in URL, its pid in RPID
start() {
    local name=$1
    shift
    mkfifo "$TMP/$name.fifo"
    exec 3<>"$TMP/$name.fifo" # read-write: never blocks; closing it is the recorder's end of file
    "$FLOWSCOPE" record --read "$TMP/$name.fifo" --archive "$TMP/$name" --listen 127.0.0.1:0 \
        --status-interval 0 "$@" 2>"$TMP/$name.err" 3>&- & # (a writer it held would be no EOF)
    RPID=$!
    PIDS+=("$RPID")
    head -c 24 "$SRC" >&3 # the file header: the recorder opens its source, then listens
    wait_for "$TMP/$name.err" '^flowscope record: API listening on http://127.0.0.1:[0-9]+$' $RPID 100 ||
        { fail "$name: no API: $(tail -3 "$TMP/$name.err")"; finish; }
    URL=$(sed -n 's/^flowscope record: API listening on //p' "$TMP/$name.err")
}
# end NAME: closes the FIFO, waits for the recorder's exit 0
end() {
    exec 3>&-
    wait "$RPID" && pass || fail "$1: record exited $?: $(tail -3 "$TMP/$1.err")"
}

alert one 'ip.src==10.99.1.10 && tcp.srcport==34952' 2010935 2           # 2822 packets
alert lowsev 'ip.src==10.99.1.10 && tcp.srcport==37484' 2010936 3        # filtered out
alert cid 'ipv6.src==fd00:99:1::10 && tcp.srcport==48192' 2010937 1 cid  # Community ID alone
alert old 'ip.src==10.99.1.10 && tcp.srcport==37508' 2010938 1           # before the start
alert rotated 'ip.src==10.99.1.10 && tcp.srcport==37496' 2010939 2       # in the rotated file
alert zeek 'ip.src==10.99.1.10 && tcp.srcport==37450' 0 0 zeek       # note "test zeek"
mkdir -p "$TMP/log"
LOG=$TMP/log/eve.json
cat "$TMP/old.line" >"$LOG"

start rec --capture triggered --eve "$LOG" --analyzers 1 # (one: its count is a position)
timeout 60 tail -c +25 "$SRC" >&3 || fail "the recorder did not read its FIFO"
# 7000 of its 8978 packets analysed (the last chunk waits for the file's end): the alerts'
# flows all began before packet 4446
wait_analyzed "$URL" 7000 "$RPID" ||
    { fail "the capture was not analysed: $(tail -3 "$TMP/rec.err")"; finish; }

{
    echo '{"timestamp":"2026-11-27T05:29:34.521251+0000","flow_id":1,"event_type":"flow","src_ip":"10.99.1.10","src_port":34952,"dest_ip":"10.99.1.80","dest_port":80,"proto":"TCP"}'
    echo '{"timestamp":"2026-11-27T05:29:34.521251+0000","event_type":"alert","src_ip":'
    echo 'not json at all'
    cat "$TMP/one.line"
    head -c 100 "$TMP/cid.line" # a line in two writes: held until its newline
} >>"$LOG"
wait_metric flowscope_trigger_eve_requests_total 1 && pass ||
    fail "the alert by 5-tuple did not trigger: $(tail -3 "$TMP/rec.err")"
tail -c +101 "$TMP/cid.line" >>"$LOG"
wait_metric flowscope_trigger_eve_requests_total 2 && pass ||
    fail "the alert by Community ID did not trigger: $(tail -3 "$TMP/rec.err")"
[ "$(m flowscope_eve_malformed_lines_total)" = 2 ] && [ "$(m flowscope_eve_skipped_lines_total)" = 1 ] &&
    pass || fail "metrics: malformed $(m flowscope_eve_malformed_lines_total), skipped $(m flowscope_eve_skipped_lines_total)"
grep -q "^flowscope record: eve $LOG: a line skipped: " "$TMP/rec.err" && pass ||
    fail "no log line for a malformed line: $(tail -3 "$TMP/rec.err")"

# rotation as Suricata's logrotate does it: rename, the writer appends until it reopens, then
# a new file (here a Zeek notice in it)
mv "$LOG" "$LOG.1"
cat "$TMP/rotated.line" >>"$LOG.1"
cat "$TMP/zeek.line" >"$LOG"
wait_metric flowscope_trigger_eve_requests_total 4 && pass ||
    fail "rotation: $(m flowscope_trigger_eve_requests_total) triggers, expected 4: $(tail -3 "$TMP/rec.err")"
[ "$(m flowscope_eve_rotations_total)" = 1 ] && pass ||
    fail "rotations: $(m flowscope_eve_rotations_total)"
# copytruncate: the file emptied, then a flow record (skipped) from its first byte
: >"$LOG"
wait_metric flowscope_eve_truncations_total 1 && pass || fail "the truncation was not seen"
echo '{"timestamp":"2026-11-27T05:29:40+0000","event_type":"stats","stats":{}}' >>"$LOG"
wait_metric flowscope_eve_skipped_lines_total 2 && pass || fail "no line read after the truncation"
end rec

# the report: every line accounted for
want="eve.lines=8 eve.alerts=4 eve.skipped=2 eve.malformed=2 eve.filtered=0 eve.too_long=0 eve.rotations=1 eve.truncations=1 eve.open_errors=0"
got=$(sed -n 's/^flowscope record: \(eve\.lines=.*\)$/\1/p' "$TMP/rec.err")
[ "$got" = "$want" ] && pass || fail "the eve line: '$got', expected '$want'"
[ "$(counter "$TMP/rec.err" record trigger.eve_requests)" = 4 ] &&
    [ "$(counter "$TMP/rec.err" record trigger.api_requests)" = 0 ] &&
    [ "$(counter "$TMP/rec.err" record trigger.flows)" = 4 ] && pass ||
    fail "trigger counters: $(grep '^flowscope record: trigger\.' "$TMP/rec.err")"

# the archive: exactly the four flows, each from its first packet
oracle "$SRC" "$TMP/exp.pcap" '(tcp and host 10.99.1.10 and (port 34952 or port 37496 or port 37450)) or (tcp and host fd00:99:1::10 and port 48192)'
fs query --archive "$TMP/rec" -w "$TMP/got.pcap" 2>/dev/null || fail "query"
if cmp -s <("$PKTDIGEST" -t "$TMP/exp.pcap") <("$PKTDIGEST" -t "$TMP/got.pcap"); then pass; else
    fail "archived $(npackets "$TMP/got.pcap") packets, tcpdump selects $(npackets "$TMP/exp.pcap")"
fi
fs flows --archive "$TMP/rec" --triggered >"$TMP/flows" 2>&1
for r in 'eve: test one' 'eve: test cid' 'eve: test rotated' 'zeek: test zeek: seen by the test'; do
    [ "$(grep -c "$r\$" "$TMP/flows")" = 1 ] && pass || fail "flows: not one flow triggered by '$r': $(cat "$TMP/flows")"
done

# --eve-from-start: the alerts already in the file are read (before any packet: they match no
# flow, and are counted); --eve-filter passes severity 1, not 3 (a Zeek notice has no
# severity: a term on it does not hold)
cat "$TMP/old.line" "$TMP/lowsev.line" "$TMP/zeek.line" >"$TMP/log/start.json"
start fromstart --capture triggered --eve "$TMP/log/start.json" --eve-from-start \
    --eve-filter 'severity<=2'
wait_metric flowscope_eve_filtered_alerts_total 2 && pass || fail "--eve-from-start: the alerts were not read"
end fromstart
[ "$(counter "$TMP/fromstart.err" record eve.alerts)" = 3 ] &&
    [ "$(counter "$TMP/fromstart.err" record trigger.eve_requests)" = 1 ] && pass ||
    fail "--eve-from-start, --eve-filter: $(grep -E '^flowscope record: (eve|trigger)\.' "$TMP/fromstart.err")"

# refusals: one line each, status 1 (cannot follow) and 2 (a bad option)
fs record --read "$SRC" --archive "$TMP/never" --eve "$TMP/no/such/dir/eve.json" --status-interval 0 \
    >/dev/null 2>"$TMP/bad.err"
[ $? = 1 ] || fail "--eve in a missing directory: not status 1"
one_line_error "$TMP/bad.err" "^flowscope record: --eve: $TMP/no/such/dir/eve.json: .*No such file or directory"
[ ! -e "$TMP/never" ] && pass || fail "--eve refused, but an archive was left"
fs record --read "$SRC" --archive "$TMP/never" --eve "$LOG" --eve-filter 'sig=1' >/dev/null 2>"$TMP/bad.err"
[ $? = 2 ] || fail "a bad --eve-filter: not status 2"
one_line_error "$TMP/bad.err" '^flowscope record: --eve-filter .sig=1.: at "sig=1": expected sid or severity'
finish
