# e2e_web: the web view (docs/web.md) in a real browser: Debian's chromium, headless, driven by
# puppeteer-core (tests/e2e/web/: package.json and package-lock.json; `npm ci` into the build
# directory once, offline afterwards; no browser is downloaded).
#   - an archive of the four captures of ../shared/pcaps (merged), served by flowscope serve on
#     127.0.0.1 (a port it picks); every view loads with no console error and no failed request;
#   - the timeline's total is info's packet count; dragging over it puts the range in the URL;
#   - the flows table, every page, for three filters and the triggered flows equals
#     `flowscope flows --json`'s lines (a trigger on resets fills the trigger column); the
#     timeline marks each triggered flow; the summary's totals and top lists add up;
#   - a flow opened from the table by the keyboard: its Download pcap is, byte for byte,
#     `tcpdump -r CAPTURE --time-stamp-precision=nano -w - 'its 5-tuple'`;
#   - an invalid filter shows libpcap's message (tcpdump's, for the same filter), inline;
#   - the live view of `record --listen` shows the recorder's rates, QQ fill and drops;
#   - on 1M generated packets the timeline and flows views load, and the table pages;
#   - a flow's Trigger button, on recorders fed through FIFOs (--capture triggered): the
#     answer shown is the API's, the API's is tcpdump's, the archive is exactly the triggered
#     flows (tcpdump -r with each one's filter), a ring too small says "first packet lost";
#     serve shows no trigger button.
# Screenshots of each view: WEB_SHOTS (build/web-screenshots/).
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
: "${WEB_BUILD:?WEB_BUILD must name the build directory}"
SHOTS="$WEB_BUILD/web-screenshots"
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done'

command -v chromium >/dev/null || { fail "no chromium (Debian package chromium: make deps)"; finish; }
command -v npm >/dev/null || { fail "no npm"; finish; }

# puppeteer-core, exactly as the lockfile says, into the build directory (again only when the
# lockfile changed); PUPPETEER_SKIP_DOWNLOAD: the browser is Debian's
NODE_DIR="$WEB_BUILD/web-node"
# Node.js trusts its own CA bundle only: add the machine's (where a TLS proxy's CA is installed)
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] || [ ! -r /etc/ssl/certs/ca-certificates.crt ] ||
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
if ! cmp -s "$HERE/web/package-lock.json" "$NODE_DIR/package-lock.json" ||
    [ ! -d "$NODE_DIR/node_modules/puppeteer-core" ]; then
    rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR" &&
        cp "$HERE/web/package.json" "$HERE/web/package-lock.json" "$NODE_DIR/" &&
        (cd "$NODE_DIR" && PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund \
            --ignore-scripts >"$TMP/npm.log" 2>&1) ||
        { fail "npm ci: $(tail -5 "$TMP/npm.log")"; rm -rf "$NODE_DIR"; finish; }
fi
cp "$HERE/web/web.mjs" "$NODE_DIR/web.mjs" # beside its node_modules
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png

# ---- an archive of ../shared/pcaps, served ----------------------------------------------------

CAP="$TMP/all.pcap"
mergecap -F pcap -w "$CAP" "$PCAPS"/http.pcap "$PCAPS"/dns_icmp.pcap "$PCAPS"/mixed_vlan.pcap \
    "$PCAPS"/tcp_anomalies.pcap 2>"$TMP/merge.err" || { fail "mergecap: $(cat "$TMP/merge.err")"; finish; }
ARCH="$TMP/arch"
# a trigger on TCP resets: some flows carry a trigger reason (a column, and the timeline's marks)
fs record --read "$CAP" --archive "$ARCH" --qq-size 16M --stats-interval 0 \
    --trigger 'tcp[tcpflags] & tcp-rst != 0' 2>"$TMP/rec.err" ||
    { fail "record: $(cat "$TMP/rec.err")"; finish; }

