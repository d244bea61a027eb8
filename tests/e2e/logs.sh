#!/bin/bash
# The log on stderr (docs/cli.md "Running as a service"): one line per event, with the
# severity journald reads when stderr is the journal.
#  * JOURNAL_STREAM naming stderr's device:inode (as systemd sets it): every line of record
#    starts with <3> (errors), <4> (warnings: the recovery of a crashed archive) or <6>
#    (information: the status and report lines); each kind where expected.
#  * JOURNAL_STREAM unset, or naming another file (inherited by a child whose stderr went
#    elsewhere): no line has a prefix.
#  * no ANSI escape anywhere.
#  * --status-interval: 0 gives no status line (record and monitor); an interval gives
#    them; --stats-interval (its old name) too; a bad value is a usage error.
. "$(dirname "$0")/lib.sh"
DNS=$PCAPS/dns_icmp.pcap
HTTP=$PCAPS/http.pcap

# journal_run ERRFILE ARGS...: flowscope ARGS with stderr appended to ERRFILE, which is (as
# far as flowscope can tell) the journal's stream
journal_run() {
    local err=$1
    shift
    : >"$err"
    JOURNAL_STREAM=$(stat -c '%d:%i' "$err") timeout 300 "$FLOWSCOPE" "$@" 2>>"$err"
}

# ---- under the journal: every line has its level --------------------------------------------
A=$TMP/a
crashed_archive "$A" "$DNS" || fail "could not leave an archive to recover"
journal_run "$TMP/j.err" record --read "$DNS" --replay-speed 4 --archive "$A" --qq-size 16M \
    --status-interval 100ms || fail "record: exit $?: $(tail -2 "$TMP/j.err")"
n=$(grep -cvE '^<[346]>flowscope record: ' "$TMP/j.err")
[ "$n" = 0 ] && pass || fail "$n lines without a level prefix: $(grep -vE '^<[346]>' "$TMP/j.err" | head -2)"
grep -qE '^<4>flowscope record: archive: segment 1: left open by a crash' "$TMP/j.err" && pass ||
    fail "the recovery line is not a warning: $(grep 'left open' "$TMP/j.err")"
grep -qE '^<6>flowscope record: file .* [0-9]+ pkts, ' "$TMP/j.err" && pass || fail "no status line at <6>"
grep -qE '^<6>flowscope record: run: ' "$TMP/j.err" && pass || fail "no report line at <6>"
grep -qE '^<6>flowscope record: ingest\.file\.packets=164 ' "$TMP/j.err" && pass || fail "no counter line at <6>"
journal_run "$TMP/jfail.err" record --read "$TMP/none.pcap" --archive "$TMP/b"
rc=$?
[ $rc = 1 ] && one_line_error "$TMP/jfail.err" '^<3>flowscope record: .*none\.pcap'
journal_run "$TMP/jusage.err" record --read "$DNS" --archive "$TMP/b" --status-interval soon
rc=$?
[ $rc = 2 ] && one_line_error "$TMP/jusage.err" "^<3>flowscope record: --status-interval 'soon'"
journal_run "$TMP/jmon.err" monitor --read "$DNS" --module stats --status-interval 0 >/dev/null ||
    fail "monitor: exit $?"
n=$(grep -cvE '^<[346]>flowscope monitor: ' "$TMP/jmon.err")
[ "$n" = 0 ] && pass || fail "monitor: $n lines without a level prefix: $(grep -vE '^<[346]>' "$TMP/jmon.err" | head -2)"

# ---- not the journal: no prefixes -------------------------------------------------------------
fs record --read "$DNS" --archive "$TMP/c" --qq-size 16M --status-interval 100ms --replay-speed 4 \
    2>"$TMP/plain.err" || fail "record: exit $?"
: >"$TMP/other"
JOURNAL_STREAM=$(stat -c '%d:%i' "$TMP/other") timeout 300 "$FLOWSCOPE" record --read "$DNS" \
    --archive "$TMP/d" --qq-size 16M --status-interval 100ms --replay-speed 4 2>"$TMP/inherited.err" ||
    fail "record: exit $?"
for f in plain inherited; do
    grep -q 'pkts, ' "$TMP/$f.err" && pass || fail "$f: no status line"
    n=$(grep -cvE '^flowscope record: ' "$TMP/$f.err")
    [ "$n" = 0 ] && pass || fail "$f: $n lines not starting 'flowscope record: ': $(grep -v '^flowscope' "$TMP/$f.err" | head -2)"
done
grep -qP '\x1b' "$TMP"/*.err && fail "an ANSI escape on stderr: $(grep -lP '\x1b' "$TMP"/*.err)" || pass

# ---- --status-interval ------------------------------------------------------------------------
# status lines: "flowscope CMD: file ... N pkts, ..."; the runs last >= 1.1 s (paced)
status_lines() { grep -cE "^flowscope $1: file .* [0-9]+ pkts, " "$2"; }
for opt in --status-interval --stats-interval; do
    fs record --read "$DNS" --replay-speed 4 --archive "$TMP/e$opt" --qq-size 16M "$opt" 0 \
        2>"$TMP/zero.err" || fail "record $opt 0: exit $?"
    [ "$(status_lines record "$TMP/zero.err")" = 0 ] && pass || fail "record $opt 0: status lines printed"
    grep -q '^flowscope record: run: ' "$TMP/zero.err" && pass || fail "record $opt 0: no report"
done
fs record --read "$DNS" --replay-speed 4 --archive "$TMP/f" --qq-size 16M --status-interval 200ms \
    2>"$TMP/some.err" || fail "record --status-interval 200ms: exit $?"
[ "$(status_lines record "$TMP/some.err")" -ge 1 ] && pass ||
    fail "record --status-interval 200ms over >= 1.1 s: no status line"
fs monitor --read "$DNS" --replay-speed 4 --module stats --status-interval 0 >/dev/null 2>"$TMP/mzero.err" ||
    fail "monitor: exit $?"
[ "$(status_lines monitor "$TMP/mzero.err")" = 0 ] && pass || fail "monitor --status-interval 0: status lines printed"
fs monitor --read "$DNS" --replay-speed 4 --module stats --status-interval 200ms >/dev/null \
    2>"$TMP/msome.err" || fail "monitor: exit $?"
[ "$(status_lines monitor "$TMP/msome.err")" -ge 1 ] && pass || fail "monitor --status-interval 200ms: no status lines"
fs monitor --read "$DNS" --module stats --status-interval 5 >/dev/null 2>"$TMP/mbad.err"
rc=$?
[ $rc = 0 ] && pass || fail "monitor --status-interval 5 (seconds): exit $rc"
finish
