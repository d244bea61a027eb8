#!/bin/bash
# Damaged segment files and the order of answers.
#
# A table of segment damages (a segment deleted, truncated to 0 and mid-frame,
# swapped with another, its first or a later frame's bytes flipped, its seek
# table damaged); for each, every command: query (fails with one line naming
# archive, segment and file, or with --skip-damaged returns the rest, exit 3),
# info, flows, index verify (exit 3), record (leaves the damaged file as it
# is), index rebuild; no signal, no segment file removed, and after the
# rebuild the query answers what it answered before the damage for every
# packet in an undamaged frame (tcpdump's reading of the input, minus the
# damaged frames' packets: one contiguous run of the input per damaged frame
# or segment, with one dumper).
#
# Order: a capture whose time steps back (within and across segments, one and
# two dumpers), equal timestamps, and more than 256 recordings overlapping in
# time come back in capture order (pktdigest lines of the input).
. "$(dirname "$0")/lib.sh"
: "${PKTDIGEST:?PKTDIGEST must name the pktdigest helper}"

digests() { "$PKTDIGEST" -t "$1"; }

# no_signal NAME STATUS: a status below 128.
no_signal() { [ "$2" -lt 128 ] && pass || fail "$1: killed by a signal (status $2)"; }

# expect_status NAME STATUS WANT ERRFILE
expect_status() {
    [ "$2" = "$3" ] && pass || fail "$1: exit $2, expected $3: $(head -c 300 "$4")"
    no_signal "$1" "$2"
}

# only_deletions NAME EXPECTED ANSWER LOST: ANSWER is EXPECTED with LOST packets removed
# (in runs), nothing added or moved.
only_deletions() {
    local added removed
    added=$(diff "$2" "$3" | grep -c '^>')
    removed=$(diff "$2" "$3" | grep -c '^<')
    [ "$added" = 0 ] && [ "$removed" = "$4" ] && pass ||
        fail "$1: the answer adds $added and lacks $removed packets of the input (expected to lack $4)"
}

# ---- a capture, its archive (one dumper: a segment is one run of the input) ----------------
fs gen -w "$TMP/in.pcap" --packets 12000 --payload random --seed 21 >/dev/null 2>&1 || fail "gen"
fs record --read "$TMP/in.pcap" --archive "$TMP/orig" --segment-size 1M --dumpers 1 \
    --qq-size 16M --stats-interval 0 2>/dev/null || fail "record"
nseg=$(ls "$TMP/orig/segments" | wc -l)
[ "$nseg" -ge 6 ] && pass || fail "expected >= 6 segments, got $nseg"
oracle "$TMP/in.pcap" "$TMP/exp.pcap"
digests "$TMP/exp.pcap" >"$TMP/exp.d"
seg() { printf '%s/segments/%012d.pcap.zst' "$A" "$1"; }

# flip FILE OFFSET: 16 bytes overwritten
flip() { printf 'XXXXXXXXXXXXXXXX' | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }

# The damages: NAME|SHELL (A = the archive)|the segment named in the lines
DAMAGES=(
    "deleted|rm \"\$(seg 3)\"|000000000003"
    "truncated to 0|: >\"\$(seg 3)\"|000000000003"
    "truncated mid-frame|truncate -s 400000 \"\$(seg 3)\"|000000000003"
    "swapped|mv \"\$(seg 2)\" \$A/x; mv \"\$(seg 3)\" \"\$(seg 2)\"; mv \$A/x \"\$(seg 3)\"|00000000000[23]"
    "first frame flipped|flip \"\$(seg 3)\" 5000|000000000003"
    "later frame flipped|flip \"\$(seg 3)\" 300000|000000000003"
    "seek table damaged|flip \"\$(seg 3)\" \$((\$(stat -c %s \"\$(seg 3)\") - 30))|000000000003"
)

