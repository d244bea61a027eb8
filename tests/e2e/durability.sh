# Months of unattended recording: kill -9 at random moments, a full disk,
# retention by size and by age, queries while recording, and index rebuild.
#
# Oracles: `flowscope index verify` (every index entry against the segments),
# tcpdump/editcap on the input (what the archive holds must be exactly a
# prefix, a suffix, or an in-order subsequence of it), and the archive's own
# answers before and after a rebuild.  Needs root for the small filesystems
# (tmpfs with a size limit) the full-disk cases fill; without it the rest runs, then the
# test says SKIP and exits 77 (ctest: skipped) unless a check failed.
. "$(dirname "$0")/lib.sh"
: "${PKTDIGEST:?PKTDIGEST must name the pktdigest helper}"

IN=$TMP/in.pcap
fs gen -w "$IN" --packets 150000 --flows 3000 --payload random 2>/dev/null || fail "gen"
TOTAL=$(npackets "$IN")

# ---- kill -9 at a random moment, 20 rounds (one dumper: the archive is a prefix) --------
# killed_recording ARCHIVE DUMPERS DELAY: a fresh recording of the input, kill -9 after DELAY.
# Paced (--replay-speed 10: the input's 15 s in 1.5 s at the least, however fast the machine:
# at full speed it is done in a fraction of a second, before most kills).  KILLED=1 if the
# kill ended the recorder (wait says SIGKILL), 0 if it had already exited by itself.
killed_recording() {
    rm -rf "$1"
    # not through fs (timeout): the kill must reach flowscope itself
    "$FLOWSCOPE" record --read "$IN" --archive "$1" --dumpers "$2" --qq-size 32M --segment-size 4M \
        --replay-speed 10 --stats-interval 0 2>/dev/null &
    local pid=$!
    sleep "$3"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    KILLED=$(($? == 128 + 9))
}
# mid_recording M: the kill ended a recorder that had stored part of the input: M packets of
# it (0 < M < all) are in the archive after recovery, and the recorder did not exit by itself
mid_recording() { [ "$KILLED" = 1 ] && [ "$1" -gt 0 ] && [ "$1" -lt "$TOTAL" ]; }
RANDOM=7 # the same delays every run (where the kill lands still depends on the machine)
rounds=0 mid=0
for round in $(seq 1 20); do
    A=$TMP/crash
    killed_recording "$A" 1 "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
    [ -f "$A/FORMAT" ] || continue # killed before the archive existed (FORMAT comes last): nothing to check
    rounds=$((rounds + 1))
    verify_ok "$A" "round $round after kill -9"
    n=$(stored "$A")
    fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null || fail "round $round: query after kill -9"
    [ "$(npackets "$TMP/got.pcap")" = "$n" ] && pass || fail "round $round: $n packets indexed, query read $(npackets "$TMP/got.pcap")"
    tcpdump -Z root -r "$IN" -c "$n" --time-stamp-precision=nano -w "$TMP/exp.pcap" 2>/dev/null
    if [ "$n" = 0 ] || cmp -s "$TMP/exp.pcap" "$TMP/got.pcap"; then pass; else
        fail "round $round: the $n packets archived are not the first $n of the input"
    fi
    # recovery: the next recording indexes what was written after the last commit
    fs record --read "$PCAPS/dns_icmp.pcap" --archive "$A" --stats-interval 0 2>"$TMP/rec.err" ||
        fail "round $round: record after kill -9 (recovery): $(tail -2 "$TMP/rec.err")"
    verify_ok "$A" "round $round after recovery"
    m=$(( $(stored "$A") - $(npackets "$PCAPS/dns_icmp.pcap") ))
    [ "$m" -ge "$n" ] && pass || fail "round $round: recovery lost packets ($n -> $m)"
    mid_recording "$m" && mid=$((mid + 1))
    fs query --archive "$A" -w "$TMP/got.pcap" --to 1795700000 2>/dev/null
    tcpdump -Z root -r "$IN" -c "$m" --time-stamp-precision=nano -w "$TMP/exp.pcap" 2>/dev/null
    if [ "$m" = 0 ] || cmp -s "$TMP/exp.pcap" "$TMP/got.pcap"; then pass; else
        fail "round $round: after recovery the $m packets are not the first $m of the input"
    fi
    ls "$A"/segments/*.open >/dev/null 2>&1 && fail "round $round: recovery left an open segment" || pass
done
note "kill -9 landed mid-recording in $mid of 20 rounds ($rounds left an archive)"
[ "$rounds" -ge 15 ] && pass || fail "only $rounds of 20 rounds left an archive to check"

# two dumpers: a crash may lose the chunks one dumper still held, never order or bytes
mid1=$mid mid=0
for round in 1 2 3 4 5; do
    A=$TMP/crash2
    killed_recording "$A" 2 "0.$((RANDOM % 9 + 1))"
    [ -f "$A/FORMAT" ] || continue
    fs record --read "$PCAPS/dns_icmp.pcap" --archive "$A" --stats-interval 0 2>/dev/null ||
        fail "two dumpers, round $round: recovery"
    verify_ok "$A" "two dumpers, round $round"
    fs query --archive "$A" -w "$TMP/got.pcap" --to 1795700000 2>/dev/null
    subsequence "$TMP/got.pcap" "$IN" && pass ||
        fail "two dumpers, round $round: the archive is not an in-order subsequence of the input"
    mid_recording "$(npackets "$TMP/got.pcap")" && mid=$((mid + 1))
done
note "two dumpers: kill -9 landed mid-recording in $mid of 5 rounds"
# the earliest kills find nothing stored yet (more of them on a slow machine): most must not
[ $((mid1 + mid)) -ge 15 ] && pass ||
    fail "only $((mid1 + mid)) of 25 kills landed on a recorder mid-recording ($mid1 with one dumper, $mid with two)"

# ---- queries while recording see a consistent answer: a prefix of the input ----------------
A=$TMP/live
fs record --read "$IN" --archive "$A" --dumpers 1 --qq-size 8M --segment-size 2M \
    --replay-speed 3 --stats-interval 0 2>/dev/null & # 15 s of traffic in 5 s
pid=$!
answers=0
for i in $(seq 1 30); do
    sleep 0.2
    [ -f "$A/FORMAT" ] || continue
    fs info --archive "$A" >/dev/null 2>&1 || fail "info while recording"
    if fs query --archive "$A" -w "$TMP/q.pcap" 2>"$TMP/q.err"; then
        n=$(npackets "$TMP/q.pcap")
        tcpdump -Z root -r "$IN" -c "$n" --time-stamp-precision=nano -w "$TMP/exp.pcap" 2>/dev/null
        [ "$n" = 0 ] || cmp -s "$TMP/exp.pcap" "$TMP/q.pcap" || fail "query while recording: $n packets, not a prefix"
        answers=$((answers + 1))
    else
        fail "query while recording: $(cat "$TMP/q.err")"
    fi
    kill -0 $pid 2>/dev/null || break
done
wait $pid || fail "record (queried meanwhile)"
[ "$answers" -ge 3 ] && pass || fail "only $answers queries ran while recording"
[ "$(stored "$A")" = "$TOTAL" ] && pass || fail "recording queried meanwhile stored $(stored "$A") of $TOTAL"

# ---- retention by size: never over by more than one segment; the oldest went -------------
A=$TMP/ret
fs record --read "$IN" --archive "$A" --dumpers 1 --qq-size 16M --segment-size 2M --max-disk 20M \
    --stats-interval 0 2>"$TMP/ret.err" &
pid=$!
peak=0
for i in $(seq 1 400); do # sample the archive's size while it records
    s=$(du -sb "$A" 2>/dev/null | cut -f1)
    [ -n "$s" ] && [ "$s" -gt "$peak" ] && peak=$s
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
wait $pid || fail "record --max-disk: $(tail -2 "$TMP/ret.err")"
s=$(du -sb "$A" | cut -f1)
[ "$s" -gt "$peak" ] && peak=$s
limit=$(( (20 + 2) * 1048576 ))
[ "$peak" -le "$limit" ] && pass || fail "--max-disk 20M --segment-size 2M: the archive reached $peak bytes"
[ "$(counter "$TMP/ret.err" record retention.dropped_segments)" -gt 0 ] && pass || fail "retention dropped nothing: $(grep retention "$TMP/ret.err")"
verify_ok "$A" "after retention"
n=$(stored "$A")
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
editcap -F nsecpcap -r "$IN" "$TMP/exp.pcap" "$((TOTAL - n + 1))-$TOTAL" 2>/dev/null
[ "$n" -gt 0 ] && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
    fail "after retention the $n packets kept are not the last $n of the input"

# ---- retention by age: what is older than the limit went, what is newer is all there -------
now=$(date +%s)
fs gen -w "$TMP/old.pcap" --start $((now - 7200)) --rate 10 --packets 72000 --size 0-400 \
    --payload random 2>/dev/null || fail "gen (two hours)"
A=$TMP/age
# one dumper: its segments follow each other in time (each ~1 MB: ~400 s of this traffic)
fs record --read "$TMP/old.pcap" --archive "$A" --segment-size 1M --max-age 1h --dumpers 1 \
    --stats-interval 0 2>"$TMP/age.err" || fail "record --max-age: $(tail -2 "$TMP/age.err")"
[ "$(counter "$TMP/age.err" record retention.dropped_segments)" -gt 0 ] && pass || fail "--max-age dropped nothing"
cut=$((now - 3600 + 60)) # a minute of margin for the time the test takes
fs query --archive "$A" -w "$TMP/got.pcap" --from "$cut" 2>/dev/null
editcap -F nsecpcap -A "$cut" "$TMP/old.pcap" "$TMP/exp.pcap" 2>/dev/null
cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass || fail "--max-age 1h: packets of the last hour are missing"
first=$(fs info --archive "$A" | sed -n 's/^time range: *\([^ ]*\) .*/\1/p')
first_s=$(date -u -d "$first" +%s)
# a segment goes when its newest packet is too old: older data stays for at most one segment
[ "$first_s" -ge $((now - 3600 - 600)) ] && pass || fail "--max-age 1h: data from $first is still there"
verify_ok "$A" "after --max-age"

