#!/bin/bash
# docs/archive-format.md, as an outsider reads it: archive_reader.py (written from the document
# alone: Python, LMDB and zstd bindings) answers a host and a 5-tuple query on archives of every
# kind (two recordings, left by a crash, many small segments, --snaplen 50, triggered, VLAN
# tagged) and its answer must equal `flowscope query`'s byte for byte (and tcpdump's, where the
# archive holds the whole source).  If the code or the document changes alone, this fails.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's python: python3-lmdb, python3-zstandard (make deps)
READER=$(dirname "$0")/archive_reader.py
if ! $PY -c 'import lmdb, zstandard' 2>"$TMP/py.err"; then
    fail "python3-lmdb and python3-zstandard are needed (make deps): $(tail -1 "$TMP/py.err")"
    finish
fi

# top_tuple SRC FILTER: "A PA B PB" of the TCP conversation with the most packets in SRC
# among those FILTER selects
top_tuple() {
    timeout 60 tcpdump -nn -r "$1" "$2" 2>/dev/null |
        sed -nE 's/.* IP6? ([0-9a-f:.]+)\.([0-9]+) > ([0-9a-f:.]+)\.([0-9]+): .*/\1 \2 \3 \4/p' |
        awk '{ k = ($1 < $3) ? $1" "$2" "$3" "$4 : $3" "$4" "$1" "$2; n[k]++ }
             END { for (k in n) if (n[k] > best) { best = n[k]; b = k }; print b }'
}

# check NAME ARCHIVE SRC|- READER-ARGS...: the reader's answer equals `flowscope query`'s with
# the same filter, is not empty, and (SRC given) equals tcpdump's selection from SRC; for a host,
# the frames it reads are those `query --explain` lists
check() {
    local name=$1 a=$2 src=$3 filter n
    shift 3
    filter=$($PY "$READER" "$a" "$@" --print-filter -w /dev/null)
    if ! $PY "$READER" "$a" "$@" -w "$TMP/r.pcap" 2>"$TMP/r.err"; then
        fail "$name: the reader failed on '$filter': $(tail -3 "$TMP/r.err")"
        return
    fi
    fs query --archive "$a" -w "$TMP/q.pcap" "$filter" 2>"$TMP/q.err" ||
        { fail "$name: query '$filter': $(cat "$TMP/q.err")"; return; }
    n=$(npackets "$TMP/q.pcap")
    [ "${n:-0}" -gt 0 ] && pass || fail "$name: '$filter' selects nothing (a test without a question)"
    if cmp -s "$TMP/r.pcap" "$TMP/q.pcap"; then pass; else
        fail "$name: '$filter': the reader's answer ($(npackets "$TMP/r.pcap") packets) differs from flowscope query's ($n): $(cmp "$TMP/r.pcap" "$TMP/q.pcap" 2>&1 | head -1)"
    fi
    if [[ " $* " == *" --host "* ]]; then # the frames it reads: those of --explain
        $PY "$READER" "$a" "$@" --candidates -w /dev/null >"$TMP/rc.txt" 2>&1
        fs query --archive "$a" --explain "$filter" 2>/dev/null | grep '^  segment' >"$TMP/qc.txt"
        cmp -s "$TMP/rc.txt" "$TMP/qc.txt" && pass ||
            fail "$name: '$filter': the reader's candidate frames differ from --explain's: $(diff "$TMP/rc.txt" "$TMP/qc.txt" | head -4 | tr '\n' ' ')"
    fi
    [ "$src" = - ] && return
    oracle "$src" "$TMP/t.pcap" "$filter"
    cmp -s "$TMP/q.pcap" "$TMP/t.pcap" && pass ||
        fail "$name: '$filter': flowscope query has $n packets, tcpdump $(npackets "$TMP/t.pcap")"
}