"$FLOWSCOPE" serve --archive "$ARCH" --listen 127.0.0.1:0 >"$TMP/serve.out" 2>"$TMP/serve.err" &
SPID=$!
PIDS+=("$SPID")
wait_for "$TMP/serve.out" '^flowscope serve: listening on http://127.0.0.1:[0-9]+$' "$SPID" 100 ||
    { fail "serve did not start: $(cat "$TMP/serve.err")"; finish; }
URL=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/serve.out")

# the files: types, the security headers, the ETag's 304, a 404 for what is not there
hdr() { curl -s -o /dev/null -D - "$@" | tr -d '\r'; }
for f in /:text/html /app.js:text/javascript /app.css:text/css /favicon.svg:image/svg+xml; do
    h=$(hdr "$URL${f%%:*}")
    grep -q "^Content-Type: ${f#*:}" <<<"$h" && grep -q "^Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self';" <<<"$h" &&
        grep -q '^X-Content-Type-Options: nosniff' <<<"$h" && grep -q '^Cache-Control: no-cache' <<<"$h" &&
        pass || fail "${f%%:*}: headers: $h"
    etag=$(sed -n 's/^ETag: //p' <<<"$h")
    [ "$(hdr -H "If-None-Match: $etag" "$URL${f%%:*}" | head -1)" = "HTTP/1.1 304 Not Modified" ] && pass ||
        fail "${f%%:*}: If-None-Match $etag is not a 304"
done
[ "$(hdr "$URL/app.jss" | head -1)" = "HTTP/1.1 404 Not Found" ] && pass || fail "/app.jss is not a 404"
for f in index.html app.js app.css favicon.svg; do # embedded byte for byte
    curl -s "$URL/$f" -o "$TMP/got.$f"
    cmp -s "$TMP/got.$f" "$HERE/../../query/web/$f" && pass || fail "/$f differs from query/web/$f"
done
grep -q 'script-src' "$HERE/../../query/web/index.html" && fail "index.html holds a CSP of its own" || pass
grep -qiE '<script>|<style|style="| on[a-z]+="' "$HERE/../../query/web/index.html" &&
    fail "index.html has inline script or style (the CSP forbids it)" || pass

# the timeline: the whole archive's totals are info's, and any split of a range adds up (a
# frame across the split is shared out, never counted twice or lost)
# (the ns times by sed: jq reads numbers as doubles)
curl -s "$URL/api/v1/timeline?buckets=7" >"$TMP/tl.json"
read -r P0 B0 <<<"$(jq -r '"\(.packets) \(.wire_bytes)"' "$TMP/tl.json")"
F0=$(sed -n 's/.*"from_ns": \([0-9]*\).*/\1/p' "$TMP/tl.json")
T0=$(sed -n 's/.*"to_ns": \([0-9]*\).*/\1/p' "$TMP/tl.json")
IP=$(curl -s "$URL/api/v1/info" | jq -r '"\(.packets) \(.wire_bytes)"')
[ "$P0 $B0" = "$IP" ] && pass || fail "timeline totals $P0 $B0, info's $IP"
for k in 1 3 5 7 11 13 17 19 23 29; do
    mid=$((F0 + (T0 - F0) / 31 * k + 12345))
    sec() { printf '%d.%09d' $(($1 / 1000000000)) $(($1 % 1000000000)); }
    a=$(curl -s "$URL/api/v1/timeline?from=$(sec "$F0")&to=$(sec "$mid")&buckets=13" | jq -r '"\(.packets) \(.wire_bytes)"')
    b=$(curl -s "$URL/api/v1/timeline?from=$(sec "$mid")&to=$(sec "$T0")&buckets=3" | jq -r '"\(.packets) \(.wire_bytes)"')
    [ "$((${a% *} + ${b% *})) $((${a#* } + ${b#* }))" = "$P0 $B0" ] && pass ||
        fail "timeline split at $mid: $a + $b != $P0 $B0"
