#!/bin/bash
# e2e_api_load: the API's clients are isolated from each other and from the recorder
# (docs/api.md "Isolation").
#   - a query refused before it starts (an invalid filter) closes each of its descriptors
#     once: every close() the server makes succeeds (strace -Z); a second close of a number
#     another thread has reused in between cuts that thread's socket, pipe or segment file;
#   - root, on a veth pair whose peer lives in a network namespace the test creates:
#     `record --afpacket --listen 127.0.0.1:0` (plain HTTP on loopback) while tcpreplay sends
#     a known capture (the shared captures one after another, a fixed --pps) into the peer.
#     Rounds of 32 concurrent queries (curl, each its own filter, from 4 loopback addresses:
#     the default --per-ip-connections is 16) during the replay: every answer is a 200 and a
#     valid pcap, and a prefix, packet for packet, of tcpdump's answer for its filter on the
#     final archive (a query sees what was committed); a round after the replay equals
#     tcpdump on the sent capture; the drop counters of the recorder's final report equal
#     those of the same replay without queries (run first): the API's threads run at nice 19
#     (an earlier version, at nice 0, lost 50 packets in the kernel's ring here, 0 without
#     queries: 32 queries took the two cores from the capture thread for > 128 ms);
#   - clients that stop reading (a socket that reads nothing, curl --limit-rate 1) and ones
#     that disconnect mid-stream (three of each), while the recorder records: a replay sent
#     meanwhile is archived whole, another client is answered, the stalled queries' threads
#     run at nice 19, and once they are gone the recorder's open descriptors (/proc/PID/fd)
#     return to their count and its RssAnon to within RSS_SLACK_KIB of its level before them
#     (taken after a first round of the same clients; not compared under a sanitizer).
# Every wait is bounded; no timing is a pass condition.
. "$(dirname "$0")/lib.sh"
load_full_filters
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -z "${A:-}" ] || ip link del "$A" 2>/dev/null
    [ -z "${NS:-}" ] || ip netns del "$NS" 2>/dev/null
}
at_exit cleanup
PPS=3000
# Per stalled or cut-off query the server holds at least a 256 KiB stdio buffer and
# libmicrohttpd's 256 KiB response buffer, besides zstd's state, the frames being read and
# two threads' stacks: the nine clients below (three of each kind) would leave more than
# 4.5 MiB each round if their queries leaked.  glibc keeps some freed memory (thread stacks
# it caches, the recorder's malloc settings below make the rest deterministic: not a leak,
# bounded by what ran at once), so the level is taken after a first round of the same
# clients; three more rounds follow (+0.5 MiB here), and 4 MiB is their slack: a leak would
# have left 13.5 MiB or more.
RSS_SLACK_KIB=4096

# ---- a query refused before it starts closes its descriptors once --------------------------

closes_once() {
    local arch="$TMP/small" out="$TMP/st.out" i url
    fs record --read "$PCAPS/dns_icmp.pcap" --archive "$arch" --qq-size 16M --stats-interval 0 \
        2>/dev/null || { fail "record --read failed"; return; }
    "${TRACED[@]}" -f -qq -Z -e trace=close -o "$TMP/strace.log" "$FLOWSCOPE" serve --archive "$arch" \
        --listen 127.0.0.1:0 >"$out" 2>"$TMP/st.err" &
    local spid=$!
    PIDS+=("$spid")
    wait_for "$out" '^flowscope serve: listening on http://127.0.0.1:[0-9]+$' "$spid" 100 ||
        { fail "serve under strace did not start: $(cat "$TMP/st.err")"; return; }
    url=$(sed -n 's/^flowscope serve: listening on //p' "$out")
    for i in 1 2 3; do
        timeout 60 curl -sS -G "$url/api/v1/query" --data-urlencode "filter=tcp and" \
            -w '%{http_code}' -o /dev/null >"$TMP/st.code" 2>&1
        [ "$(cat "$TMP/st.code")" = 400 ] && pass || fail "an invalid filter: $(cat "$TMP/st.code")"
    done
    timeout 60 curl -sS "$url/api/v1/query" -o "$TMP/st.pcap"
    oracle "$PCAPS/dns_icmp.pcap" "$TMP/st.exp"
    cmp -s "$TMP/st.pcap" "$TMP/st.exp" && pass ||
        fail "serve under strace: the answer differs from tcpdump's"
    kill -TERM "$(cat "/proc/$spid/task/$spid/children")" # serve, strace's child: strace ends with it
    wait "$spid"
    # strace -Z writes only the calls that failed
    if grep -q 'close(' "$TMP/strace.log"; then
        fail "the server closed a descriptor it did not hold: $(grep 'close(' "$TMP/strace.log" | head -3 | tr '\n' ';')"
    else pass; fi
}

