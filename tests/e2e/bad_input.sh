#!/bin/bash
# Bad input: every mistake a user or a damaged file can make gets one clear
# line on stderr and a non-zero exit (or, for a damaged capture, everything
# readable archived, the loss counted, exit 3), never a crash, and never harm
# to an archive that already exists.
. "$(dirname "$0")/lib.sh"

DNS=$PCAPS/dns_icmp.pcap
A=$TMP/archive
fs record --read "$DNS" --archive "$A" --qq-size 8M --stats-interval 0 2>/dev/null || fail "setup record"
fs query --archive "$A" -w "$TMP/before.pcap" 2>/dev/null || fail "setup query"
snapshot() { (cd "$A" && find . -type f ! -name lock.mdb -print0 | sort -z | xargs -0 sha256sum); }
snapshot >"$TMP/before.sum"

# expect STATUS PATTERN CMD...: exit status STATUS and one stderr line matching PATTERN
expect() {
    local want=$1 pat=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -ne "$want" ]; then fail "'$*': exit $rc, expected $want ($(head -c 300 "$TMP/err"))"; return; fi
    one_line_error "$TMP/err" "$pat"
}

# ---- --max-disk: the first refusal names the real least budget, which is then accepted --------
# (4 x dumpers x --segment-size: 8M for one dumper of 2M segments; with the defaults, whatever
# this machine's default dumpers make it)
expect 2 "--max-disk .*at least 8M" fs record --read "$DNS" --archive "$TMP/ret" --dumpers 1 --segment-size 2M --max-disk 1M
expect 2 "--max-disk .*at least 8M" fs record --read "$DNS" --archive "$TMP/ret" --dumpers 1 --segment-size 2M --max-disk 7M
fs record --read "$DNS" --archive "$TMP/ret" --dumpers 1 --segment-size 2M --max-disk 8M --stats-interval 0 2>"$TMP/err" &&
    pass || fail "--max-disk 8M for one dumper of 2M segments: $(tail -1 "$TMP/err")"
expect 2 "--max-disk .*at least [0-9]+M" fs record --read "$DNS" --archive "$TMP/ret2" --max-disk 1M
least=$(sed -n 's/.*at least \([0-9]*M\).*/\1/p' "$TMP/err")
fs record --read "$DNS" --archive "$TMP/ret2" --max-disk "$least" --stats-interval 0 2>"$TMP/err" &&
    pass || fail "--max-disk $least, the least the first message gave: $(tail -1 "$TMP/err")"

# ---- capture files that cannot be read: nothing is archived -----------------------------
expect 1 "no-such\.pcap: No such file" fs record --read "$TMP/no-such.pcap" --archive "$A"
expect 1 "is a directory" fs record --read "$TMP" --archive "$A"
: >"$TMP/empty.pcap"
expect 1 "empty\.pcap: empty file" fs record --read "$TMP/empty.pcap" --archive "$A"
head -c 4096 /dev/urandom >"$TMP/random.pcap"
expect 1 "random\.pcap: not a capture file" fs record --read "$TMP/random.pcap" --archive "$A"
head -c 10 "$DNS" >"$TMP/short-header.pcap"
expect 1 "short-header\.pcap: not a capture file" fs record --read "$TMP/short-header.pcap" --archive "$A"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    cp "$DNS" "$TMP/secret.pcap"; chmod 000 "$TMP/secret.pcap"; chmod 755 "$TMP"
    expect 1 "secret\.pcap: Permission denied" \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$FLOWSCOPE" record --read "$TMP/secret.pcap" --archive "$TMP/unused"
else
    note "not root (or no setpriv): an unreadable file cannot be tried; the test ends skipped"
fi
[ ! -e "$TMP/unused" ] && pass || fail "an unreadable source created an archive"