for entry in "${DAMAGES[@]}"; do
    IFS='|' read -r name how who <<<"$entry"
    note "damage: $name"
    A=$TMP/a
    rm -rf "$A"
    cp -a "$TMP/orig" "$A"
    eval "$how"
    rm -f "$TMP/q.pcap"
    files_before=$(ls "$A/segments" | sort)
    sums_before=$(cd "$A/segments" && md5sum * | sort)

    # query: fails naming archive, segment and file, or (the seek table is not read) answers all
    fs query --archive "$A" -w "$TMP/q.pcap" 2>"$TMP/err"
    rc=$?
    if [ "$name" = "seek table damaged" ]; then
        expect_status "$name: query" $rc 0 "$TMP/err"
        digests "$TMP/q.pcap" | cmp -s - "$TMP/exp.d" && pass || fail "$name: query answer differs"
    else
        expect_status "$name: query" $rc 1 "$TMP/err"
        one_line_error "$TMP/err" "^flowscope query: archive $A: segment .*[(]$A/segments/$who\.pcap\.zst.*--skip-damaged"
        [ -e "$TMP/q.pcap" ] && fail "$name: a failed query left its output" || pass
        # --skip-damaged: the rest, exit 3, the loss said on stderr
        fs query --archive "$A" -w "$TMP/skip.pcap" --skip-damaged 2>"$TMP/err"
        expect_status "$name: query --skip-damaged" $? 3 "$TMP/err"
        grep -qE "^flowscope query: archive $A: segment .*$who.*left out [0-9]+ packets" "$TMP/err" &&
            pass || fail "$name: --skip-damaged did not say what it left out: $(cat "$TMP/err")"
        lost=$(sed -n 's/.*left out \([0-9]*\) packets.*/\1/p' "$TMP/err" | awk '{ s += $1 } END { print s + 0 }')
        digests "$TMP/skip.pcap" >"$TMP/skip.d"
        only_deletions "$name: query --skip-damaged" "$TMP/exp.d" "$TMP/skip.d" "$lost"
        # a stream skips by default (what went out cannot be taken back)
        fs query --archive "$A" -w - 2>"$TMP/err" >"$TMP/stream.pcap"
        expect_status "$name: query -w -" $? 3 "$TMP/err"
        digests "$TMP/stream.pcap" | cmp -s - "$TMP/skip.d" && pass || fail "$name: -w - differs from --skip-damaged"
        rm -f "$TMP/q.pcap"
    fi

    # info and flows read the index; they check the files with stat: missing or short ones
    fs info --archive "$A" >/dev/null 2>"$TMP/err"
    rc=$?
    case $name in
    deleted | truncated* | swapped)
        expect_status "$name: info" $rc 3 "$TMP/err"
        one_line_error "$TMP/err" "^flowscope info: archive $A: 1 segment files missing or shorter .*segment [0-9]+.*$who"
        fs flows --archive "$A" >/dev/null 2>"$TMP/err"
        expect_status "$name: flows" $? 0 "$TMP/err"
        one_line_error "$TMP/err" "^flowscope flows: archive $A: 1 segment files missing or shorter .*segment [0-9]+.*$who" ;;
    *)
        expect_status "$name: info" $rc 0 "$TMP/err"
        fs flows --archive "$A" >/dev/null 2>"$TMP/err"
        expect_status "$name: flows" $? 0 "$TMP/err" ;;
    esac
    # flows FILTER reads packets (as query does): what it could not read is said, exit 3
    fs flows --archive "$A" tcp >/dev/null 2>"$TMP/err"
    rc=$?
    no_signal "$name: flows FILTER" $rc
    if [ "$name" != "seek table damaged" ]; then
        expect_status "$name: flows FILTER" $rc 3 "$TMP/err"
        grep -qE "^flowscope flows: archive $A: segment .*$who.*left out [0-9]+ packets" "$TMP/err" &&
            pass || fail "$name: flows FILTER did not say what it left out: $(cat "$TMP/err")"
    fi

    fs index verify --archive "$A" >"$TMP/out" 2>"$TMP/err"
    expect_status "$name: index verify" $? 3 "$TMP/err"
    grep -qE "segment [0-9]+|$who" "$TMP/out" && pass || fail "$name: verify does not name the segment"
    fs index verify --workers 1 --archive "$A" >"$TMP/out1" 2>&1 # frames read on this thread
    cmp -s "$TMP/out" "$TMP/out1" && pass ||
        fail "$name: verify --workers 1 says other lines: $(diff "$TMP/out" "$TMP/out1" | head -c 400)"

    # record appends and leaves the damaged file alone
    cp -a "$A" "$TMP/r"
    fs record --read "$PCAPS/dns_icmp.pcap" --archive "$TMP/r" --qq-size 16M --stats-interval 0 \
        >/dev/null 2>"$TMP/err"
    no_signal "$name: record" $?
    for f in $files_before; do
        [ -e "$TMP/r/segments/$f" ] || fail "$name: record removed $f"
    done
    (cd "$TMP/r/segments" && md5sum $files_before | sort) | cmp -s - <(echo "$sums_before") &&
        pass || fail "$name: record changed a segment file"
    rm -rf "$TMP/r"

    # rebuild: the same answer as --skip-damaged (every packet of an undamaged frame)
    fs index rebuild --archive "$A" >/dev/null 2>"$TMP/err"
    expect_status "$name: index rebuild" $? 0 "$TMP/err"
    [ "$(ls "$A/segments" | sort)" = "$files_before" ] && pass || fail "$name: rebuild removed or added a file"
    fs query --archive "$A" -w "$TMP/q.pcap" 2>"$TMP/err"
    rc=$?
    case $name in
    *flipped) # the frame rebuild stepped over is named, the answer is incomplete
        expect_status "$name: query after rebuild" $rc 3 "$TMP/err"
        one_line_error "$TMP/err" "^flowscope query: archive $A: segment 3: 1 damaged frames from frame [01] were not indexed" ;;
    *) no_signal "$name: query after rebuild" $rc ;;
    esac
    digests "$TMP/q.pcap" >"$TMP/q.d"
    case $name in
    "seek table damaged")
        cmp -s "$TMP/q.d" "$TMP/exp.d" && pass || fail "$name: after rebuild the answer differs from the input" ;;
    swapped) # every packet, each file's in its chunks' order (a chunk cut by the swapped
        # files' boundary is ordered by segment id, which the swap changed)
        cmp -s <(sort "$TMP/q.d") <(sort "$TMP/exp.d") && pass ||
            fail "$name: after rebuild the answer lacks or adds packets of the input" ;;
    *)
        cmp -s "$TMP/q.d" "$TMP/skip.d" && pass ||
            fail "$name: after rebuild the answer differs from the undamaged frames' packets" ;;
    esac