closes_once
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
veth_pair api || { fail "cannot create the veth pair"; finish; }

# ---- the recorder and the replay ---------------------------------------------------------------

SENT_PCAP="$TMP/sent.pcap" # what tcpreplay sends: the shared captures, one after another
mergecap -a -F pcap -w "$SENT_PCAP" "$PCAPS"/{http,dns_icmp,mixed_vlan}.pcap ||
    { fail "mergecap"; finish; }
NSENT=$(npackets "$SENT_PCAP")

# recorder NAME: record --afpacket $A --listen into $TMP/NAME; RPID, URL (once the source is open)
recorder() {
    local err=$TMP/$1.err
    # glibc's malloc made deterministic enough to compare memory levels (the stall part):
    # one arena (else each new thread may get its own and keep freed memory in it), and a
    # fixed mmap threshold (else it rises to the largest block freed, and later large blocks,
    # a query's buffers, stay in the heap when freed), the heap trimmed at the same size
    MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 \
        "$FLOWSCOPE" record --afpacket "$A" --archive "$TMP/$1" --qq-size 32M --dumpers 1 \
        --stats-interval 100ms --listen 127.0.0.1:0 --max-queries 40 >"$TMP/$1.out" 2>"$err" &
    RPID=$!
    PIDS+=("$RPID")
    wait_for "$err" "^flowscope record: QQ" "$RPID" || { fail "$1: did not start: $(cat "$err")"; return 1; }
    URL=$(sed -n 's/^flowscope record: API listening on //p' "$err")
    [ -n "$URL" ] || { fail "$1: no API line: $(cat "$err")"; return 1; }
}

