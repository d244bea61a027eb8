#!/bin/bash
# Interrupted and failing commands leave nothing behind (issue 13, items 9 and 12):
#  - SIGINT/SIGTERM/SIGHUP/SIGPIPE to `query -w FILE` while it writes: no FILE, no
#    FILE.partial-*, the status of the signal (128 + N);
#  - SIGINT to `index rebuild` mid-run: index.rebuild/ gone, the old index unchanged, verify
#    clean, status 130; a leftover index.rebuild/ is reported by verify, removed by rebuild;
#  - two `record`s creating one archive at once: the loser names the other writer (LOCK),
#    never "not a flowscope archive";
#  - flow tables that cannot fit (--max-flows): refused up front, status 2, no archive;
#    flow tables that fail to allocate: one line, and no half-made archive;
#  - a module whose create() fails without a message: a line naming the module.
. "$(dirname "$0")/lib.sh"
SMALL=$PCAPS/http.pcap
# a sanitizer build reserves its shadow memory at start: no data limit (ulimit -d) for it
SANITIZED=0
ldd "$FLOWSCOPE" 2>/dev/null | grep -qE 'lib(a|t)san' && SANITIZED=1
# limit_data KB: ulimit -d KB, except in a sanitizer build
limit_data() { [ $SANITIZED = 1 ] || ulimit -d "$1"; }

# ---- a big archive: many segments, an answer of ~100 MB -----------------------------------------
fs gen -w "$TMP/g.pcap" --packets 300000 --size 0-700 2>/dev/null || fail "gen"
fs record --read "$TMP/g.pcap" --archive "$TMP/big" --qq-size 64M --segment-size 1M \
    --stats-interval 0 2>"$TMP/err" || fail "record of the gen file: $(tail -2 "$TMP/err")"

# stopped_while PID PATH: waits (at most ~20 s) until PATH exists and is not empty while PID runs,
# then stops PID (SIGSTOP) and says whether PATH still exists: PID is then frozen mid-way, and a
# signal sent now is handled there once it is continued.  1 if PID ended first.
stopped_while() {
    local i
    for ((i = 0; i < 2000; i++)); do
        kill -0 "$1" 2>/dev/null || return 1
        if [ -s "$2" ]; then
            kill -STOP "$1"
            [ -e "$2" ] && return 0
            kill -CONT "$1"
            return 1
        fi
        sleep 0.01
    done
    return 1
}

# ---- query -w FILE: a signal removes the partial answer -----------------------------------------
for sig in INT TERM HUP PIPE; do
    out=$TMP/answer-$sig.pcap
    # (a background job ignores SIGINT: as from a terminal, with the default)
    env --default-signal=INT "$FLOWSCOPE" query --archive "$TMP/big" -w "$out" 2>"$TMP/qerr" &
    pid=$!
    if ! stopped_while $pid "$out.partial-$pid"; then
        fail "SIG$sig: the query ended before its partial file was seen"
        wait $pid
        continue
    fi
    kill -$sig $pid
    kill -CONT $pid
    wait $pid
    rc=$?
    want=$((128 + $(kill -l $sig)))
    [ $rc -eq $want ] && pass || fail "query -w, SIG$sig: exit $rc, expected $want"
    [ -e "$out" ] && fail "query -w, SIG$sig: $out exists" || pass
    ls "$out".partial-* >/dev/null 2>&1 && fail "query -w, SIG$sig: left $(ls "$out".partial-*)" || pass
done

# ---- index rebuild: SIGINT stops it, its new index removed, the old one unchanged ---------------
a=$TMP/big
sum0=$(md5sum <"$a/index/data.mdb")
env --default-signal=INT "$FLOWSCOPE" index rebuild --archive "$a" >"$TMP/rout" 2>"$TMP/rerr" &
pid=$!
stopped_while $pid "$a/index.rebuild/data.mdb" && pass || fail "index rebuild never made index.rebuild/"
kill -INT $pid
kill -CONT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && pass || fail "index rebuild, SIGINT: exit $rc, expected 130: $(tail -2 "$TMP/rerr")"
[ -e "$a/index.rebuild" ] && fail "SIGINT left $a/index.rebuild" || pass
grep -q "stopped by a signal: the old index is in place" "$TMP/rerr" && pass ||
    fail "index rebuild, SIGINT: no line saying so: $(cat "$TMP/rerr")"
[ "$(md5sum <"$a/index/data.mdb")" = "$sum0" ] && pass || fail "the stopped rebuild changed the index"
fs index verify --archive "$a" >"$TMP/vout" 2>&1 && grep -q ": OK$" "$TMP/vout" && pass ||
    fail "verify after a stopped rebuild: $(tail -3 "$TMP/vout")"

