#!/bin/bash
# Least privilege (record/monitor --user; docs/cli.md "Privileges").  On a veth pair whose
# peer lives in a network namespace this test creates, `record --afpacket --user nobody`
# runs, while it captures, as nobody in every thread (/proc/PID/task/*/status: Uid, Gid,
# Groups) with every capability set empty and no_new_privs; its first line says so; after
# it stops every file of the archive belongs to nobody, and queries answer what tcpdump
# answers on what was sent.  An archive recorded as root before is taken over by the next
# --user nobody run.  Started as root without --user it drops to the `flowscope` system
# user (made here with useradd --system when the machine has none, removed at exit);
# --user root keeps root.  Retention as nobody removes root's old segments too.  An
# unknown user, or a non-root user naming another, is one line and status 2; an archive
# nobody cannot reach is refused before the drop (status 1) and not left behind.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, users)"
P=$PCAPS/dns_icmp.pcap
chmod 0711 "$TMP" # other users may pass through the test's own directory (not list it)
NOBODY_UID=$(id -u nobody)
NOBODY_GID=$(id -g nobody)
ZERO=0000000000000000

# ---- usage and refusals: nothing is opened, nothing is left -----------------------------------
for cmd in record monitor; do
    args=(--archive "$TMP/u")
    [ $cmd = monitor ] && args=(--module stats)
    fs $cmd "${args[@]}" --read "$P" --user "no-such-user-$$" >/dev/null 2>"$TMP/u.err"
    rc=$?
    [ $rc = 2 ] && pass || fail "$cmd --user unknown: exit $rc, expected 2"
    one_line_error "$TMP/u.err" "^flowscope $cmd: --user 'no-such-user-[0-9]+': no such user$"
done
[ ! -e "$TMP/u" ] && pass || fail "--user unknown: an archive was created"

# not root: only one's own name (nobody may read the capture, and write in $TMP/nr)
mkdir "$TMP/nr" && chown nobody "$TMP/nr"
setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups \
    timeout 60 "$FLOWSCOPE" record --archive "$TMP/nr/a" --read "$P" --user root 2>"$TMP/nr.err"
rc=$?
[ $rc = 2 ] && pass || fail "nobody --user root: exit $rc, expected 2"
one_line_error "$TMP/nr.err" "^flowscope record: --user root: only root can become another user"
setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups \
    timeout 60 "$FLOWSCOPE" record --archive "$TMP/nr/a" --read "$P" 2>"$TMP/nr.err"
rc=$?
[ $rc = 0 ] && pass || fail "nobody without --user: exit $rc: $(head -3 "$TMP/nr.err")"
grep -qx "flowscope record: packets are parsed by user nobody (uid $NOBODY_UID, gid $NOBODY_GID): not started as root; capabilities dropped after the open" <(head -1 "$TMP/nr.err") &&
    pass || fail "nobody without --user: first line: $(head -1 "$TMP/nr.err")"

# an archive nobody cannot reach: refused before the drop, the new archive removed
mkdir -m 0700 "$TMP/closed"
fs record --archive "$TMP/closed/a" --read "$P" --user nobody 2>"$TMP/closed.err"
rc=$?
[ $rc = 1 ] && pass || fail "unreachable archive: exit $rc, expected 1"
one_line_error "$TMP/closed.err" "archive .*/closed/a: user nobody could not reach it \(.*/closed: Permission denied\)"
[ ! -e "$TMP/closed/a" ] && pass || fail "unreachable archive: left behind: $(ls -A "$TMP/closed/a")"

# ---- live: who runs, with what ---------------------------------------------------------------
veth_pair pd || { fail "cannot create the veth pair"; finish; }
MADE_USER=
cleanup() {
    ip link del "$A" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    if [ -n "$MADE_USER" ]; then
        userdel flowscope
        ! getent group flowscope >/dev/null || groupdel flowscope
    fi
}
at_exit cleanup