# ---- rebuild: the same answers from the segments alone --------------------------------------
A=$TMP/rb
fs record --read "$PCAPS/tcp_anomalies.pcap" --archive "$A" --segment-size 1M --dumpers 3 \
    --trigger 'tcp[tcpflags] & tcp-rst != 0' --stats-interval 0 2>/dev/null || fail "record for rebuild"
fs record --read "$PCAPS/http.pcap" --archive "$A" --segment-size 1M --stats-interval 0 2>/dev/null
QUERIES=("" "tcp port 80" "host 10.99.3.10 and tcp[tcpflags] & tcp-rst != 0" "udp or icmp" "net 10.99.1.0/24")
answers() {
    for q in "${QUERIES[@]}"; do fs query --archive "$A" -w - --format pcapng $q 2>/dev/null | md5sum; done
    fs flows --archive "$A" --json | md5sum
    fs flows --archive "$A" --triggered | md5sum
}
answers >"$TMP/before"
fs index rebuild --archive "$A" >"$TMP/rb.out" 2>&1 || fail "index rebuild: $(tail -2 "$TMP/rb.out")"
answers >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" && pass || fail "answers differ after index rebuild"
verify_ok "$A" "after rebuild"
rm -rf "$A/index" # lost altogether: the segments alone
fs index rebuild --archive "$A" >"$TMP/rb.out" 2>&1 || fail "index rebuild without an index: $(tail -2 "$TMP/rb.out")"
# (the trigger names went with the index: the packets' answers only)
answers | head -n ${#QUERIES[@]} >"$TMP/after"
head -n ${#QUERIES[@]} "$TMP/before" | cmp -s - "$TMP/after" && pass ||
    fail "answers differ after rebuilding a lost index"
verify_ok "$A" "after rebuilding a lost index"

# ---- a full disk: capture goes on, what could not be stored is counted, writing resumes ----
[ "$(id -u)" = 0 ] || skip "not root: the full-disk cases cannot mount a small filesystem"
SMALL=$TMP/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=24m tmpfs "$SMALL" || { fail "cannot mount a tmpfs"; finish; }
at_exit 'umount "$SMALL" 2>/dev/null'

# (1) the disk fills and stays full: the recorder survives, counts, the archive verifies
A=$SMALL/a
fs record --read "$IN" --archive "$A" --segment-size 2M --qq-size 16M --stats-interval 0 \
    2>"$TMP/full.err"
rc=$?
[ $rc = 4 ] && pass || fail "record onto a full disk: exit $rc, expected 4 ($(tail -2 "$TMP/full.err"))"
grep -q "disk full" "$TMP/full.err" && pass || fail "no 'disk full' line"
unstored=$(counter "$TMP/full.err" record archive.writer.unstored_packets)
n=$(stored "$A")
[ "${unstored:-0}" -gt 0 ] && [ $((n + unstored)) = "$TOTAL" ] && pass ||
    fail "full disk: stored $n + unstored ${unstored:-?} != $TOTAL"
verify_ok "$A" "after a full disk"
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
[ "$(npackets "$TMP/got.pcap")" = "$n" ] && subsequence "$TMP/got.pcap" "$IN" && pass ||
    fail "full disk: the stored packets are not an in-order subsequence of the input"
rm -rf "$A"

# (2) room comes back while recording: writing resumes (the input's last packet is stored).
# 4 MB free, 16 MB of traffic over 5 s: the disk fills early; the filler goes as soon as the
# recorder says so; the rest of the traffic fits.
tcpdump -Z root -r "$IN" -c 25000 -w "$TMP/in25k.pcap" 2>/dev/null
dd if=/dev/zero of="$SMALL/filler" bs=1M count=20 2>/dev/null
A=$SMALL/b
fs record --read "$TMP/in25k.pcap" --archive "$A" --segment-size 1M --qq-size 4M \
    --replay-speed 0.5 --stats-interval 0 2>"$TMP/resume.err" &
pid=$!
for i in $(seq 1 300); do grep -q "disk full" "$TMP/resume.err" && break; sleep 0.05; done
rm -f "$SMALL/filler"
wait $pid
rc=$?
[ $rc = 4 ] && pass || fail "record with room coming back: exit $rc, expected 4: $(tail -2 "$TMP/resume.err")"
grep -q "room again" "$TMP/resume.err" && pass || fail "no 'room again' line: $(grep -c . "$TMP/resume.err") lines"
verify_ok "$A" "after room came back"
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
[ "$(digests "$TMP/got.pcap" | tail -1)" = "$(digests "$TMP/in25k.pcap" | tail -1)" ] && pass ||
    fail "after room came back the input's last packet is not stored"
subsequence "$TMP/got.pcap" "$TMP/in25k.pcap" && pass || fail "after room came back: not a subsequence"
rm -rf "$A"

# (3) retention makes the room itself (its budget is above the filesystem's size): it keeps
# room for two segments and 8 MiB while it can.  100 MB over 5 s into 24 MB.  (With 3000
# flows of random payload the index, whose posting lists go only with a whole partition of
# 64 segments, takes most of the 24 MB, so the disk may still fill: then exit 4.)
A=$SMALL/c
fs record --read "$IN" --archive "$A" --segment-size 1M --qq-size 8M --max-disk 1G \
    --replay-speed 3 --stats-interval 0 2>"$TMP/ret-full.err"
rc=$?
unstored=$(counter "$TMP/ret-full.err" record archive.writer.unstored_packets)
{ [ $rc = 0 ] && [ "$unstored" = 0 ]; } || { [ $rc = 4 ] && [ "${unstored:-0}" -gt 0 ]; } && pass ||
    fail "record, full disk with retention: exit $rc, ${unstored:-?} unstored: $(tail -1 "$TMP/ret-full.err")"
verify_ok "$A" "full disk with retention"
[ "$(counter "$TMP/ret-full.err" record retention.dropped_segments)" -gt 0 ] && pass || fail "retention freed nothing on a full disk"
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
subsequence "$TMP/got.pcap" "$IN" && pass || fail "full disk with retention: not an in-order subsequence"
finish