done
curl -s "$URL/api/v1/timeline?buckets=4001" | grep -q '"error": "buckets 4001: at most 4000"' && pass ||
    fail "buckets=4001 is not refused"

# what the page must show, from the command line
EXP="$TMP/expect"
mkdir -p "$EXP"
i=0
NTRIG=$(fs flows --archive "$ARCH" --json --triggered | wc -l)
[ "$NTRIG" -gt 0 ] && pass || fail "the trigger archived no flow"
for f in '' 'tcp port 80' 'udp or icmp or vlan'; do
    printf '%s\n' "$f" >"$EXP/flows.$i.filter"
    fs flows --archive "$ARCH" --json ${f:+"$f"} >"$EXP/flows.$i.ndjson" 2>"$TMP/flows.err" ||
        fail "flows --json '$f': $(cat "$TMP/flows.err")"
    i=$((i + 1))
done
printf '\n' >"$EXP/flows.3.filter" # the triggered flows (the checkbox's URL)
printf '&triggered=true\n' >"$EXP/flows.3.extra"
fs flows --archive "$ARCH" --json --triggered >"$EXP/flows.3.ndjson"
BAD='tcp port 99999'
printf '%s\n' "$BAD" >"$EXP/bad.filter"
LIBPCAP=$(tcpdump -r "$CAP" -w /dev/null "$BAD" 2>&1 | sed -n 's/^tcpdump: //p' | tail -1)
[ -n "$LIBPCAP" ] && pass || fail "tcpdump accepted '$BAD'"

# the flows' summary (the table's header, top talkers and ports) against flows --json, summed
# by jq: count, packets, bytes; every talker and port (top=100: all of them here)
for i in 0 1 2; do
    f=$(cat "$EXP/flows.$i.filter")
    curl -s -G "$URL/api/v1/flows/summary" --data-urlencode "filter=$f" -d top=100 >"$TMP/sum.json"
    want=$(jq -s -c '
        def host: sub(":[0-9]+$"; "") | ltrimstr("[") | rtrimstr("]");
        def port: capture(":(?<p>[0-9]+)$").p | tonumber;
        def tally(k): group_by(k) | map({k: (.[0] | k), bytes: (map(.by) | add),
            packets: (map(.pk) | add), flows: length}) | sort_by(.k);
        map(. + {by: (.bytes_ab + .bytes_ba), pk: (.packets_ab + .packets_ba)}) as $f
        | {flows: ($f | length), packets: ($f | map(.pk) | add // 0), bytes: ($f | map(.by) | add // 0),
           talkers: ([$f[] | {h: (.a | host), by, pk}, {h: (.b | host), by, pk}] | tally(.h)),
           ports: ([$f[] | select((.a | port) + (.b | port) > 0)
                    | {k: "\(.proto)/\([(.a | port), (.b | port)] | min)", by, pk}] | tally(.k))}' \
        "$EXP/flows.$i.ndjson")
    got=$(jq -c '{flows, packets, bytes,
        talkers: (.top_talkers | map({k: .addr, bytes, packets, flows}) | sort_by(.k)),
        ports: (.top_ports | map({k: "\(.proto)/\(.port)", bytes, packets, flows}) | sort_by(.k))}' "$TMP/sum.json")
    [ "$got" = "$want" ] && pass || fail "flows/summary '$f': $got, flows --json says $want"
done

# ---- the browser ------------------------------------------------------------------------------

(cd "$NODE_DIR" && timeout 300 node web.mjs archive "$URL" "$SHOTS" "$EXP" "$TMP/out.json") \
    >"$TMP/node.out" 2>&1
rc=$?
grep '^FAIL: ' "$TMP/node.out" | while read -r l; do echo "$l" >&2; done
FAILS=$((FAILS + $(grep -c '^FAIL: ' "$TMP/node.out")))
n=$(sed -n 's/^web.mjs: \([0-9]*\) checks passed.*/\1/p' "$TMP/node.out")
CHECKS=$((CHECKS + ${n:-0}))
[ "$rc" -eq 0 ] || [ "$(grep -c '^FAIL: ' "$TMP/node.out")" -gt 0 ] ||
    fail "web.mjs exited $rc: $(tail -5 "$TMP/node.out")"
[ -s "$TMP/out.json" ] || { fail "web.mjs wrote no results: $(tail -5 "$TMP/node.out")"; finish; }
O="$TMP/out.json"

# the timeline's total is info's
INFO=$(fs info --archive "$ARCH" | sed -n 's/^packets: *//p')
[ "$(jq -r .timeline_packets "$O")" = "$INFO" ] && pass ||
    fail "timeline total $(jq -r .timeline_packets "$O") != info's $INFO packets"
[ "$(jq -r .marks "$O")" = "$NTRIG" ] && pass ||
    fail "the timeline marks $(jq -r .marks "$O") triggers, flows --triggered lists $NTRIG"
z=$(jq -r .zoomed_packets "$O")
[ "$z" -gt 0 ] && [ "$z" -lt "$INFO" ] && pass || fail "the zoomed timeline holds $z of $INFO packets"

# the invalid filter: libpcap's message, no stack trace
for v in flows query; do
    msg=$(jq -r ".bad_$v" "$O")
    case "$msg" in *"$LIBPCAP"*) pass ;; *) fail "$v view, '$BAD': '$msg' lacks libpcap's '$LIBPCAP'" ;; esac
    case "$msg" in *" at "*":"[0-9]*) fail "$v view shows a stack trace: $msg" ;; *) pass ;; esac