# ---- damaged captures: all that is readable is archived; the loss is counted -------------
# last record cut 10 bytes short: stored up to the cut (tcpdump drops it)
size=$(stat -c %s "$DNS")
head -c $((size - 10)) "$DNS" >"$TMP/cut.pcap"
fs record --read "$TMP/cut.pcap" --archive "$TMP/cut" --stats-interval 0 2>"$TMP/err"
rc=$?
[ $rc -eq 3 ] && pass || fail "cut.pcap: exit $rc, expected 3"
grep -q "truncated at byte $((size - 10)): last record has .* captured bytes" "$TMP/err" && pass || fail "cut.pcap message: $(cat "$TMP/err")"
[ "$(counter "$TMP/err" record ingest.file.truncated_records)" = 1 ] && pass || fail "cut.pcap: truncation not counted: $(cat "$TMP/err")"
fs query --archive "$TMP/cut" -w "$TMP/cut-out.pcap" 2>/dev/null
oracle "$TMP/cut.pcap" "$TMP/cut-exp.pcap"
[ "$(npackets "$TMP/cut-out.pcap")" = $(( $(npackets "$TMP/cut-exp.pcap") + 1 )) ] && pass || fail "cut.pcap: expected one packet more than tcpdump reads"
cmp -s -n "$(stat -c %s "$TMP/cut-exp.pcap")" "$TMP/cut-exp.pcap" "$TMP/cut-out.pcap" && pass || fail "cut.pcap: packets before the cut differ"
caplens() { tshark -r "$1" -T fields -e frame.cap_len -e frame.len 2>/dev/null | tail -1; }
read -r cut_cap cut_len < <(caplens "$TMP/cut-out.pcap")
read -r full_cap full_len < <(caplens "$DNS")
[ "$cut_cap" = $((full_cap - 10)) ] && [ "$cut_len" = "$full_len" ] && pass ||
    fail "cut.pcap: last packet: $cut_cap/$cut_len bytes, expected $((full_cap - 10))/$full_len"
# stray bytes where a record header should be (from dpkt's test data)
fs record --read "$PCAPS/public/dpkt/truncated_dns_2.pcap" --archive "$TMP/stray" --stats-interval 0 2>"$TMP/err"
rc=$?
[ $rc -eq 3 ] && grep -q "7 stray bytes" "$TMP/err" && pass || fail "truncated_dns_2: exit $rc, $(cat "$TMP/err")"
[ "$(fs query --archive "$TMP/stray" -w - 2>/dev/null | capinfos -M -c - 2>/dev/null | awk '/Number of packets/ {print $NF}')" = 1 ] && pass || fail "truncated_dns_2: the whole first packet must be archived"

# the same through a pipe (--read -): stored up to the last whole record, damage reported
head -c $((size - 10)) "$DNS" | fs record --read - --archive "$TMP/pipe" --stats-interval 0 2>"$TMP/err"
rc=$?
[ $rc -eq 3 ] && grep -qE "stdin: damaged (near byte [0-9]+ )?after .* packets: truncated dump file" "$TMP/err" && pass || fail "cut pipe: exit $rc, $(cat "$TMP/err")"
fs query --archive "$TMP/pipe" -w "$TMP/pipe.pcap" 2>/dev/null && cmp -s "$TMP/cut-exp.pcap" "$TMP/pipe.pcap" && pass || fail "cut pipe: archive differs from tcpdump"

# ---- archives -------------------------------------------------------------------------------
expect 1 "nowhere: no such archive" fs query --archive "$TMP/nowhere" -w "$TMP/x.pcap" host 10.0.0.1
expect 1 "not a flowscope archive" fs query --archive /etc -w "$TMP/x.pcap"
expect 1 "not a flowscope archive" fs info --archive /etc
mkdir -p "$TMP/notempty" && echo data >"$TMP/notempty/keep"
expect 1 "not a flowscope archive and not empty" fs record --read "$DNS" --archive "$TMP/notempty"
[ "$(ls "$TMP/notempty")" = keep ] && pass || fail "record wrote into a non-archive directory"
cp -r "$A" "$TMP/future" && echo "flowscope-archive 99" >"$TMP/future/FORMAT"
expect 1 "format version 99" fs info --archive "$TMP/future"
expect 1 "another flowscope process is writing" \
    flock "$A/LOCK" "$FLOWSCOPE" record --read "$DNS" --archive "$A" --qq-size 8M