# live NAME RECORD-ARGS...: record on $A while tcpreplay sends $P; FPID = flowscope's pid;
# $TMP/NAME.tasks = every thread's /proc status (taken once the threads run); stopped with
# SIGINT once every packet is counted (a pass if it exits 0).
live() {
    local name=$1 pid t
    shift
    local err=$TMP/$name.err
    timeout --foreground 120 "$FLOWSCOPE" record --archive "$TMP/$name" --afpacket "$A" \
        --qq-size 32M --stats-interval 100ms "$@" >"$TMP/$name.out" 2>"$err" &
    pid=$!
    # a status line comes once the pipeline's threads run
    wait_for "$err" " pkts, " $pid || { fail "$name: did not start: $(cat "$err")"; kill $pid; return 1; }
    FPID=$(tr -d ' ' </proc/$pid/task/$pid/children)
    for t in /proc/"$FPID"/task/*; do
        { echo "task ${t##*/}"; cat "$t/status"; } 2>/dev/null
    done >"$TMP/$name.tasks"
    replay "$name" "$P" $pid || return 1
    stop_when_counted "$name" "$err" $pid
}

# field_all NAME FIELD VALUE: every thread's FIELD line is exactly VALUE (and there are several)
field_all() {
    local n bad
    n=$(grep -c "^$2:" "$TMP/$1.tasks")
    bad=$(grep "^$2:" "$TMP/$1.tasks" | grep -cvxF "$2:	$3")
    [ "$n" -ge 3 ] && [ "$bad" = 0 ] && pass ||
        fail "$1: $2 of $bad of $n threads is not '$3': $(grep "^$2:" "$TMP/$1.tasks" | sort | uniq -c | head -3)"
}

# same_answer NAME FILTER...: query's answer on archive NAME is tcpdump's on $P (bytes and
# lengths; the times are the capture's, not the file's)
same_answer() {
    local name=$1
    shift
    oracle "$P" "$TMP/oracle.pcap" "$@" || { fail "tcpdump $*"; return; }
    fs query --archive "$TMP/$name" -w "$TMP/q.pcap" "$@" 2>"$TMP/q.err" ||
        { fail "$name: query $*: $(cat "$TMP/q.err")"; return; }
    tcpdump -r "$TMP/oracle.pcap" -nn -t -xx 2>/dev/null >"$TMP/oracle.txt"
    tcpdump -r "$TMP/q.pcap" -nn -t -xx 2>/dev/null >"$TMP/q.txt"
    [ -s "$TMP/oracle.txt" ] && cmp -s "$TMP/oracle.txt" "$TMP/q.txt" && pass ||
        fail "$name: query '$*' differs from tcpdump: $(diff "$TMP/oracle.txt" "$TMP/q.txt" | head -3)"
}

# owned_by NAME USER GROUP: every file and directory of archive NAME belongs to USER:GROUP
owned_by() {
    local others
    others=$(find "$TMP/$1" \( ! -user "$2" -o ! -group "$3" \) -printf '%p %u:%g\n' | head -3)
    [ -z "$others" ] && [ -n "$(ls "$TMP/$1/segments")" ] && pass ||
        fail "$1: not all of the archive belongs to $2:$3: ${others:-no segment}"
}

live nobody --user nobody
grep -qx "flowscope record: packets are parsed by user nobody (uid $NOBODY_UID, gid $NOBODY_GID): --user" <(head -1 "$TMP/nobody.err") &&
    pass || fail "--user nobody: first line: $(head -1 "$TMP/nobody.err")"
field_all nobody Uid "$NOBODY_UID	$NOBODY_UID	$NOBODY_UID	$NOBODY_UID"
field_all nobody Gid "$NOBODY_GID	$NOBODY_GID	$NOBODY_GID	$NOBODY_GID"
field_all nobody Groups "$(id -G nobody | tr ' ' '\n' | sort -n | tr '\n' ' ')"
for c in CapEff CapPrm CapInh CapAmb CapBnd; do field_all nobody $c $ZERO; done
field_all nobody NoNewPrivs 1
owned_by nobody nobody "$NOBODY_GID"
[ "$(npackets <(fs query --archive "$TMP/nobody" -w - 2>/dev/null))" = "$(npackets "$P")" ] &&
    pass || fail "--user nobody: the archive does not hold the $(npackets "$P") packets sent"