done

# the flow's Download pcap is tcpdump's for its 5-tuple (bytes, ns timestamps)
proto=$(jq -r .flow.proto "$O")
a=$(jq -r .flow.a "$O") b=$(jq -r .flow.b "$O")
ha=${a%:*} hb=${b%:*}
ha=${ha#[} hb=${hb#[}
tuple="$proto and host ${ha%]} and host ${hb%]} and port ${a##*:} and port ${b##*:}"
jq -r .pcap_b64 "$O" | base64 -d >"$TMP/download.pcap"
oracle "$CAP" "$TMP/tcpdump.pcap" "$tuple"
if cmp -s "$TMP/download.pcap" "$TMP/tcpdump.pcap"; then
    pass
else
    fail "the flow's Download pcap ($(stat -c %s "$TMP/download.pcap") bytes) differs from tcpdump -r for '$tuple' ($(stat -c %s "$TMP/tcpdump.pcap") bytes)"
fi
[ "$(npackets "$TMP/download.pcap")" = "$(jq -r .flow.packets "$O")" ] && pass ||
    fail "the download holds $(npackets "$TMP/download.pcap") packets, the flow $(jq -r .flow.packets "$O")"
case "$(jq -r .wireshark "$O")" in
"flowscope query --remote $URL --from "*" -w - '"*"' | wireshark -k -i -") pass ;;
*) fail "the Wireshark command line: $(jq -r .wireshark "$O")" ;;
esac
case "$(jq -r .explain "$O")" in [0-9]*" of "[0-9]*) pass ;; *) fail "explain: $(jq -r .explain "$O")" ;; esac
case "$(jq -r .live_kind "$O")" in *"not a recorder"*) pass ;; *) fail "live on serve: $(jq -r .live_kind "$O")" ;; esac
# stop PID NAME ERRFILE: SIGTERM, then it exits 0 (under ASan: no leak, no error) within 10 s
stop() {
    local i
    kill -TERM "$1"
    for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && { fail "$2 still runs 10 s after SIGTERM"; kill -KILL "$1"; }
    if wait "$1"; then pass; else fail "$2 did not exit 0 on SIGTERM: $(tail -5 "$3")"; fi
}
stop "$SPID" serve "$TMP/serve.err"

# ---- a million generated packets: the views load and page ------------------------------------