# both NAME ARCHIVE SRC|- TUPLE-SRC [VLANS [FILTER]]: a host and a 5-tuple query (the busiest
# TCP conversation of TUPLE-SRC that FILTER selects), with VLANS tags before the IP header
both() {
    local name=$1 a=$2 src=$3 tsrc=$4 vlans=${5:-0} vl="" t
    [ "$vlans" -gt 0 ] && vl="vlan and "
    read -r -a t <<<"$(top_tuple "$tsrc" "${vl}tcp${6:+ and $6}")"
    [ ${#t[@]} = 4 ] || { fail "$name: no TCP conversation in $tsrc"; return; }
    check "$name host" "$a" "$src" --vlan "$vlans" --host "${t[2]}"
    check "$name 5-tuple" "$a" "$src" --vlan "$vlans" --tuple tcp "${t[@]}"
}

rec() { fs record --stats-interval 0 --qq-size 16M "$@" 2>"$TMP/rec.err" || fail "record $*: $(tail -2 "$TMP/rec.err")"; }

# ---- one recording of real captures: IPv4 and IPv6, tagged and untagged --------------------
for f in http mixed_vlan tcp_anomalies; do
    rec --read "$PCAPS/$f.pcap" --archive "$TMP/$f"
done
both http "$TMP/http" "$PCAPS/http.pcap" "$PCAPS/http.pcap"
both tcp_anomalies "$TMP/tcp_anomalies" "$PCAPS/tcp_anomalies.pcap" "$PCAPS/tcp_anomalies.pcap"
check "http IPv6 host" "$TMP/http" "$PCAPS/http.pcap" --host fd00:99:1::80
check "http IPv6 5-tuple" "$TMP/http" "$PCAPS/http.pcap" --tuple tcp fd00:99:1::10 48192 fd00:99:1::80 80
both "mixed_vlan tagged" "$TMP/mixed_vlan" "$PCAPS/mixed_vlan.pcap" "$PCAPS/mixed_vlan.pcap" 1
fs gen -w "$TMP/g1.pcap" --packets 30000 --flows 200 --vlan 30 --seed 1 2>/dev/null || fail "gen g1"
fs gen -w "$TMP/g2.pcap" --packets 30000 --flows 200 --vlan 30 --seed 2 2>/dev/null || fail "gen g2"

# ---- many small segments (1M), two dumpers: a chunk's frames across segments ---------------
fs gen -w "$TMP/big.pcap" --packets 60000 --flows 300 --payload random --seed 3 2>/dev/null || fail "gen big"
rec --read "$TMP/big.pcap" --archive "$TMP/small" --segment-size 1M --dumpers 2
n=$(fs info --archive "$TMP/small" 2>/dev/null | awk '/^segments:/ {print $2}')
[ "${n:-0}" -ge 20 ] && pass || fail "small: $n segments, expected 20 or more"
both small "$TMP/small" "$TMP/big.pcap" "$TMP/big.pcap"

# ---- two recordings into one archive: merged by timestamp, ties to the earlier ------------
rec --read "$TMP/g1.pcap" --archive "$TMP/two"
rec --read "$TMP/g2.pcap" --archive "$TMP/two" --dumpers 1
both two "$TMP/two" - "$TMP/g1.pcap"
both "two tagged" "$TMP/two" - "$TMP/g2.pcap" 1
rec --read "$PCAPS/http.pcap" --archive "$TMP/twice"
rec --read "$PCAPS/http.pcap" --archive "$TMP/twice"
both twice "$TMP/twice" - "$PCAPS/http.pcap"
# packets 0-2 ns apart: many times shared by the two recordings, with different packets
fs gen -w "$TMP/t1.pcap" --packets 5000 --flows 50 --rate 1000000000 --seed 5 2>/dev/null || fail "gen t1"
fs gen -w "$TMP/t2.pcap" --packets 5000 --flows 50 --rate 1000000000 --seed 6 2>/dev/null || fail "gen t2"
rec --read "$TMP/t1.pcap" --archive "$TMP/ties"
rec --read "$TMP/t2.pcap" --archive "$TMP/ties"
both ties "$TMP/ties" - "$TMP/t1.pcap"
check "ties server" "$TMP/ties" - --host 10.2.0.1

# ---- --snaplen 50 ---------------------------------------------------------------------------
fs gen -w "$TMP/g50.pcap" --packets 30000 --flows 200 --vlan 30 --seed 4 --snaplen 50 2>/dev/null ||
    fail "gen snaplen 50"
rec --read "$TMP/g50.pcap" --archive "$TMP/snap"
both snap50 "$TMP/snap" "$TMP/g50.pcap" "$TMP/g50.pcap"
both "snap50 tagged" "$TMP/snap" "$TMP/g50.pcap" "$TMP/g50.pcap" 1
# an IPv6 server of gen's (the same in every seed): its address as destination is cut off
check "snap50 IPv6 host" "$TMP/snap" "$TMP/g50.pcap" --host "$(timeout 60 tcpdump -nn -r "$TMP/g1.pcap" -c 1 ip6 2>/dev/null |
    sed -nE 's/.* > ([0-9a-f:]+)\.[0-9]+: .*/\1/p')"

# ---- triggered capture ---------------------------------------------------------------------
rec --read "$PCAPS/tcp_anomalies.pcap" --archive "$TMP/trig" --capture triggered \
    --trigger 'tcp[tcpflags] & tcp-rst != 0'
both triggered "$TMP/trig" - "$PCAPS/tcp_anomalies.pcap" 0 'tcp[tcpflags] & tcp-rst != 0'

# ---- left by a crash: kill -9 mid-recording; read before and after recovery ----------------
"$FLOWSCOPE" record --read "$TMP/big.pcap" --archive "$TMP/crash" --dumpers 2 --segment-size 4M \
    --qq-size 16M --replay-speed 1 --stats-interval 0 2>/dev/null &
pid=$!
for ((i = 0; i < 600; i++)); do # until 20000 packets are indexed (60 s at most)
    n=$(stored "$TMP/crash")
    [ -n "$n" ] && [ "$n" -ge 20000 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -9 $pid 2>/dev/null && pass || fail "crash: the recorder ended before it was killed"
{ wait $pid; } 2>/dev/null
fs info --archive "$TMP/crash" 2>/dev/null | grep -q "open)" && pass ||
    fail "crash: no open segment left: $(fs info --archive "$TMP/crash" 2>&1 | grep segments)"
both crash "$TMP/crash" - "$TMP/big.pcap"
fs gen -w "$TMP/empty.pcap" --packets 0 2>/dev/null || fail "gen empty"
rec --read "$TMP/empty.pcap" --archive "$TMP/crash"
both "crash recovered" "$TMP/crash" - "$TMP/big.pcap"

finish
