# A full disk keeps what fits: on a small filesystem (a 20 MiB tmpfs) a recording of a much
# larger input stores until the disk is nearly full (over 3/4 of it in segments), keeps the index consistent, says
# `disk full, not storing` in its status line, names what it could not store in one final
# line and exits 4 (docs/cli.md); with retention the oldest segments make room and the
# recording goes on.  Needs root (mount); skipped otherwise.
. "$(dirname "$0")/lib.sh"
: "${PKTDIGEST:?PKTDIGEST must name the pktdigest helper}"

[ "$(id -u)" = 0 ] || skip "not root: cannot mount a small filesystem"
SMALL=$TMP/small
FS_BYTES=$((20 << 20))
mkdir -p "$SMALL"
mount -t tmpfs -o size=20m tmpfs "$SMALL" || { fail "cannot mount a tmpfs"; finish; }
at_exit 'umount "$SMALL" 2>/dev/null'

IN=$TMP/in.pcap # 123 MB of pcap, ~80 MB compressed: four times the filesystem
fs gen -w "$IN" --packets 150000 2>/dev/null || fail "gen"
TOTAL=$(npackets "$IN")

# segment_bytes ARCHIVE: bytes of segment files
segment_bytes() { cat "$1"/segments/* 2>/dev/null | wc -c; }

# full_checks NAME ARCHIVE ERRFILE RC: what every recording that met a full disk must show
full_checks() {
    local name=$1 a=$2 err=$3 rc=$4 unstored n line
    unstored=$(counter "$err" record archive.writer.unstored_packets)
    n=$(stored "$a")
    [ "${unstored:-0}" -gt 0 ] && [ $((n + unstored)) = "$TOTAL" ] && pass ||
        fail "$name: stored $n + unstored ${unstored:-?} != $TOTAL"
    [ "$rc" = 4 ] && pass || fail "$name: exit $rc, expected 4 (not everything stored)"
    line=$(tail -1 "$err")
    echo "$line" | grep -qE "^flowscope record: archive $a: $unstored packets \([0-9]+ bytes\) of $IN could not be stored: the disk was full" &&
        pass || fail "$name: last line: $line"
    if fs index verify --archive "$a" >"$TMP/verify.out" 2>&1; then pass; else
        fail "$name: index verify: $(head -3 "$TMP/verify.out")"
    fi
    fs query --archive "$a" -w "$TMP/got.pcap" 2>/dev/null || fail "$name: query"
    [ "$(npackets "$TMP/got.pcap")" = "$n" ] && subsequence "$TMP/got.pcap" "$IN" && pass ||
        fail "$name: the stored packets are not an in-order subsequence of the input"
}

# ---- flat out, default settings: the disk ends mostly full of segments -----------------------
A=$SMALL/a
fs record --read "$IN" --archive "$A" --stats-interval 0 2>"$TMP/a.err"
full_checks "default settings" "$A" "$TMP/a.err" $?
s=$(segment_bytes "$A")
[ "$s" -gt $((FS_BYTES * 3 / 4)) ] && pass ||
    fail "default settings: $s bytes of segments on a $FS_BYTES-byte filesystem ($(df -h "$SMALL" | tail -1))"
[ "$(grep -c "room again (dumper" "$TMP/a.err")" = 0 ] && pass ||
    fail "room again without anything freeing room: $(grep -m1 "room again (dumper" "$TMP/a.err")"
ls "$A"/segments/*.open >/dev/null 2>&1 && fail "a segment left open on a full disk" || pass

# ---- the disk is full (of the recording above): retention makes room, the recording goes on -
fs record --read "$IN" --archive "$A" --segment-size 1M --max-disk 1G --replay-speed 3 \
    --stats-interval 0 2>"$TMP/d.err"
rc=$?
unstored=$(counter "$TMP/d.err" record archive.writer.unstored_packets)
{ [ "$rc" = 0 ] && [ "$unstored" = 0 ]; } || { [ "$rc" = 4 ] && [ "$unstored" -gt 0 ]; } && pass ||
    fail "retention on a full disk: exit $rc with ${unstored:-?} packets unstored: $(tail -1 "$TMP/d.err")"
[ "$(counter "$TMP/d.err" record retention.dropped_segments)" -gt 0 ] && pass || fail "retention freed nothing on a full disk"
fs index verify --archive "$A" >"$TMP/verify.out" 2>&1 && pass ||
    fail "retention on a full disk: index verify: $(head -3 "$TMP/verify.out")"
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
[ "$("$PKTDIGEST" -t "$TMP/got.pcap" | tail -1)" = "$("$PKTDIGEST" -t "$IN" | tail -1)" ] && pass ||
    fail "retention on a full disk: the input's last packet is not stored (the recording did not go on)"
n=$(stored "$A")
[ "$n" -gt $((TOTAL / 20)) ] && pass || fail "retention on a full disk: only $n packets stored"
rm -rf "$A"

# ---- many flows: the index grows faster than the segments, and must still fit -------------
IN_SMALL=$IN
IN=$TMP/flows.pcap
fs gen -w "$IN" --packets 300000 --flows 50000 --size 0-200 --payload random 2>/dev/null ||
    fail "gen (many flows)"
TOTAL=$(npackets "$IN")
A=$SMALL/f
fs record --read "$IN" --archive "$A" --dumpers 3 --stats-interval 0 2>"$TMP/f.err"
full_checks "many flows" "$A" "$TMP/f.err" $?
rm -rf "$A" "$IN"
IN=$IN_SMALL
TOTAL=$(npackets "$IN")

# ---- at recorded speed: the status line says so while the disk is full ----------------------
A=$SMALL/b
fs record --read "$IN" --archive "$A" --dumpers 1 --replay-speed 6 --stats-interval 200ms \
    2>"$TMP/b.err"
full_checks "status line" "$A" "$TMP/b.err" $?
grep -q "| disk full, not storing" "$TMP/b.err" && pass ||
    fail "no status line says 'disk full, not storing': $(grep -m1 pkt/s "$TMP/b.err")"
rm -rf "$A"

# ---- retention keeps room (its budget is above the filesystem's size): nothing is lost ------
A=$SMALL/c
fs record --read "$IN" --archive "$A" --dumpers 1 --segment-size 1M --max-disk 1G \
    --stats-interval 0 2>"$TMP/c.err"
rc=$?
[ "$rc" = 0 ] && [ "$(counter "$TMP/c.err" record archive.writer.unstored_packets)" = 0 ] && pass ||
    fail "retention keeping room: exit $rc: $(counter "$TMP/c.err" record archive.writer.unstored_packets) unstored $(tail -1 "$TMP/c.err")"
[ "$(counter "$TMP/c.err" record retention.dropped_segments)" -gt 0 ] && pass || fail "retention dropped nothing"
fs index verify --archive "$A" >"$TMP/verify.out" 2>&1 && pass ||
    fail "retention: index verify: $(head -3 "$TMP/verify.out")"
n=$(stored "$A")
fs query --archive "$A" -w "$TMP/got.pcap" 2>/dev/null
editcap -F nsecpcap -r "$IN" "$TMP/exp.pcap" "$((TOTAL - n + 1))-$TOTAL" 2>/dev/null
[ "$n" -gt 0 ] && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
    fail "retention keeping room: the $n packets kept are not the last $n of the input"

finish