fs gen -w "$TMP/big.pcap" --packets 1000000 --flows 100000 --seed 18 2>/dev/null &&
    fs record --read "$TMP/big.pcap" --archive "$TMP/big" --qq-size 64M --stats-interval 0 \
        2>"$TMP/rec.err" || { fail "gen/record of 1M packets: $(cat "$TMP/rec.err")"; finish; }
rm -f "$TMP/big.pcap"
"$FLOWSCOPE" serve --archive "$TMP/big" --listen 127.0.0.1:0 >"$TMP/bserve.out" 2>"$TMP/bserve.err" &
BPID=$!
PIDS+=("$BPID")
wait_for "$TMP/bserve.out" '^flowscope serve: listening on http://127.0.0.1:[0-9]+$' "$BPID" 100 ||
    { fail "serve (1M) did not start: $(cat "$TMP/bserve.err")"; finish; }
BURL=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/bserve.out")
(cd "$NODE_DIR" && timeout 120 node web.mjs big "$BURL" "$SHOTS" "$TMP/big.json") >"$TMP/node3.out" 2>&1
grep '^FAIL: ' "$TMP/node3.out" >&2
FAILS=$((FAILS + $(grep -c '^FAIL: ' "$TMP/node3.out")))
if [ -s "$TMP/big.json" ]; then
    B="$TMP/big.json"
    nflows=$(fs flows --archive "$TMP/big" --json | wc -l)
    [ "$(jq -r .total "$B")" = "$nflows" ] && pass || fail "1M: the table's total $(jq -r .total "$B") != flows' $nflows"
    [ "$(jq -r .rows "$B")" = 100 ] && pass || fail "1M: the first page has $(jq -r .rows "$B") rows"
    case "$(jq -r .page_text "$B")" in "flows 101–200 of "*) pass ;; *) fail "1M page 2: $(jq -r .page_text "$B")" ;; esac
    note "1M packets, $nflows flows: timeline drawn in $(jq -r .timeline_ms "$B") ms, flows in $(jq -r .flows_ms "$B") ms, next page in $(jq -r .next_ms "$B") ms"
else
    fail "the large archive's views: $(tail -5 "$TMP/node3.out")"
fi
stop "$BPID" "serve (1M)" "$TMP/bserve.err"

# ---- live: record --listen ---------------------------------------------------------------------

"$FLOWSCOPE" record --read "$PCAPS/http.pcap" --replay-speed 0.5 --archive "$TMP/live" \
    --qq-size 16M --stats-interval 0 --listen 127.0.0.1:0 2>"$TMP/rl.err" &
RPID=$!
PIDS+=("$RPID")
if wait_for "$TMP/rl.err" '^flowscope record: API listening on http://127.0.0.1:[0-9]+$' "$RPID" 100; then
    RURL=$(sed -n 's/^flowscope record: API listening on //p' "$TMP/rl.err")
    (cd "$NODE_DIR" && timeout 120 node web.mjs live "$RURL" "$SHOTS" "$TMP/live.json") >"$TMP/node2.out" 2>&1
    grep '^FAIL: ' "$TMP/node2.out" >&2
    FAILS=$((FAILS + $(grep -c '^FAIL: ' "$TMP/node2.out")))
    if [ -s "$TMP/live.json" ]; then
        case "$(jq -r .live_kind "$TMP/live.json")" in Recording*) pass ;; *) fail "live: $(cat "$TMP/live.json")" ;; esac
        case "$(jq -r .live_fill "$TMP/live.json")" in [0-9]*" %") pass ;; *) fail "live QQ fill: $(cat "$TMP/live.json")" ;; esac
        [ "$(jq -r .live_drops "$TMP/live.json")" -ge 1 ] && pass || fail "live: no drops table rows"
        [ "$(jq -r .live_bars "$TMP/live.json")" -ge 1 ] && pass || fail "live: no packet rate on the chart"
    else
        fail "the live view: $(tail -5 "$TMP/node2.out")"
    fi
    kill "$RPID" 2>/dev/null
    wait "$RPID" 2>/dev/null