# a leftover index.rebuild/ (a rebuild killed outright): verify says so, the next rebuild removes it
mkdir -p "$a/index.rebuild" && echo junk >"$a/index.rebuild/data.mdb"
fs index verify --archive "$a" >"$TMP/vout" 2>&1
rc=$?
[ $rc -eq 0 ] && pass || fail "verify with a leftover index.rebuild: exit $rc: $(cat "$TMP/vout")"
grep -q "index.rebuild is left from an index rebuild that was killed .*the next flowscope index rebuild removes it" \
    "$TMP/vout" && pass || fail "verify does not report the leftover index.rebuild: $(cat "$TMP/vout")"
fs index rebuild --archive "$a" >/dev/null 2>"$TMP/rerr" && pass || fail "rebuild: $(cat "$TMP/rerr")"
[ -e "$a/index.rebuild" ] && fail "rebuild left index.rebuild" || pass
fs index verify --archive "$a" >"$TMP/vout" 2>&1 && ! grep -q "index.rebuild" "$TMP/vout" && pass ||
    fail "verify after the rebuild: $(cat "$TMP/vout")"

# ---- two records creating one archive at once: the loser is told of the other writer -----------
losers=0
for ((i = 0; i < 40; i++)); do
    d=$TMP/race$i
    timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --qq-size 16M --stats-interval 0 \
        2>"$TMP/race$i.a" &
    p1=$!
    timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --qq-size 16M --stats-interval 0 \
        2>"$TMP/race$i.b" &
    p2=$!
    wait $p1
    r1=$?
    wait $p2
    r2=$?
    for x in "a $r1" "b $r2"; do
        set -- $x
        [ "$2" -eq 0 ] && continue
        losers=$((losers + 1))
        if grep -q "another flowscope process is writing this archive" "$TMP/race$i.$1" &&
            ! grep -q "not a flowscope archive" "$TMP/race$i.$1"; then
            pass
        else
            fail "pair $i: the loser (exit $2) says: $(grep -v '^flowscope record: [a-z.]*:' "$TMP/race$i.$1" | head -2)"
        fi
    done
    [ "$r1" -eq 0 ] || [ "$r2" -eq 0 ] && pass || fail "pair $i: both failed ($r1, $r2)"
    rm -rf "$d"
done
note "40 pairs of concurrent records: $losers losers"

# the same, the race made certain: the second recorder is stopped (strace injects SIGSTOP) at its
# mkdir of the archive directory, after it looked for FORMAT; the first then creates the archive
# and records; the second, continued, must be told of the first
if command -v strace >/dev/null; then
    d=$TMP/late
    "${TRACED[@]}" -f -o /dev/null -e trace=mkdir,mkdirat \
        -e inject=mkdir,mkdirat:signal=SIGSTOP:when=1 \
        "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --qq-size 16M --stats-interval 0 \
        2>"$TMP/late.b" &
    sp=$!
    bp=
    for ((i = 0; i < 3000; i++)); do # the recorder (strace's child) stopped: state t or T
        bp=$(pgrep -P $sp)
        [ -n "$bp" ] && [[ "$(awk '{print $3}' "/proc/$bp/stat" 2>/dev/null)" == [tT] ]] && break
        kill -0 $sp 2>/dev/null || break
        sleep 0.01
    done
    # (--foreground: timeout then passes SIGTERM on once, not also to its process group)
    timeout --foreground 120 "$FLOWSCOPE" record --read "$PCAPS/tcp_anomalies.pcap" --replay-speed 1 \
        --archive "$d" --qq-size 16M --stats-interval 0 2>"$TMP/late.a" &
    p1=$!
    wait_for "$TMP/late.a" "^flowscope record: QQ " $p1 600 && pass ||
        fail "the first recorder did not start: $(cat "$TMP/late.a")"
    if [ -n "$bp" ]; then
        kill -CONT "$bp"
    else
        fail "the second recorder never stopped at its mkdir"
        kill -9 $(pgrep -P $sp) $sp
    fi
    wait $sp
    r2=$?
    kill -TERM $p1
    wait $p1 || fail "the first recorder: exit $?: $(tail -2 "$TMP/late.a")"
    [ $r2 -eq 1 ] && grep -q "another flowscope process is writing this archive" "$TMP/late.b" && pass ||
        fail "the late creator (exit $r2) says: $(grep -v '^flowscope record: [a-z.]*:' "$TMP/late.b" | head -2)"