done

# ---- an open segment (as a crash leaves it): a damaged frame, whole frames, a torn tail ------------
# Recovery and rebuild index it alike (index_file with seal): the frames after the damage are
# indexed, only the torn tail is cut, the file is closed with a seek table.
A=$TMP/open
rm -rf "$A"
cp -a "$TMP/orig" "$A"
s3=$(seg 3)
n=$(le32 "$s3" -9)
truncate -s $(( $(stat -c %s "$s3") - 17 - 8 * n )) "$s3" # the seek table goes
flip "$s3" 300000                                             # frame 1
head -c 5000 "$s3" >>"$s3"                                    # a torn frame
mv "$s3" "$s3.open"
fs index rebuild --archive "$A" >/dev/null 2>"$TMP/err"
expect_status "open segment: rebuild" $? 0 "$TMP/err"
grep -q "segment 3 frame 1 .*not indexed, the frames after it are" "$TMP/err" && pass ||
    fail "open segment: rebuild did not say it stepped over frame 1: $(cat "$TMP/err")"
[ -e "$s3" ] && [ ! -e "$s3.open" ] && pass || fail "open segment: not closed"
fs query --archive "$A" -w "$TMP/q.pcap" 2>"$TMP/err"
expect_status "open segment: query" $? 3 "$TMP/err"
digests "$TMP/q.pcap" >"$TMP/q.d"
only_deletions "open segment" "$TMP/exp.d" "$TMP/q.d" \
    $(( $(wc -l <"$TMP/exp.d") - $(wc -l <"$TMP/q.d") ))
[ $(( $(wc -l <"$TMP/exp.d") - $(wc -l <"$TMP/q.d") )) -lt 1000 ] && pass ||
    fail "open segment: more than one frame's packets lost"