else
    fail "record --listen did not start: $(cat "$TMP/rl.err")"
fi

# ---- a trigger from the flow view: record --listen --capture triggered ---------------------------
# Two recorders read from FIFOs this script holds open (fd 7, 8: read-write, so nothing blocks;
# closing one is its recorder's end of file): they run, their rings holding what they read,
# until the test is done.  One (a 64 MiB ring: it holds it all) reads CAP (the four
# captures); three of its flows are opened in the browser by the link the flows view makes
# for each (from flows --json of ARCH: the same packets, recorded whole): F1 (http.pcap, 2822
# packets from its start; IPv4), FV (TCP over IPv6 on VLAN 100), FI (ICMP: no ports), and
# triggered there: F1 by a click on the button, the others from the keyboard.  The answer
# shown is the API's (web.mjs); the API's is tcpdump's: one flow, its packets, its first
# packet's time, its span; after the end the archive is those three flows and nothing else,
# each byte for byte what tcpdump -r CAP selects for it (time travel: from its first packet).
# The other recorder (a 2 MiB ring) reads http.pcap: F1's first packets left its ring long
# ago, and its answer shows "first packet lost: ring window was N s".

# fifo_recorder NAME FD QQSIZE CAPTURE: record --read FIFO --capture triggered --listen, fed
# CAPTURE through FD (left open); TPID and TURL set (TURL "" when it did not start)
fifo_recorder() {
    mkfifo "$TMP/$1.fifo"
    "$FLOWSCOPE" record --read "$TMP/$1.fifo" --archive "$TMP/$1" --capture triggered --qq-size "$3" \
        --status-interval 0 --listen 127.0.0.1:0 2>"$TMP/$1.err" 7>&- 8>&- &
    TPID=$!
    PIDS+=("$TPID")
    eval "exec $2<>\"\$TMP/\$1.fifo\""
    timeout 60 cat "$4" >&"$2" || fail "$1: the recorder did not read its FIFO"
    TURL=
    wait_for "$TMP/$1.err" '^flowscope record: API listening on http://127.0.0.1:[0-9]+$' "$TPID" 100 &&
        TURL=$(sed -n 's/^flowscope record: API listening on //p' "$TMP/$1.err")
}
# rfc_sec TIME: flows --json's "2026-11-27T05:29:34.521251000Z" as S.NNNNNNNNN
rfc_sec() { local t=${1%Z}; printf '%s.%s' "$(date -u -d "${t%.*}Z" +%s)" "${t#*.}"; }
ns() { sed 's/\.//' <<<"$1"; } # S.NNNNNNNNN -> ns

# the flows: NAME|jq selection in flows --json|tcpdump filter (the oracle)
TFLOWS=("F1|.a == \"10.99.1.10:34952\"|tcp and host 10.99.1.10 and port 34952"
    "FV|.a == \"[fd00:99:100::1]:45024\"|vlan 100 and tcp and host fd00:99:100::1 and port 45024"
    "FI|.a == \"10.99.2.10:0\" and .proto == \"icmp\"|icmp and host 10.99.2.10 and host 10.99.2.53")
