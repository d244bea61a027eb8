#!/bin/bash
# Packet times an archive must keep exactly, and inputs of several link types.
#
# A pcap record's seconds are unsigned 32-bit (to 2106-02-07T06:28:15Z); libpcap 1.10
# hands them over sign-extended (times from 2038-01-19T03:14:08Z on come out before
# 1970).  Every time from 1970 to 2106 must be stored as the input has it: the query
# answer is byte for byte tcpdump's copy of the input (which keeps the 32 bits), `info`
# shows the input's times, `index verify` passes, and --from/--to (RFC 3339 and epoch)
# select what editcap -A/-B selects.  Times a segment cannot hold (a pcapng after 2106,
# before 1970, after 2554) are counted and refused (exit 3), never stored wrong; --from
# and --to outside 1970..2554 are refused (exit 2).  A pcapng whose interfaces have
# several link types (mergecap) is recorded whole, as tshark reads it.
#
# usage: times.sh RELINK   (tests/e2e/relink, to make a Linux cooked capture)
. "$(dirname "$0")/lib.sh"
RELINK=$1
DNS="$PCAPS/dns_icmp.pcap" # 164 packets, 2026-11-27T05:29:39.464927Z .. 05:29:43.868168Z

# epochs FILE: each packet's time, a line each, epoch seconds with 9 decimals, as tshark
# reads it (unsigned pcap seconds); epoch_of FILE K: packet K's.
epochs() { tshark -r "$1" -T fields -e frame.time_epoch 2>/dev/null; }
epoch_of() { epochs "$1" | sed -n "${2}p"; }