same_answer nobody
same_answer nobody udp port 53
same_answer nobody icmp

# --user root: root kept, capabilities too; the archive is root's
live root --user root
grep -qx "flowscope record: packets are parsed by user root (uid 0, gid 0): --user root: root kept" <(head -1 "$TMP/root.err") &&
    pass || fail "--user root: first line: $(head -1 "$TMP/root.err")"
field_all root Uid "0	0	0	0"
[ "$(grep -m1 '^CapEff:' "$TMP/root.tasks" | cut -f2)" != $ZERO ] && pass ||
    fail "--user root: the capabilities are gone"
owned_by root root root
# ... and taken over by a --user nobody run: every file of the archive is then nobody's
fs record --archive "$TMP/root" --read - --user nobody <"$P" 2>"$TMP/takeover.err" ||
    fail "takeover: exit $?: $(tail -2 "$TMP/takeover.err")"
owned_by root nobody "$NOBODY_GID"
[ "$(stored "$TMP/root")" = $((2 * $(npackets "$P"))) ] && pass ||
    fail "takeover: the archive holds $(stored "$TMP/root") packets, expected both runs'"
# retention as nobody: the capture's packets are days old, so --max-age 1s drops every
# closed segment of a file's packets, also one root wrote before
fs record --archive "$TMP/ret" --read "$P" --user root 2>/dev/null || fail "retention: root run: exit $?"
fs record --archive "$TMP/ret" --read - --user nobody --max-age 1s <"$P" 2>"$TMP/ret.err" ||
    fail "retention: exit $?: $(tail -2 "$TMP/ret.err")"
[ "$(counter "$TMP/ret.err" record retention.dropped_segments)" = 2 ] &&
    [ -z "$(ls -A "$TMP/ret/segments")" ] && pass ||
    fail "retention as nobody: $(grep retention "$TMP/ret.err"); left: $(ls "$TMP/ret/segments")"

# started as root without --user: the flowscope system user when it exists
if ! getent passwd flowscope >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --user-group flowscope || { fail "useradd flowscope"; finish; }
    MADE_USER=1
fi
FS_UID=$(id -u flowscope)
FS_GID=$(id -g flowscope)
live default
grep -qx "flowscope record: packets are parsed by user flowscope (uid $FS_UID, gid $FS_GID): started as root; the flowscope system user exists (--user root keeps root)" <(head -1 "$TMP/default.err") &&
    pass || fail "default: first line: $(head -1 "$TMP/default.err")"
field_all default Uid "$FS_UID	$FS_UID	$FS_UID	$FS_UID"
field_all default CapEff $ZERO
owned_by default flowscope "$FS_GID"
fs monitor --read - --module noop <"$P" >/dev/null 2>"$TMP/monitor.err" || fail "monitor: exit $?"
grep -q "^flowscope monitor: packets are parsed by user flowscope (uid $FS_UID" <(head -1 "$TMP/monitor.err") &&
    pass || fail "monitor default: first line: $(head -1 "$TMP/monitor.err")"
if [ -n "$MADE_USER" ]; then
    userdel flowscope && MADE_USER=
    ! getent group flowscope >/dev/null || groupdel flowscope
fi
# without it, root stays root (a fresh machine, make demo)
if ! getent passwd flowscope >/dev/null; then
    fs record --archive "$TMP/fresh" --read "$P" 2>"$TMP/fresh.err" || fail "fresh: exit $?"
    grep -qx "flowscope record: packets are parsed by user root (uid 0, gid 0): started as root; no flowscope system user to drop to (--user NAME drops to NAME)" <(head -1 "$TMP/fresh.err") &&
        pass || fail "fresh: first line: $(head -1 "$TMP/fresh.err")"
fi
finish
