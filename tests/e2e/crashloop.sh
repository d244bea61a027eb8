# Crashes during crash recovery and during retention, and a lost index.
#
# (1) A lost index (index/data.mdb deleted): `record` refuses with one line
#     naming `index rebuild` and removes nothing; rebuild brings every packet
#     back.  A file the index does not know is left alone, whatever its id.
# (2) kill -9 at every write-side system call `record` makes while it recovers a
#     large segment a crash left open (strace's fault injection): afterwards `index verify` passes and a query returns
#     every packet the index counts (an in-order subsequence of the input);
#     never an open segment without its entries.
# (3) kill -9 at random moments while two dumpers record under --max-disk,
#     0-199 ms after retention dropped a segment of the archive: `index verify` passes; a query is an
#     in-order subsequence of the inputs; recovery and `index rebuild` give
#     the same answer (nothing retention dropped comes back) and the segment
#     files stay within the budget.
# In (3) delays come from a seeded $RANDOM; where each kill landed is counted,
# and enough of them must land mid-retention.
. "$(dirname "$0")/lib.sh"
: "${PKTDIGEST:?PKTDIGEST must name the pktdigest helper}"

# query_all ARCHIVE OUT WHAT: every packet; as many as the index counts
query_all() {
    fs query --archive "$1" -w "$2" 2>"$TMP/q.err" || fail "$3: query: $(cat "$TMP/q.err")"
    local n got
    n=$(stored "$1")
    got=$(npackets "$2")
    [ "$got" = "$n" ] && pass || fail "$3: the index counts $n packets, a query of everything returns $got"
}