# plus1ns EPOCH: one nanosecond later.
plus1ns() { printf '%s.%09d' "${1%.*}" $((10#${1#*.} + 1)); }

# rfc3339 EPOCH: the same time in RFC 3339 (UTC, nanoseconds).
rfc3339() { printf '%s.%sZ' "$(date -u -d "@${1%.*}" +%Y-%m-%dT%H:%M:%S)" "${1#*.}"; }

# record_ok NAME SRC ARCHIVE [EXIT]: records SRC (exit EXIT, default 0); `index verify` passes.
record_ok() {
    rm -rf "$3"
    fs record --read "$2" --archive "$3" --stats-interval 0 2>"$TMP/rec.err"
    local rc=$?
    [ $rc -eq "${4:-0}" ] && pass || fail "$1: record exit $rc, expected ${4:-0}: $(grep -av 'QQ\|qq\.\|flowtrack' "$TMP/rec.err" | head -5)"
    fs index verify --archive "$3" >"$TMP/verify.out" 2>&1 && pass ||
        fail "$1: index verify: $(tail -2 "$TMP/verify.out")"
}

# same_as_input NAME ARCHIVE EXPECTED_PCAP [QUERY ARGS...]: the query's answer is EXPECTED
# byte for byte.
same_as_input() {
    local name=$1 arch=$2 exp=$3
    shift 3
    fs query --archive "$arch" -w "$TMP/got.pcap" "$@" 2>"$TMP/q.err" ||
        { fail "$name: query $*: $(cat "$TMP/q.err")"; return; }
    if cmp -s "$exp" "$TMP/got.pcap"; then pass; else
        fail "$name: query $* differs from the input ($(npackets "$exp") vs $(npackets "$TMP/got.pcap") packets; first times $(epoch_of "$exp" 1) vs $(epoch_of "$TMP/got.pcap" 1))"
    fi
}

# window NAME SRC ARCHIVE FROM TO: --from FROM --to TO (epoch), and the same in RFC 3339,
# return what editcap -A FROM -B TO keeps of SRC.
window() {
    local name=$1 src=$2 arch=$3 from=$4 to=$5
    editcap -F nsecpcap -A "$from" -B "$to" "$src" "$TMP/win.pcap" 2>/dev/null || { fail "$name: editcap"; return; }
    oracle "$TMP/win.pcap" "$TMP/win-exp.pcap"
    if [ "$(npackets "$TMP/win-exp.pcap")" = 0 ]; then
        fs query --archive "$arch" --from "$from" --to "$to" -w "$TMP/got.pcap" 2>/dev/null
        [ "$(npackets "$TMP/got.pcap")" = 0 ] && pass || fail "$name: [$from, $to): packets where editcap has none"
        return
    fi
    same_as_input "$name [$from, $to)" "$arch" "$TMP/win-exp.pcap" --from "$from" --to "$to"
    same_as_input "$name [$(rfc3339 "$from"), $(rfc3339 "$to"))" "$arch" "$TMP/win-exp.pcap" \
        --from "$(rfc3339 "$from")" --to "$(rfc3339 "$to")"
}

# info_range NAME ARCHIVE FIRST LAST: `info` shows the time range FIRST .. LAST (epoch).
info_range() {
    local want
    want="time range: $(rfc3339 "$3") .. $(rfc3339 "$4")"
    fs info --archive "$2" 2>&1 | grep -qF "$want" && pass ||
        fail "$1: info says '$(fs info --archive "$2" 2>&1 | grep 'time range')', expected '$want'"
}

# stored_times NAME SRC ARCHIVE: all of SRC stored exactly; info; windows over a quarter to
# three quarters, and exactly one timestamp.
stored_times() {
    local name=$1 src=$2 arch=$3 n from to one t
    record_ok "$name" "$src" "$arch"
    oracle "$src" "$TMP/exp.pcap"
    same_as_input "$name" "$arch" "$TMP/exp.pcap"
    n=$(npackets "$src")
    mapfile -t t < <(epochs "$src")
    [ "${#t[@]}" = "$n" ] || fail "$name: tshark reads ${#t[@]} packets, tcpdump $n"
    info_range "$name" "$arch" "${t[0]}" "${t[n - 1]}"
    from=${t[n / 4 - 1]}
    to=${t[3 * n / 4 - 1]}
    window "$name" "$src" "$arch" "$from" "$to"
    window "$name" "$src" "$arch" "$from" "$(plus1ns "$from")"
}

# ---- 2038 and later, up to the last second a pcap record holds ---------------------------
editcap -F pcap -t 420000000 "$DNS" "$TMP/y2040.pcap"          # 2040-03-19
stored_times "2040" "$TMP/y2040.pcap" "$TMP/a2040"
editcap -F pcap -t 351726267 "$DNS" "$TMP/y2038.pcap"          # across 2038-01-19T03:14:08Z
stored_times "2038" "$TMP/y2038.pcap" "$TMP/a2038"
editcap -F pcap -t 2499209912 "$DNS" "$TMP/y2106.pcap"         # last packet 4294967295.868168
[ "$(epoch_of "$TMP/y2106.pcap" 164)" = 4294967295.868168000 ] && pass || fail "2106: editcap made $(epoch_of "$TMP/y2106.pcap" 164)"
stored_times "2106" "$TMP/y2106.pcap" "$TMP/a2106"

# flows and the JSON forms print those times as the input has them
fs flows --archive "$TMP/a2106" | grep -q "^2106-02-07T06:28:11.464927000Z " && pass || fail "2106: flows: $(fs flows --archive "$TMP/a2106" | sed -n 2p)"
fs query --archive "$TMP/a2106" --format json -w - | grep -q '"time":"2106-02-07T06:28:15.868168000Z","ts_ns":4294967295868168000,' &&
    pass || fail "2106: query --format json: $(fs query --archive "$TMP/a2106" --format json -w - | tail -1 | cut -c1-100)"

# ---- equal timestamps: every packet of the capture at one time, and two times -----------
python3 - "$DNS" "$TMP/equal.pcap" <<'EOF'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
out, pos, i = [data[:24]], 24, 0
while pos + 16 <= len(data):
    sec, usec, cap, wire = struct.unpack_from('<IIII', data, pos)
    # packets 0..99 at one time, the rest at a second time 1 us later
    t = (2000000000, 5) if i < 100 else (2000000000, 6)
    out.append(struct.pack('<IIII', t[0], t[1], cap, wire) + data[pos + 16:pos + 16 + cap])
    pos += 16 + cap
    i += 1
open(dst, 'wb').write(b''.join(out))
EOF
stored_times "equal" "$TMP/equal.pcap" "$TMP/aequal"
window "equal: one time" "$TMP/equal.pcap" "$TMP/aequal" 2000000000.000005000 2000000000.000005001

# ---- beyond 2106: a pcapng holds it, a segment cannot: counted, refused, the rest kept -----
editcap -F pcapng -t 2499209913 "$DNS" "$TMP/y2107.pcapng"       # the last 7 packets after 2106
record_ok "after 2106" "$TMP/y2107.pcapng" "$TMP/a2107" 3
[ "$(counter "$TMP/rec.err" record archive.writer.dropped_time)" = 7 ] && grep -aqE "y2107.pcapng: 7 packets not stored: their times are outside" "$TMP/rec.err" &&
    pass || fail "after 2106: no count of the 7 packets not stored: $(grep -a 'writer\|not stored' "$TMP/rec.err")"
grep -aq "ended: end of input" "$TMP/rec.err" && pass || fail "after 2106: run line: $(grep -a 'run:' "$TMP/rec.err")"
editcap -F nsecpcap -B 4294967296 "$TMP/y2107.pcapng" "$TMP/y2107-kept.pcap"
oracle "$TMP/y2107-kept.pcap" "$TMP/exp.pcap"
[ "$(npackets "$TMP/exp.pcap")" = 157 ] && pass || fail "after 2106: editcap kept $(npackets "$TMP/exp.pcap")"
same_as_input "after 2106" "$TMP/a2107" "$TMP/exp.pcap"

# ---- before 1970 (a pcapng interface's if_tsoffset) and after 2554 (ns in 64 bits) --------
python3 - "$TMP/tsoffset.pcapng" <<'EOF'
import struct, sys
def block(t, body):
    body += b'\0' * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack('<II', t, n) + body + struct.pack('<I', n)
shb = block(0x0A0D0D0A, struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1))
# IDB: Ethernet, snaplen 0; if_tsresol 9 (ns), if_tsoffset -1000 s
opts = struct.pack('<HHB', 9, 1, 9) + b'\0' * 3 + struct.pack('<HHq', 14, 8, -1000) + b'\0' * 4
idb = block(1, struct.pack('<HHI', 1, 0, 0) + opts)
pkt = bytes.fromhex('ffffffffffff020000000001080045000014000100004001f9e60a0000010a000002')
def epb(sec):
    t = sec * 10**9 + 250
    return block(6, struct.pack('<IIIII', 0, t >> 32, t & 0xffffffff, len(pkt), len(pkt)) + pkt)
open(sys.argv[1], 'wb').write(shb + idb + epb(500) + epb(2000) + epb(999) + epb(1000))
EOF
[ "$(tshark -r "$TMP/tsoffset.pcapng" -T fields -e frame.time_epoch 2>/dev/null | tr '\n' ' ')" = \
  "-500.000000250 1000.000000250 -1.000000250 0.000000250 " ] && pass || # tshark's way
    fail "tsoffset.pcapng: tshark reads $(tshark -r "$TMP/tsoffset.pcapng" -T fields -e frame.time_epoch 2>/dev/null | tr '\n' ' ')"
record_ok "before 1970" "$TMP/tsoffset.pcapng" "$TMP/a1969" 3
[ "$(counter "$TMP/rec.err" record ingest.file.drops)" = 2 ] &&
    [ "$(counter "$TMP/rec.err" record ingest.file.dropped_time)" = 2 ] && grep -aq "2 packets not stored" "$TMP/rec.err" &&
    pass || fail "before 1970: $(grep -a 'ingest\|not stored' "$TMP/rec.err")"
[ "$(fs query --archive "$TMP/a1969" -w - 2>/dev/null | tcpdump -r - -tt -nn --time-stamp-precision=nano 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ')" = \
  "1000.000000250 0.000000250 " ] && pass || fail "before 1970: the packets from 1970 on are not the ones stored"
editcap -F pcapng -t -1800000000 "$DNS" "$TMP/wrapped.pcapng" # editcap wraps it: year 585 million
record_ok "after 2554" "$TMP/wrapped.pcapng" "$TMP/a2554" 3
[ "$(counter "$TMP/rec.err" record ingest.file.drops)" = 164 ] &&
    [ "$(counter "$TMP/rec.err" record ingest.file.dropped_time)" = 164 ] && pass || fail "after 2554: $(grep -a 'ingest' "$TMP/rec.err")"

# ---- --from/--to outside what 64-bit ns hold are refused, the edges taken ------------------
for t in 2600-01-01T00:00:00Z 2554-07-21T23:34:33.709551616Z 1969-12-31T23:59:59Z 18446744074 18446744073.709551616; do
    for opt in --from --to; do
        for cmd in query flows; do
            args=()
            [ $cmd = flows ] || args=(-w "$TMP/x.pcap")
            fs $cmd --archive "$TMP/a2040" "$opt" "$t" "${args[@]}" >/dev/null 2>"$TMP/err"
            rc=$?
            if [ $rc -eq 2 ]; then one_line_error "$TMP/err" "$cmd: $opt '$t': out of range"; else
                fail "$cmd $opt $t: exit $rc"; fi
        done
    done
done
fs query --archive "$TMP/a2040" --from 2554-07-21T23:34:33.709551614Z --to 18446744073.709551615 -w "$TMP/x.pcap" 2>/dev/null &&
    [ "$(npackets "$TMP/x.pcap")" = 0 ] && pass || fail "query at the last representable ns: refused or not empty"
fs query --archive "$TMP/a2040" --from 1970-01-01T00:00:00Z -w "$TMP/x.pcap" 2>/dev/null &&
    [ "$(npackets "$TMP/x.pcap")" = 164 ] && pass || fail "query --from 1970-01-01T00:00:00Z: not everything"

# ---- a pcapng whose interfaces have several link types (Ethernet + Linux cooked) ----------
"$RELINK" sll "$DNS" "$TMP/dns.sll.pcap" || fail "relink"
mergecap -F pcapng -w "$TMP/m.pcapng" "$PCAPS/http.pcap" "$TMP/dns.sll.pcap"
editcap -t -4 "$TMP/dns.sll.pcap" "$TMP/dns.sll-4.pcap" # overlapping in time: interleaved
mergecap -F pcapng -w "$TMP/mi.pcapng" "$PCAPS/http.pcap" "$TMP/dns.sll-4.pcap"
for src in m mi; do
    for d in 1 2; do
        record_ok "$src.pcapng, $d dumpers" "$TMP/$src.pcapng" "$TMP/a.$src.$d" 0
        [ "$(counter "$TMP/rec.err" record ingest.file.packets)" = 9142 ] && grep -aq "ended: end of input" "$TMP/rec.err" &&
            pass || fail "$src.pcapng: $(grep -a 'ingest\|run:\|damaged' "$TMP/rec.err")"
        check_links "$TMP/$src.pcapng" "$TMP/a.$src.$d"
        # per link type, as tcpdump reads each input as a pcapng of its own (snaplens as
        # libpcap takes an interface's): the query of the same time range
        for one in "$PCAPS/http.pcap" "$TMP/dns.sll.pcap"; do
            [ $src = m ] || break
            editcap -F pcapng "$one" "$TMP/one.pcapng"
            oracle "$TMP/one.pcapng" "$TMP/exp.pcap"
            mapfile -t t < <(epochs "$one")
            same_as_input "$src.pcapng, $d dumpers, $(basename "$one")" "$TMP/a.$src.$d" "$TMP/exp.pcap" \
                --from "${t[0]}" --to "$(plus1ns "${t[${#t[@]} - 1]}")"
        done
    done
done
cat "$TMP/mi.pcapng" | fs record --read - --archive "$TMP/a.stdin" --stats-interval 0 2>"$TMP/rec.err" && pass ||
    fail "mi.pcapng on stdin: $(grep -a damaged "$TMP/rec.err")"
check_links "$TMP/mi.pcapng" "$TMP/a.stdin"
mkfifo "$TMP/fifo"
cat "$TMP/mi.pcapng" >"$TMP/fifo" &
fs record --read "$TMP/fifo" --archive "$TMP/a.fifo" --stats-interval 0 2>"$TMP/rec.err" && pass ||
    fail "mi.pcapng through a named pipe: $(grep -a damaged "$TMP/rec.err")"
wait
check_links "$TMP/mi.pcapng" "$TMP/a.fifo"
# damaged input: the run line says so
head -c 100000 "$TMP/m.pcapng" >"$TMP/cut.pcapng"
record_ok "cut pcapng" "$TMP/cut.pcapng" "$TMP/a.cut" 3
grep -aq "ended: damaged input" "$TMP/rec.err" && pass || fail "cut pcapng: run line: $(grep -a 'run:' "$TMP/rec.err")"
finish
