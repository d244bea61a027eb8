#!/bin/bash
# query on a pool of workers (query/readahead.c) answers the same bytes as on
# the query's thread alone (--workers 1, the sequential path), and reports a
# damaged frame the same way.
#
# An archive of two recordings of the same capture (so two streams overlap in
# time and the merge interleaves their frames, which then share the pool's
# slots) and small segments (many frames); for a matrix of filters, formats
# and limits, `--workers 1` against 2, 3 and 16: cmp of the outputs, and
# against tcpdump's answer for the plain pcap.  Then a frame in the middle of
# a segment is damaged: without --skip-damaged every worker count fails with
# the same one line naming segment and file; with it, the same answer, the
# same "left out" line and exit status 3.
. "$(dirname "$0")/lib.sh"

fs gen -w "$TMP/in.pcap" --packets 20000 --flows 300 --payload random --seed 7 >/dev/null 2>&1 ||
    fail "gen"
for i in 1 2; do
    fs record --read "$TMP/in.pcap" --archive "$TMP/a" --segment-size 1M --dumpers 2 \
        --stats-interval 0 2>/dev/null || fail "record $i"
done
nframes=$(fs query --archive "$TMP/a" --explain '' | sed -n 's/^frames: \([0-9]*\) of.*/\1/p')
[ "${nframes:-0}" -ge 20 ] && pass || fail "expected >= 20 frames, got '$nframes'"

# body FILE: a pcapng after its Section Header Block (whose comment, the command line,
# names the worker count), or a pcap or JSON whole.
body() {
    if [ "$(od -An -tx1 -N4 "$1" | tr -d ' ')" = 0a0d0d0a ]; then
        tail -c +$(($(od -An -tu4 -j4 -N4 "$1") + 1)) "$1"
    else
        cat "$1"
    fi
}

# same_answer NAME ARGS...: --workers 1 and 2, 3, 16 write the same bytes and exit status.
same_answer() {
    local name=$1 w rc
    shift
    fs query --archive "$TMP/a" --workers 1 -w "$TMP/w1.out" "$@" 2>"$TMP/w1.err"
    rc1=$?
    for w in 2 3 16; do
        fs query --archive "$TMP/a" --workers $w -w "$TMP/w$w.out" "$@" 2>"$TMP/w$w.err"
        rc=$?
        [ "$rc" = "$rc1" ] && pass || fail "$name: --workers $w exits $rc, --workers 1 $rc1"
        cmp -s <(body "$TMP/w1.out") <(body "$TMP/w$w.out") && pass ||
            fail "$name: --workers $w answers other bytes than --workers 1"
        cmp -s "$TMP/w1.err" "$TMP/w$w.err" && pass ||
            fail "$name: --workers $w says other things: $(head -c 300 "$TMP/w$w.err")"
    done
}

HOST=$(tcpdump -nr "$TMP/in.pcap" -c 1 ip 2>/dev/null | sed -n 's/.* IP \([0-9.]*\)\.[0-9]* > .*/\1/p')
[ -n "$HOST" ] && pass || fail "no IPv4 host in the capture"
same_answer "everything" ''
same_answer "tcp" tcp
same_answer "host $HOST" "host $HOST"
same_answer "no match" "host 192.0.2.1"
same_answer "pcapng" --format pcapng udp
same_answer "json" --format json tcp
same_answer "micro" --ts micro ''
same_answer "limit-packets" --limit-packets 7777 ''
same_answer "limit-bytes" --limit-bytes 3M ''
FROM=$(tcpdump -ttnr "$TMP/in.pcap" 2>/dev/null | sed -n '5000s/ .*//p')
TO=$(tcpdump -ttnr "$TMP/in.pcap" 2>/dev/null | sed -n '15000s/ .*//p')
same_answer "time range" --from "$FROM" --to "$TO" tcp

# the sequential answer is the capture twice, merged by time (two recordings)
fs query --archive "$TMP/a" --workers 4 -w "$TMP/all.pcap" tcp 2>/dev/null || fail "query tcp"
oracle "$TMP/in.pcap" "$TMP/exp.pcap" tcp
[ "$(npackets "$TMP/all.pcap")" = $((2 * $(npackets "$TMP/exp.pcap"))) ] && pass ||
    fail "--workers 4 answers $(npackets "$TMP/all.pcap") tcp packets, expected twice $(npackets "$TMP/exp.pcap")"

# ---- a damaged frame in the middle of a segment ---------------------------------------------
seg=$(ls -S "$TMP/a/segments" | head -1)
size=$(stat -c %s "$TMP/a/segments/$seg")
printf 'XXXXXXXXXXXXXXXX' | dd of="$TMP/a/segments/$seg" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
same_answer "damaged, failing" ''
[ "$rc1" = 1 ] && pass || fail "damaged: --workers 1 exits $rc1, expected 1"
one_line_error "$TMP/w16.err" \
    "^flowscope query: archive $TMP/a: segment [0-9]+ frame [0-9]+ [(]$TMP/a/segments/$seg, byte [0-9]+[)]: .*packets cannot be read"
same_answer "damaged, --skip-damaged" --skip-damaged ''
[ "$rc1" = 3 ] && pass || fail "damaged --skip-damaged: --workers 1 exits $rc1, expected 3"
grep -qE "^flowscope query: archive $TMP/a: segment [0-9]+ frame [0-9]+ .*$seg.*left out [0-9]+ packets" \
    "$TMP/w16.err" && pass || fail "damaged --skip-damaged: no 'left out' line: $(cat "$TMP/w16.err")"
finish