# a damaged segment: the query names it and fails; it never prints garbage or crashes
cp -r "$A" "$TMP/damaged"
seg=$(ls "$TMP/damaged"/segments/*.pcap.zst | head -1)
printf 'XXXXXXXX' | dd of="$seg" bs=1 seek=100 conv=notrunc 2>/dev/null
expect 1 "segment 1 frame 0" fs query --archive "$TMP/damaged" -w "$TMP/x.pcap"
[ ! -e "$TMP/x.pcap" ] && pass || fail "a failed query left its output file"
truncate -s 50 "$seg"
expect 1 "segment 1 frame 0" fs query --archive "$TMP/damaged" -w "$TMP/x.pcap" udp

# ---- command line -----------------------------------------------------------------------------
expect 2 "invalid filter 'tcp port eighty'.*" fs query --archive "$A" -w "$TMP/x.pcap" tcp port eighty
expect 2 "invalid filter 'host and'" fs query --archive "$A" -w "$TMP/x.pcap" "host and"
expect 2 "option '--bogus': unknown" fs record --bogus --read "$DNS" --archive "$A"
expect 2 "option '--from': unknown, or missing its value" fs query --archive "$A" --from
expect 2 "--qq-size '12Q'" fs record --read "$DNS" --archive "$A" --qq-size 12Q
expect 2 "--capture triggered" fs record --read "$DNS" --archive "$A" --capture triggered
expect 2 "--from 'yesterday': not a time" fs query --archive "$A" --from yesterday -w "$TMP/x.pcap"
expect 2 "--to '2026-13-01T00:00:00Z': not a time" fs query --archive "$A" --to 2026-13-01T00:00:00Z -w "$TMP/x.pcap"
expect 2 "--from is not before --to" fs query --archive "$A" --from 2000 --to 1000 -w "$TMP/x.pcap"
expect 2 "--archive DIR is required" fs query host 10.0.0.1
expect 2 "a source \(--read FILE, --dpdk, --afpacket or --live\) is required" fs record --archive "$A"
expect 2 "give one source" fs record --archive "$A" --read "$DNS" --live lo
expect 2 "--rx-queues needs --dpdk or --afpacket" fs record --archive "$A" --read "$DNS" --rx-queues 2
expect 2 "--replay-speed needs --read" fs record --archive "$A" --live lo --replay-speed 2
expect 2 "--replay-speed 'fast'" fs record --archive "$A" --read "$DNS" --replay-speed fast
expect 2 "unknown command 'recrod'" fs recrod
expect 1 "cannot write $TMP/no/dir/x.pcap" fs query --archive "$A" -w "$TMP/no/dir/x.pcap"
expect 1 "$TMP/none: no such archive" fs query --archive "$TMP/none" -w "$TMP/x.pcap"
expect 1 "$TMP/none: no such archive" fs flows --archive "$TMP/none"
mkdir "$TMP/empty"
expect 1 "$TMP/empty: not a flowscope archive" fs query --archive "$TMP/empty" -w "$TMP/x.pcap"
# a running recorder of another version (it holds LOCK and names itself there)
cp -r "$A" "$TMP/other"
printf 'flowscope 0.0.1 pid 1\n' >"$TMP/other/LOCK"
expect 1 "being written by flowscope 0.0.1; this is flowscope [0-9.]+" \
    flock "$TMP/other/LOCK" "$FLOWSCOPE" query --archive "$TMP/other" -w "$TMP/x.pcap"
# the same file without a writer holding it: readable
fs query --archive "$TMP/other" -w "$TMP/x.pcap" 2>/dev/null && pass || fail "a stale LOCK of another version blocks readers"

# ---- an empty answer is a valid empty pcap, exit 0, with a notice ------------------------------
fs query --archive "$A" -w "$TMP/none.pcap" host 192.0.2.1 2>"$TMP/err" && pass || fail "empty answer: non-zero exit"
grep -q "no packets matched" "$TMP/err" && pass || fail "empty answer: no notice"
capinfos "$TMP/none.pcap" >/dev/null 2>&1 && [ "$(npackets "$TMP/none.pcap")" = 0 ] && pass || fail "empty answer: not a valid empty pcap"

# ---- nothing above changed the archive ---------------------------------------------------------
snapshot >"$TMP/after.sum"
cmp -s "$TMP/before.sum" "$TMP/after.sum" && pass || fail "the archive changed: $(diff "$TMP/before.sum" "$TMP/after.sum")"
fs query --archive "$A" -w "$TMP/after.pcap" 2>/dev/null && cmp -s "$TMP/before.pcap" "$TMP/after.pcap" && pass || fail "the archive answers differently"
{ [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; } || skip "not root (or no setpriv): an unreadable file was not tried"
finish