# replay_start NAME: tcpreplay sends the capture at $PPS in the background (RPLAY its pid)
replay_start() {
    ip netns exec "$NS" timeout 300 tcpreplay -i "$B" --pps="$PPS" --timer=nano "$SENT_PCAP" \
        >"$TMP/$1.replay" 2>&1 &
    RPLAY=$!
}
# replay_end NAME: waits for it; SENT = what it sent (a failure when not all)
replay_end() {
    wait "$RPLAY"
    SENT=$(sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p' "$TMP/$1.replay")
    [ "${SENT:-0}" = "$NSENT" ] && pass || fail "$1: tcpreplay sent ${SENT:-none} of $NSENT: $(tail -3 "$TMP/$1.replay")"
}

# archived_via_api N: until /api/v1/info says N packets are committed (~60 s at most)
archived_via_api() {
    local i n=0
    for ((i = 0; i < 600; i++)); do
        n=$(timeout 10 curl -sS "$URL/api/v1/info" 2>/dev/null | jq -r .packets 2>/dev/null)
        [ "${n:-0}" -ge "$1" ] 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$n"
    return 1
}

# drops ERRFILE: every drop counter of the final report (name=value, sorted)
drops() {
    sed -n 's/^flowscope record: //p' "$1" | tr ' ' '\n' |
        grep -E '^[a-z0-9_.]*(drop|overwritten|unstored)[a-z0-9_.]*=[0-9]+$' | sort
}

# finish_recording NAME: SIGINT once $SENT packets are counted; the archive holds them all
finish_recording() {
    stop_when_counted "$1" "$TMP/$1.err" "$RPID"
    local got
    got=$(npackets <(fs query --archive "$TMP/$1" -w - 2>/dev/null))
    [ "$got" = "$SENT" ] && pass || fail "$1: the archive holds $got packets, $SENT were sent"
}

# ---- 32 concurrent queries ----------------------------------------------------------------------

# the first 32 filters of the e2e suite that tcpdump takes
FILTERS=()
for f in "${FULL_FILTERS[@]}"; do
    [ ${#FILTERS[@]} -lt 32 ] || break
    tcpdump -r "$SENT_PCAP" -c 1 -w /dev/null ${f:+"$f"} 2>/dev/null && FILTERS+=("$f")
done
[ ${#FILTERS[@]} = 32 ] && pass || fail "only ${#FILTERS[@]} filters"

# round DIR: the 32 queries at once, answers DIR/N.pcap, statuses DIR/N.code; the clients run
# at nice 19, as the server's threads do (on an appliance they run on other machines)
round() {
    local i pids=()
    mkdir -p "$1"
    for i in "${!FILTERS[@]}"; do
        nice -n 19 timeout 200 curl -sS --max-time 180 --interface "127.0.0.$((1 + i % 4))" -G \
            "$URL/api/v1/query" --data-urlencode "filter=${FILTERS[$i]}" -o "$1/$i.pcap" \
            -w '%{http_code}' >"$1/$i.code" 2>"$1/$i.err" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
}

# valid_pcap FILE: tcpdump reads it whole (no truncated record)
valid_pcap() {
    tcpdump -r "$1" -w /dev/null 2>"$TMP/valid.err" && ! grep -qi 'truncat' "$TMP/valid.err"
}

# mid_ok DIR: every answer of DIR is a 200, a valid pcap, and a prefix of tcpdump's answer for
# its filter on the final archive ($TMP/loaded.all.pcap); the packets it held (a sum) in MIDN
mid_ok() {
    local i f bad=0
    MIDN=0
    for i in "${!FILTERS[@]}"; do
        f=${FILTERS[$i]}
        [ -f "$TMP/final.$i.pcap" ] || oracle "$TMP/loaded.all.pcap" "$TMP/final.$i.pcap" ${f:+"$f"}
        if [ "$(cat "$1/$i.code")" != 200 ] || ! valid_pcap "$1/$i.pcap"; then
            fail "$1: '$f': status $(cat "$1/$i.code"), $(cat "$1/$i.err" "$TMP/valid.err" | head -c 200)"
            bad=1
        elif ! cmp -s -n "$(stat -c %s "$1/$i.pcap")" "$1/$i.pcap" "$TMP/final.$i.pcap"; then
            fail "$1: '$f': the answer ($(npackets "$1/$i.pcap") packets) is not a prefix of tcpdump's on the final archive ($(npackets "$TMP/final.$i.pcap"))"
            bad=1
        else MIDN=$((MIDN + $(npackets "$1/$i.pcap"))); fi
    done
    [ $bad = 1 ] || pass
}

# text FILE [FILTER]: tcpdump's packets without times (the archive's are the kernel's)
text() {
    local f=$1
    shift
    tcpdump -r "$f" -nn -t -xx "$@" 2>/dev/null
}

# sent_ok DIR: every answer of DIR is tcpdump's answer on the sent capture (bytes, lengths)
sent_ok() {
    local i f bad=0
    for i in "${!FILTERS[@]}"; do
        f=${FILTERS[$i]}
        if [ "$(cat "$1/$i.code")" != 200 ] || ! valid_pcap "$1/$i.pcap" ||
            ! cmp -s <(text "$SENT_PCAP" ${f:+"$f"}) <(text "$1/$i.pcap"); then
            fail "$1: '$f': status $(cat "$1/$i.code"), $(npackets "$1/$i.pcap") packets, tcpdump on the sent capture $(text "$SENT_PCAP" ${f:+"$f"} | grep -c '^[^ 	]')"
            bad=1
        fi
    done
    [ $bad = 1 ] || pass
}

# the same replay without queries: its drop counters are the reference
recorder baseline || finish
replay_start baseline
replay_end baseline
finish_recording baseline
drops "$TMP/baseline.err" >"$TMP/baseline.drops"

# with queries: rounds of 32 while the replay runs (the first once something is committed)
recorder loaded || finish
replay_start loaded
archived_via_api 1 >/dev/null || fail "loaded: nothing committed while tcpreplay runs"
rounds=0
during=0
while kill -0 "$RPLAY" 2>/dev/null && [ $rounds -lt 20 ]; do
    during=$((during + 1))
    rounds=$((rounds + 1))
    round "$TMP/mid.$rounds"
done
[ $during -ge 1 ] && pass || fail "loaded: no round of queries started while tcpreplay ran"
replay_end loaded
archived_via_api "$SENT" >/dev/null || fail "loaded: the API never saw the $SENT packets sent committed"
round "$TMP/after"
sent_ok "$TMP/after"
finish_recording loaded
drops "$TMP/loaded.err" >"$TMP/loaded.drops"
fs query --archive "$TMP/loaded" -w "$TMP/loaded.all.pcap" 2>/dev/null || fail "loaded: query"
for ((r = 1; r <= rounds; r++)); do
    mid_ok "$TMP/mid.$r"
    note "round $r during the replay: the 32 answers held $MIDN packets"
done
if [ -s "$TMP/baseline.drops" ] && cmp -s "$TMP/baseline.drops" "$TMP/loaded.drops"; then pass; else
    fail "drop counters with queries differ from without: $(diff "$TMP/baseline.drops" "$TMP/loaded.drops" | grep '^[<>]' | tr '\n' ' ')"
fi
note "drops, without and with queries: $(grep -v '=0$' "$TMP/loaded.drops" | tr '\n' ' ' || true)(the others 0)"

# ---- clients that stall or go away while the recorder records ------------------------------------

nfds() { ls "/proc/$RPID/fd" | wc -l; }
# the recorder's anonymous memory (RssAnon): its heap and the ring, not the pages of the index
# and segment files it maps or reads, which grow with what it records meanwhile
rss_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$RPID/status"; }

# staller OUT: a client that sends a query, reads its status line, then reads nothing
staller() {
    timeout 300 python3 - "${URL#http://}" "$1" <<'EOF' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /api/v1/query HTTP/1.1\r\nHost: x\r\n\r\n")
line = s.recv(64).split(b"\r\n")[0]
open(sys.argv[2], "w").write(line.decode() + "\n")
time.sleep(300)
EOF
    STALL=$!
    PIDS+=("$STALL")
}

# stall_clients: three clients that stop reading (STALLERS), three curl --limit-rate 1, three
# that disconnect mid-stream; their buffers, had they leaked, would exceed the slack
stall_clients() {
    local k
    STALLERS=()
    for k in 1 2 3; do
        staller "$TMP/stall.$k.line"
        STALLERS+=("$STALL")
        wait_for "$TMP/stall.$k.line" '^HTTP/1.1 200' "$STALL" 100 && pass ||
            fail "a stalling client got no 200: $(cat "$TMP/stall.$k.line" 2>/dev/null)"
        rm -f "$TMP/stall.$k.line"
        timeout 300 curl -sS --limit-rate 1 "$URL/api/v1/query" -o /dev/null 2>/dev/null &
        STALLERS+=($!)
        PIDS+=($!)
        timeout 120 curl -sS "$URL/api/v1/query" 2>/dev/null | head -c 100000 >/dev/null
    done
}
# fds_back BASE: until the recorder holds at most BASE descriptors (~10 s)
fds_back() {
    local i
    for ((i = 0; i < 100; i++)); do [ "$(nfds)" -le "$1" ] && return 0; sleep 0.1; done
    return 1
}

recorder stall || finish
replay_start stall-warm # the ring's pages, the index: in use before the level is taken
replay_end stall-warm
total=$SENT
archived_via_api "$total" >/dev/null || fail "stall: the first replay was not committed"
timeout 120 curl -sS "$URL/api/v1/query" -o "$TMP/warm.pcap" # a whole answer
# the same clients once before the level is taken: the memory glibc keeps after them (its
# arenas, not a leak) is then part of the level, and a second round must not add to it
warm_fds=$(nfds)
stall_clients
kill "${STALLERS[@]}"
wait "${STALLERS[@]}" 2>/dev/null
fds_back "$warm_fds" || fail "the warm-up clients' descriptors stay: $(nfds), $warm_fds before"
base_fds=$(nfds)
base_rss=$(rss_kib)
stall_clients
# meanwhile the recorder records a second replay, whole, and another client is answered
replay_start stall
replay_end stall
total=$((total + SENT))
n=$(archived_via_api "$total") && pass ||
    fail "stall: with clients stalled the API sees $n packets committed of $total sent"
timeout 120 curl -sS -G "$URL/api/v1/query" --data-urlencode "filter=udp port 53" -o "$TMP/other.pcap"
cmp -s <(text "$SENT_PCAP" "udp port 53"; text "$SENT_PCAP" "udp port 53") <(text "$TMP/other.pcap") &&
    pass || fail "stall: another client's answer differs from tcpdump's"
alive=0
for p in "${STALLERS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
[ $alive = 6 ] && pass || fail "$((6 - alive)) stalled clients ended early (the idle timeout is 30 s)"
held_fds=$(nfds)
# each stalled query: its connection's thread and its query's thread, both at nice 19
niced=$(for t in /proc/"$RPID"/task/*/stat; do sed 's/.*) //' "$t" | cut -d' ' -f17; done | grep -cx 19)
[ "$niced" -ge 12 ] && pass || fail "$niced of the recorder's threads run at nice 19, 6 stalled queries need 12"
kill "${STALLERS[@]}"
wait "${STALLERS[@]}" 2>/dev/null
fds_back "$base_fds"
n=$(nfds)
[ "$n" -le "$base_fds" ] && pass ||
    fail "the recorder holds $n descriptors after the clients went away, $base_fds before ($held_fds with them)"
for round in 3 4; do # two more rounds of the same clients, the recorder idle
    stall_clients
    kill "${STALLERS[@]}"
    wait "${STALLERS[@]}" 2>/dev/null
    fds_back "$base_fds" || fail "round $round: the clients' descriptors stay: $(nfds), $base_fds before"
done
rss=$(rss_kib)
if [ -n "${SANITIZE:-}" ]; then # its allocator quarantines what is freed; LeakSanitizer checks
    note "a $SANITIZE build: RssAnon not compared (the sanitizer's allocator keeps freed memory)"
elif [ "$rss" -le $((base_rss + RSS_SLACK_KIB)) ]; then pass; else
    fail "the recorder's RssAnon is $rss KiB after three rounds of clients, $base_rss KiB before"
fi
note "stall: $niced threads at nice 19; descriptors $base_fds before, $held_fds with the clients, $n after; RssAnon $base_rss KiB before, $rss KiB after three rounds"
SENT=$total
finish_recording stall
finish