fi

# ---- flow tables that cannot fit: refused up front (status 2), nothing created ------------------
# (ulimit -d: should an old build try, the first table's mapping fails instead of the OOM killer)
# (record: 16 analyzers x 2 tables of 100M flows, ~400 GB; monitor: one analyzer, the largest
# --max-flows, ~70 GB)
for cmd in record monitor; do
    d=$TMP/huge-$cmd
    n=100000000
    args=(--archive "$d" --qq-size 16M --analyzers 16)
    [ $cmd = monitor ] && args=() && n=268435456
    (limit_data 4000000; exec timeout 120 "$FLOWSCOPE" $cmd --read "$SMALL" "${args[@]}" \
        --max-flows $n --module stats --stats-interval 0) >/dev/null 2>"$TMP/err"
    rc=$?
    [ $rc -eq 2 ] && pass || fail "$cmd --max-flows $n: exit $rc, expected 2: $(tail -2 "$TMP/err")"
    one_line_error "$TMP/err" "^flowscope $cmd: --max-flows $n: the flow tables would take [0-9.]+ MiB .* this machine has [0-9.]+ MiB available"
    [ -e "$d" ] && fail "$cmd --max-flows $n left $d: $(ls -A "$d")" || pass
done

# ---- flow tables that fit in RAM but fail to allocate: one line, no half-made archive ------------
# 16M flows: a table of ~1.7 GB each for flow tracking and the module; the data limit leaves room
# for the first (and what record needs besides) but not the second
d=$TMP/nomem
if [ $SANITIZED = 0 ]; then
    (ulimit -d 3000000; exec timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" \
        --qq-size 16M --max-flows 16000000 --module noop --stats-interval 0) >/dev/null 2>"$TMP/err"
    rc=$?
    [ $rc -eq 1 ] && pass || fail "record with a table that cannot be allocated: exit $rc: $(cat "$TMP/err")"
    one_line_error "$TMP/err" "^flowscope record: .*flow.* 16000000 flows: Cannot allocate memory$"
    grep -q "FORMAT" "$TMP/err" && fail "a stale archive message: $(cat "$TMP/err")" || pass
    [ -e "$d" ] && fail "a failed record left $d: $(ls -A "$d")" || pass
else
    note "sanitizer build: the allocation failure (ulimit -d) is not tried"
fi

# ---- record failing after it created the archive: nothing of it is left ------------------------
# (an unprivileged user cannot give the archive to group 0: archive_share fails after creation)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    chmod 711 "$TMP"
    mkdir -m 777 "$TMP/nobody"
    nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    d=$TMP/nobody/new
    nobody timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --archive-group 0 \
        --qq-size 16M --stats-interval 0 >/dev/null 2>"$TMP/err"
    rc=$?
    [ $rc -eq 1 ] && pass || fail "record as nobody with --archive-group 0: exit $rc: $(cat "$TMP/err")"
    [ -e "$d" ] && fail "a record that failed after creating $d left it: $(ls -A "$d")" || pass
    d=$TMP/nobody/empty # an empty directory given: it stays, empty
    mkdir -m 777 "$d"
    nobody timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --archive-group 0 \
        --qq-size 16M --stats-interval 0 >/dev/null 2>"$TMP/err"
    [ -d "$d" ] && [ -z "$(ls -A "$d")" ] && pass || fail "the empty directory given: $(ls -A "$d" 2>&1)"
    d=$TMP/nobody/old # an archive that was there: untouched
    nobody timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --qq-size 16M \
        --stats-interval 0 2>/dev/null || fail "record as nobody"
    nobody timeout 120 "$FLOWSCOPE" record --read "$SMALL" --archive "$d" --archive-group 0 \
        --qq-size 16M --stats-interval 0 >/dev/null 2>&1
    fs index verify --archive "$d" >"$TMP/vout" 2>&1 && grep -q ": OK$" "$TMP/vout" && pass ||
        fail "the archive that was there: $(cat "$TMP/vout")"
else
    note "not root: the failure after creation is not tried"
fi

# ---- a module's create() that fails without a message --------------------------------------------
d=$TMP/mute
fs record --read "$SMALL" --archive "$d" --qq-size 16M --module "${MUTE_MODULE:?}" --stats-interval 0 \
    >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] && pass || fail "a module whose create() fails: exit $rc, expected 2"
one_line_error "$TMP/err" "^flowscope record: .*mute_module.*[a-z]"
[ -e "$d" ] && fail "a failed module left $d" || pass
finish