# lock_pid ARCHIVE PID [HUNDREDTHS]: until the archive's LOCK names PID (the writer opened
# it: recovery starts next); 1 if PID ends first or after the bound (default 10 s)
lock_pid() {
    local i
    for ((i = 0; i < ${3:-1000}; i++)); do
        grep -qs "pid $2\$" "$1/LOCK" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

head -c 24 "$PCAPS/dns_icmp.pcap" >"$TMP/empty.pcap" # a pcap header alone: recovery only

# ---- (1) a lost index --------------------------------------------------------------------
fs gen -w "$TMP/tb.pcap" --packets 30000 --payload random --seed 21 2>/dev/null || fail "gen"
A=$TMP/lost
fs record --read "$TMP/tb.pcap" --archive "$A" --segment-size 1M --stats-interval 0 2>/dev/null ||
    fail "record (lost index)"
nseg=$(ls "$A/segments" | wc -l)
rm "$A/index/data.mdb"
fs record --read "$TMP/empty.pcap" --archive "$A" --stats-interval 0 >/dev/null 2>"$TMP/lost.err"
rc=$?
[ $rc = 1 ] && pass || fail "record on a lost index: exit $rc (1 expected)"
one_line_error "$TMP/lost.err" "^flowscope record: $A: the index lists no segment .*index rebuild"
[ "$(ls "$A/segments" | wc -l)" = "$nseg" ] && pass ||
    fail "record on a lost index: $nseg segment files before, $(ls "$A/segments" | wc -l) after"
fs index rebuild --archive "$A" >/dev/null 2>&1 || fail "index rebuild of the lost index"
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
cmp -s <(digests "$TMP/tb.pcap") <(digests "$TMP/got.pcap") && pass ||
    fail "after rebuilding a lost index: $(npackets "$TMP/got.pcap") packets, not the input's 30000"
fs record --read "$TMP/empty.pcap" --archive "$A" --stats-interval 0 2>/dev/null && pass ||
    fail "record after the rebuild"

# a closed file below every indexed id, not on retention's drop list: not retention's to remove
A=$TMP/guess
fs record --read "$TMP/tb.pcap" --archive "$A" --segment-size 1M --dumpers 1 --stats-interval 0 \
    2>/dev/null || fail "record (guess)"
cp "$A/segments/000000000002.pcap.zst" "$TMP/seg2"
fs record --read "$TMP/empty.pcap" --archive "$A" --max-disk 4M --segment-size 1M --dumpers 1 \
    --stats-interval 0 2>/dev/null || fail "record --max-disk (guess)"
[ ! -e "$A/segments/000000000002.pcap.zst" ] && pass || fail "retention did not drop segment 2"
cp "$TMP/seg2" "$A/segments/000000000002.pcap.zst"
fs record --read "$TMP/empty.pcap" --archive "$A" --stats-interval 0 2>"$TMP/guess.err" ||
    fail "record with an unknown file: $(tail -1 "$TMP/guess.err")"
[ -e "$A/segments/000000000002.pcap.zst" ] && pass ||
    fail "an unknown segment file was removed: $(grep 000000000002 "$TMP/guess.err")"
grep -q "000000000002.pcap.zst: not in the index: left alone" "$TMP/guess.err" && pass ||
    fail "no 'left alone' line: $(grep 000000000002 "$TMP/guess.err")"

# ---- (2) kill -9 during crash recovery -------------------------------------------------------
fs gen -w "$TMP/big.pcap" --packets 150000 --flows 3000 --payload random 2>/dev/null || fail "gen big"
fs gen -w "$TMP/after.pcap" --packets 2000 --payload random --seed 9 --start 1795000100 \
    2>/dev/null || fail "gen after"
digests "$TMP/big.pcap" >"$TMP/all.dig"
digests "$TMP/after.pcap" >>"$TMP/all.dig"
T0=$TMP/template
# a large segment left open: one dumper at 3x recorded speed, killed once 60000 packets are indexed
"$FLOWSCOPE" record --read "$TMP/big.pcap" --archive "$T0" --dumpers 1 --segment-size 1G \
    --qq-size 64M --replay-speed 3 --stats-interval 0 2>/dev/null &
pid=$!
for ((i = 0; i < 300; i++)); do
    n=$(stored "$T0")
    [ -n "$n" ] && [ "$n" -ge 60000 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
base=$(stored "$T0")
fs info --archive "$T0" 2>/dev/null | grep -q "(1 open)" && pass ||
    fail "the template has no open segment: $(fs info --archive "$T0" 2>&1 | grep segments)"

A=$TMP/rec
# what a recovery left alone makes of the template (the frames after its last commit, if any)
rm -rf "$TMP/full" && cp -a "$T0" "$TMP/full"
fs record --read "$TMP/empty.pcap" --archive "$TMP/full" --stats-interval 0 2>/dev/null ||
    fail "recovery of the template alone"
full=$(stored "$TMP/full")

# The kill points: every write-side system call the recovery makes before it says it is done
# (its "left open by a crash" line), from a traced run; strace counts each call's invocations,
# so "fdatasync:3" is the recovery's third fdatasync.  Each round kills the recorder as it
# enters one of them (strace's fault injection): a kill that always lands mid-recovery,
# whatever the machine's speed.
SYS=pwrite64,writev,fdatasync,fsync,ftruncate,rename
rm -rf "$A"
cp -a "$T0" "$A"
"${TRACED[@]}" -f -qq -o "$TMP/cal.tr" -e trace=$SYS,write "$FLOWSCOPE" record --read "$TMP/after.pcap" \
    --archive "$A" --dumpers 1 --qq-size 16M --stats-interval 0 2>"$TMP/rec.err" ||
    fail "traced recovery of the template: $(tail -2 "$TMP/rec.err")"
grep -q "left open by a crash" "$TMP/rec.err" || fail "the traced run recovered nothing: $(head -2 "$TMP/rec.err")"
points=$(awk '/ write\(2, / { if (/left open by a crash|archive: segme/) exit; next }
    { split($2, c, "("); if (c[1] != "write") print c[1] ":" ++n[c[1]] }' "$TMP/cal.tr")
total=$(wc -w <<<"$points")
[ "$total" -ge 8 ] && pass || fail "the recovery made only $total write-side calls: $points"
note "recovery kill points ($total): $(tr '\n' ' ' <<<"$points")"

mid=0
rounds=0
for point in $points; do
    rounds=$((rounds + 1))
    call=${point%:*}
    k=${point#*:}
    rm -rf "$A"
    cp -a "$T0" "$A"
    "${TRACED[@]}" -f -qq -o /dev/null -e trace="$call" -e inject="$call:signal=SIGKILL:when=$k" \
        "$FLOWSCOPE" record --read "$TMP/after.pcap" --archive "$A" --dumpers 1 --qq-size 16M \
        --stats-interval 0 2>"$TMP/rec.err"
    rc=$?
    [ $rc -eq 137 ] && ! grep -q "left open by a crash" "$TMP/rec.err" && mid=$((mid + 1))
    note "recovery round $rounds: killed entering $call #$k (exit $rc)"
    verify_ok "$A" "recovery round $rounds (killed entering $call #$k)"
    query_all "$A" "$TMP/got.pcap" "recovery round $rounds"
    n=$(stored "$A")
    [ "$n" -ge "$base" ] && pass || fail "recovery round $rounds: $n packets indexed, $base before"
    subsequence "$TMP/got.pcap" "$TMP/all.dig" && pass ||
        fail "recovery round $rounds: not an in-order subsequence of the input"
done
note "$mid of $rounds kills landed mid-recovery"
[ "$mid" -eq "$rounds" ] && pass || fail "only $mid of $rounds kills landed mid-recovery"
# the last round's archive recovers in full
fs record --read "$TMP/empty.pcap" --archive "$A" --stats-interval 0 2>/dev/null || fail "recovery after the rounds"
verify_ok "$A" "recovery after the rounds"
[ "$(stored "$A")" -ge "$full" ] && pass ||
    fail "recovery after the rounds: $(stored "$A") packets, a recovery alone gives $full"

# ---- (3) kill -9 during retention, two dumpers ------------------------------------------------
R=$TMP/ret
: >"$TMP/ret.dig"
RANDOM=17
mid=0
pending=0
rounds=14
budget=$((8 * 1048576 + 2 * 1048576)) # --max-disk, and the last segment of each dumper
for round in $(seq 1 $rounds); do
    # a new input each round, later in time than the last, and growing
    fs gen -w "$TMP/r.pcap" --packets $((16000 + round * 1000)) --payload random --seed $round \
        --start $((1795000000 + round * 100)) 2>/dev/null || fail "gen round $round"
    digests "$TMP/r.pcap" >>"$TMP/ret.dig"
    before=$(ls "$R/segments" 2>/dev/null | head -1)
    "$FLOWSCOPE" record --read "$TMP/r.pcap" --archive "$R" --dumpers 2 --max-disk 8M \
        --segment-size 1M --qq-size 32M --stats-interval 0 2>/dev/null &
    pid=$!
    if [ -n "$before" ]; then # once retention drops this round (the oldest file goes), 0-199 ms
        for ((i = 0; i < 3000; i++)); do
            [ -e "$R/segments/$before" ] && kill -0 $pid 2>/dev/null || break
            sleep 0.01
        done
        delay=$((RANDOM % 200))
    else
        delay=$((100 + RANDOM % 251))
    fi
    sleep "$(printf '0.%03d' "$delay")"
    alive=0
    kill -0 $pid 2>/dev/null && kill -9 $pid 2>/dev/null && alive=1
    wait $pid 2>/dev/null
    [ -f "$R/FORMAT" ] || continue
    verify_ok "$R" "retention round $round (killed after ${delay} ms)"
    grep -q "retention dropped from the index before a crash" "$TMP/verify.out" && pending=$((pending + 1))
    # retention acted before the kill: a file that was there before the round is gone or going
    if [ $alive = 1 ] && [ -n "$before" ] &&
        { [ ! -e "$R/segments/$before" ] || grep -q "retention dropped" "$TMP/verify.out"; }; then
        mid=$((mid + 1))
    fi
    query_all "$R" "$TMP/got.pcap" "retention round $round"
    subsequence "$TMP/got.pcap" "$TMP/ret.dig" && pass ||
        fail "retention round $round: not an in-order subsequence of the inputs"
    # index rebuild (on a copy) and recovery: the same packets, nothing dropped comes back
    rm -rf "$R.rb"
    cp -a "$R" "$R.rb"
    fs index rebuild --archive "$R.rb" >/dev/null 2>"$TMP/rb.err" || fail "retention round $round: rebuild: $(tail -1 "$TMP/rb.err")"
    fs record --read "$TMP/empty.pcap" --archive "$R" --stats-interval 0 2>"$TMP/rec.err" ||
        fail "retention round $round: recovery: $(tail -1 "$TMP/rec.err")"
    verify_ok "$R" "retention round $round, after recovery"
    verify_ok "$R.rb" "retention round $round, after rebuild"
    fs query --archive "$R" -w "$TMP/rec.pcap" 2>/dev/null
    fs query --archive "$R.rb" -w "$TMP/rb.pcap" 2>/dev/null
    cmp -s <(digests "$TMP/rec.pcap") <(digests "$TMP/rb.pcap") && pass ||
        fail "retention round $round: recovery holds $(npackets "$TMP/rec.pcap") packets, rebuild $(npackets "$TMP/rb.pcap"): $(grep -c 'dropped by retention' "$TMP/rb.err") dropped"
done
rm -rf "$R.rb"
note "$mid of $rounds kills landed while retention was dropping; $pending between a drop and its unlink"
[ "$mid" -ge 5 ] && pass || fail "only $mid of $rounds kills landed while retention was dropping"
# retention sees every file that is left: a recording to its end keeps the budget
fs record --read "$TMP/r.pcap" --archive "$R" --dumpers 2 --max-disk 8M --segment-size 1M \
    --qq-size 32M --stats-interval 0 2>/dev/null || fail "record --max-disk after the rounds"
used=$(cat "$R"/segments/* | wc -c)
[ "$used" -le "$budget" ] && pass || fail "after the rounds: segment files take $used bytes, over --max-disk 8M"
finish