fs index verify --archive "$A" >"$TMP/out" 2>&1
grep -q "segment 3 frame 1" "$TMP/out" && pass || fail "open segment: verify does not show the damage"

# ---- recovery (record start-up) of a segment a kill left open, its frame 0 damaged ----------------
# The frames after the damage are kept (the index's link type stands in for the lost pcap
# header), only the torn tail is cut; the answer is a contiguous run of the input.
fs gen -w "$TMP/k.pcap" --packets 100000 --payload random --seed 9 >/dev/null 2>&1
digests "$TMP/k.pcap" >"$TMP/k.d"
A=$TMP/killed
"$FLOWSCOPE" record --read "$TMP/k.pcap" --archive "$A" --dumpers 1 --replay-speed 1 --qq-size 16M \
    --stats-interval 0 >/dev/null 2>&1 &
pid=$!
for ((i = 0; i < 300; i++)); do # until the open segment holds a few frames (bounded: 30 s)
    size=$(stat -c %s "$A"/segments/*.open 2>/dev/null | head -1)
    [ -n "$size" ] && [ "$size" -gt 1500000 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
open_seg=$(ls "$A"/segments/*.open 2>/dev/null | head -1)
if [ -z "$open_seg" ]; then
    fail "recovery: no open segment after kill -9"
else
    flip "$open_seg" 24 # the zstd frame header and first block of frame 0: the pcap header is lost
    fs record --read "$PCAPS/dns_icmp.pcap" --archive "$A" --qq-size 16M --stats-interval 0 \
        >/dev/null 2>"$TMP/err"
    no_signal "recovery: record" $?
    grep -q "segment 1 frame 0 .*not indexed, the frames after it are" "$TMP/err" && pass ||
        fail "recovery: frame 0's damage not stepped over: $(head -3 "$TMP/err")"
    fs query --archive "$A" -w "$TMP/q.pcap" --from 1795000000 --to 1795001000 2>"$TMP/err"
    expect_status "recovery: query" $? 3 "$TMP/err"
    digests "$TMP/q.pcap" >"$TMP/q.d"
    got=$(wc -l <"$TMP/q.d")
    first=$(grep -nxF -f <(head -1 "$TMP/q.d") "$TMP/k.d" | cut -d: -f1)
    [ "$got" -gt 1000 ] && [ -n "$first" ] && [ "$first" -gt 1 ] &&
        cmp -s "$TMP/q.d" <(tail -n +"$first" "$TMP/k.d" | head -n "$got") && pass ||
        fail "recovery: the answer ($got packets from input packet ${first:-none}) is not the input after frame 0"
fi

# ---- order ------------------------------------------------------------------------------------
# order_check NAME ARCHIVE EXPECTED_DIGESTS: the whole answer, and --limit-packets 3
order_check() {
    fs query --archive "$2" -w "$TMP/o.pcap" 2>/dev/null || fail "$1: query"
    digests "$TMP/o.pcap" | cmp -s - "$3" && pass ||
        fail "$1: answer not in capture order ($(digests "$TMP/o.pcap" | diff - "$3" | grep -c '^<') lines differ)"
    fs query --archive "$2" -w "$TMP/o.pcap" --limit-packets 3 2>/dev/null
    digests "$TMP/o.pcap" | cmp -s - <(head -3 "$3") && pass || fail "$1: --limit-packets 3 is not the first 3"
}

# time steps back across and within segments: three captures appended, later ones earlier
fs gen -w "$TMP/g1.pcap" --start 1795000000 --seed 1 >/dev/null 2>&1
fs gen -w "$TMP/g2.pcap" --start 1794999990 --seed 2 >/dev/null 2>&1
fs gen -w "$TMP/g3.pcap" --start 1794999995 --seed 3 --packets 300 >/dev/null 2>&1
mergecap -F pcap -a -w "$TMP/back.pcap" "$TMP/g1.pcap" "$TMP/g2.pcap" "$TMP/g3.pcap"
digests "$TMP/back.pcap" >"$TMP/back.d"
for d in 1 2; do
    # (the default ring: its chunks spread the dumpers' segments over the step)
    fs record --read "$TMP/back.pcap" --archive "$TMP/back$d" --segment-size 1M --dumpers $d \
        --stats-interval 0 2>/dev/null || fail "record back $d"
    order_check "time steps back, $d dumpers" "$TMP/back$d" "$TMP/back.d"
done

# equal timestamps: every packet at the same instant
python3 - "$TMP/g3.pcap" "$TMP/eq.pcap" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
pos = 24
while pos < len(b):
    caplen = struct.unpack_from('<I', b, pos + 8)[0]
    struct.pack_into('<II', b, pos, 1795000000, 5)
    pos += 16 + caplen
open(sys.argv[2], 'wb').write(b)
EOF
digests "$TMP/eq.pcap" >"$TMP/eq.d"
fs record --read "$TMP/eq.pcap" --archive "$TMP/eq" --dumpers 2 --qq-size 16M --stats-interval 0 \
    2>/dev/null || fail "record eq"
order_check "equal timestamps" "$TMP/eq" "$TMP/eq.d"

# more than 256 recordings overlapping in time: one tiny recording copied as 300 runs (the run
# is in each frame's tag, which index rebuild reads), merged by time, ties by run
fs gen -w "$TMP/tiny.pcap" --packets 4 --seed 5 >/dev/null 2>&1
A=$TMP/many
fs record --read "$TMP/tiny.pcap" --archive "$A" --dumpers 1 --qq-size 16M --stats-interval 0 \
    2>/dev/null || fail "record tiny"
[ "$(le32 "$(seg 1)" 0)" = $((0x184D2A53)) ] && pass || fail "segment 1 does not start with a frame tag"
for ((i = 2; i <= 300; i++)); do
    cp "$(seg 1)" "$(seg $i)"
    printf "$(printf '\\x%02x\\x%02x' $((i % 256)) $((i / 256)))" |
        dd of="$(seg $i)" bs=1 seek=8 conv=notrunc 2>/dev/null
done
fs index rebuild --archive "$A" >/dev/null 2>&1 || fail "rebuild many"
digests "$TMP/tiny.pcap" | awk '{for (i = 0; i < 300; i++) print}' >"$TMP/many.d"
order_check "300 overlapping recordings" "$A" "$TMP/many.d"

# ---- a link type the filter cannot be compiled for ----------------------------------------------
# dns_icmp.pcap as Ethernet and as DLT 147 (USER0: libpcap filters nothing on it), one archive
DNS=$PCAPS/dns_icmp.pcap
cp "$DNS" "$TMP/user0.pcap"
printf '\x93\x00\x00\x00' | dd of="$TMP/user0.pcap" bs=1 seek=20 conv=notrunc 2>/dev/null
A=$TMP/lt
fs record --read "$DNS" --archive "$A" --qq-size 16M --stats-interval 0 2>/dev/null || fail "record eth"
fs record --read "$TMP/user0.pcap" --archive "$A" --qq-size 16M --stats-interval 0 2>/dev/null ||
    fail "record user0"
oracle "$DNS" "$TMP/exp.pcap" icmp
fs query --archive "$A" -w "$TMP/o.pcap" icmp 2>"$TMP/err"
expect_status "filter for Ethernet only" $? 0 "$TMP/err"
one_line_error "$TMP/err" "^flowscope query: warning: archive $A: .*icmp.*: segments 2 of link type 147 \([0-9]+ packets\) are left out"
cmp -s "$TMP/o.pcap" "$TMP/exp.pcap" && pass || fail "icmp over Ethernet and DLT 147 differs from tcpdump on the Ethernet input"
fs query --archive "$A" -w "$TMP/o.pcap" --format pcapng 2>"$TMP/err"
expect_status "no filter, both link types" $? 0 "$TMP/err"
[ "$(npackets "$TMP/o.pcap")" = $(( 2 * $(npackets "$DNS") )) ] && pass || fail "no filter: not every packet"
fs query --archive "$A" -w "$TMP/o.pcap" 'icmp and' 2>"$TMP/err"
expect_status "an invalid filter" $? 2 "$TMP/err"

finish