tshark -r "$CAP" -T fields -e frame.time_epoch >"$TMP/cap.times" 2>/dev/null
HASHES=() TWANT=0
for t in "${TFLOWS[@]}"; do
    IFS='|' read -r name sel filter <<<"$t"
    line=$(jq -c "select($sel)" "$EXP/flows.0.ndjson")
    [ "$(grep -c . <<<"$line")" = 1 ] || { fail "$name: flows --json has $(grep -c . <<<"$line") such flows"; continue; }
    # the link the flows view makes (flowParams in app.js)
    HASHES+=("$(jq -r '"#/flow?proto=\(.proto)&a=\(.a | @uri)&b=\(.b | @uri)" +
        (if .vlan > 0 then "&vlan=\(.vlan)" else "" end) + (if .vlan_inner > 0 then "&vlan_inner=\(.vlan_inner)" else "" end)' \
        <<<"$line")&first=$(rfc_sec "$(jq -r .first <<<"$line")")&last=$(rfc_sec "$(jq -r .last <<<"$line")")")
    # what the page must send (the API's flow form: no port for ICMP) and what the API names
    jq -r '(if (.proto | test("^(tcp|udp|sctp)$")) then [.a, .b] else [.a, .b] | map(sub(":[0-9]+$"; "")) end) as $e
        | (if .vlan_inner > 0 then " vlan \(.vlan)/\(.vlan_inner)" elif .vlan > 0 then " vlan \(.vlan)" else "" end) as $v
        | "\(.proto) \($e[0]) \($e[1])\($v)", "\(.proto) \(.a) <-> \(.b)\($v)", .packets_ab + .packets_ba' \
        <<<"$line" >"$TMP/$name.want"
    oracle "$CAP" "$TMP/$name.pcap" "$filter"
    tshark -r "$TMP/$name.pcap" -T fields -e frame.time_epoch 2>/dev/null | sed -n '1p;$p' >"$TMP/$name.times"
    n=$(npackets "$TMP/$name.pcap")
    [ "$n" = "$(sed -n 3p "$TMP/$name.want")" ] && [ "$(wc -l <"$TMP/$name.times")" = 2 ] && pass ||
        fail "$name: tcpdump selects $n packets, flows --json says $(sed -n 3p "$TMP/$name.want")"
    TWANT=$((TWANT + n))
done
# the packets up to the flows' last one (the times as strings: all of one length): the
# analyzers have seen them all then
LAST_MAX=$(cat "$TMP"/F?.times | sort | tail -1)
NCAP=$(awk -v m="$LAST_MAX" '($1 "") <= (m "")' "$TMP/cap.times" | wc -l)
F1HASH=${HASHES[0]-}

fifo_recorder trig 7 64M "$CAP"
TRPID=$TPID TRURL=$TURL
fifo_recorder late 8 2M "$PCAPS/http.pcap"
LRPID=$TPID LRURL=$TURL
if [ "${#HASHES[@]}" = 3 ] && [ -n "$TRURL" ] && [ -n "$LRURL" ] && wait_analyzed "$TRURL" "$NCAP" "$TRPID" &&
    wait_analyzed "$LRURL" 7000 "$LRPID"; then
    (cd "$NODE_DIR" && timeout 120 node web.mjs trigger "$TRURL" "$SHOTS" "$TMP/trig.json" "$LRURL" "$F1HASH" \
        "${HASHES[@]}") >"$TMP/node4.out" 2>&1
    grep '^FAIL: ' "$TMP/node4.out" >&2
    FAILS=$((FAILS + $(grep -c '^FAIL: ' "$TMP/node4.out")))
    [ -s "$TMP/trig.json" ] || fail "the triggers: $(tail -5 "$TMP/node4.out")"
else
    fail "the FIFO recorders: $(tail -2 "$TMP/trig.err") $(tail -2 "$TMP/late.err")"
fi
exec 7>&- 8>&-
wait "$TRPID" && pass || fail "record (64M) on a FIFO: exit $?: $(tail -2 "$TMP/trig.err")"
wait "$LRPID" && pass || fail "record (2M) on a FIFO: exit $?: $(tail -2 "$TMP/late.err")"
if [ -s "$TMP/trig.json" ]; then
    i=0
    for t in "${TFLOWS[@]}"; do
        IFS='|' read -r name sel filter <<<"$t"
        # what the page sent, and what the API answered it (the page showed that: web.mjs)
        got=$(jq -c ".flows[$i].sent" "$TMP/trig.json")
        want=$(jq -n -c --arg f "$(sed -n 1p "$TMP/$name.want")" --arg r "web test $i" '{flow: $f, reason: $r}')
        [ "$got" = "$want" ] && pass || fail "$name: the page posted $got, not $want"
        jq -r ".flows[$i].raw" "$TMP/trig.json" >"$TMP/$name.ans"
        read -r first last < <(tr '\n' ' ' <"$TMP/$name.times")
        # (ns and seconds by sed and awk: jq reads numbers as doubles)
        first_ns=$(sed -n 's/.*"first_ns": \([0-9]*\).*/\1/p' "$TMP/$name.ans")
        back=$(sed -n 's/.*"seconds_back": \([0-9.]*\).*/\1/p' "$TMP/$name.ans")
        want_back=$(awk -v d="$(($(ns "$last") - $(ns "$first")))" 'BEGIN { printf "%.3f", d / 1e9 }')
        got=$(jq -c '[.trigger, .matched, .packets, .first_packet_lost, .flows[0].flow, .flows[0].first_packet_lost]' "$TMP/$name.ans")
        want=$(jq -n -c --arg r "api: web test $i" --arg f "$(sed -n 2p "$TMP/$name.want")" --argjson n "$(npackets "$TMP/$name.pcap")" \
            '[$r, 1, $n, 0, $f, false]')
        [ "$got" = "$want" ] && [ "$first_ns" = "$(ns "$first")" ] && [ "$back" = "$want_back" ] && pass ||
            fail "$name: the trigger's answer: $(cat "$TMP/$name.ans") (tcpdump: $want, $first to $last)"
        [ "$(jq -r ".flows[$i].first_shown[0]" "$TMP/trig.json")" = "$(date -u -d "@${first%.*}" '+%F %T').${first#*.}" ] &&
            pass || fail "$name: the first packet shown: $(jq -r ".flows[$i].first_shown[0]" "$TMP/trig.json"), tcpdump's $first"
        # the archive holds the flow from its first packet (time travel), as tcpdump selects it
        fs query --archive "$TMP/trig" -w "$TMP/$name.got" "$filter" 2>"$TMP/q.err" || fail "query: $(cat "$TMP/q.err")"
        cmp -s "$TMP/$name.got" "$TMP/$name.pcap" && pass ||
            fail "$name: the archive holds $(npackets "$TMP/$name.got") of its packets, tcpdump selects $(npackets "$TMP/$name.pcap")"
        i=$((i + 1))
    done
    # and nothing else
    fs query --archive "$TMP/trig" -w "$TMP/trig.pcap" 2>"$TMP/q.err" || fail "query: $(cat "$TMP/q.err")"
    [ "$(npackets "$TMP/trig.pcap")" = "$TWANT" ] && pass ||
        fail "the archive after the web triggers holds $(npackets "$TMP/trig.pcap") packets, the three flows $TWANT"
    # the small ring: the first packet was gone, and the answer says so (the page showed it)
    jq -r .late.raw "$TMP/trig.json" >"$TMP/late.ans"
    jq -e '.matched == 1 and .first_packet_lost == 1 and .flows[0].first_packet_lost' "$TMP/late.ans" >/dev/null &&
        grep -qE '"note": "first packet lost: ring window was [0-9]+\.[0-9] s"' "$TMP/late.ans" && pass ||
        fail "the small ring's answer: $(cat "$TMP/late.ans")"
    note "web trigger, F1: $(jq -c '{matched, packets, ring_window_s, seconds_back: .flows[0].seconds_back}' "$TMP/F1.ans"); small ring: $(jq -r '.flows[0].note' "$TMP/late.ans")"
fi

for s in timeline timeline-zoomed flows flows-phone flow query query-error live flows-large flow-trigger flow-trigger-1 flow-trigger-2 flow-trigger-lost; do
    [ -s "$SHOTS/$s.png" ] && pass || fail "no screenshot $s.png"
done
finish
