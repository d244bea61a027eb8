#!/bin/bash
# Triggers from outside (POST /api/v1/trigger, flowscope trigger; docs/api.md), tcpdump
# the oracle.  A recorder in --capture triggered with --listen archives nothing until a
# trigger names a flow; then that flow's packets still in the ring, from its first, and its
# later ones, and nothing else.
#  * tenants on identical addresses behind VLAN tags (tenants_pcap.py), read from a FIFO this
#    script holds open, the triggers posted with `for` before the packets: a trigger with
#    VLAN 42 archives that tenant only, one with 300/43 tenant C only, a filter with its VLANs
#    tenant B's UDP, a Community ID (tshark's) every tenant's UDP (the ID has no VLAN); a flow
#    that never existed matches 0; bad requests are 400.
#  * a ring too small for the capture (--qq-size 2M): the answer says the first packet was lost.
#  * live (root): http.pcap replayed by tcpreplay onto a veth pair in two parts, split after
#    the 20th packet of a flow; then a trigger for it by curl (JSON), one by flowscope
#    trigger for a flow 3.4 MB back, and a Suricata EVE alert appended to the recorder's
#    --eve log for a third: the archive is exactly those three flows, packet for packet,
#    each from its first packet.  Then 10 000 triggers over keep-alive connections
#    during a replay: every answer 200, counted, the capture's drops as without triggers.
# Usage: trigger.sh PKTDIGEST
. "$(dirname "$0")/lib.sh"
PKTDIGEST=${1:?usage: trigger.sh PKTDIGEST}
HERE=$(dirname "$0")

# api_url ERRFILE PID: the recorder's API base URL, once it listens (empty after ~10 s)
api_url() {
    wait_for "$1" '^flowscope record: API listening on http://127.0.0.1:[0-9]+$' "$2" 100 &&
        sed -n 's/^flowscope record: API listening on //p' "$1"
}

# post URL ARGS...: curl POST /api/v1/trigger; the body in $TMP/ans, the status echoed
post() {
    local url=$1
    shift
    curl -s -o "$TMP/ans" -w '%{http_code}' "$@" "$url/api/v1/trigger"
}

# json FILE KEY: a top-level number or string of a JSON answer
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# same_digests NAME EXPECTED GOT [-t]: the two captures hold the same packets (pktdigest lines,
# with timestamps when -t), in the same order
same_digests() {
    if cmp -s <("$PKTDIGEST" ${4:-} "$2") <("$PKTDIGEST" ${4:-} "$3"); then pass; else
        fail "$1: archived $(npackets "$3") packets, tcpdump selects $(npackets "$2"): $(diff <("$PKTDIGEST" ${4:-} "$2") <("$PKTDIGEST" ${4:-} "$3") | head -3 | tr '\n' ' ')"
    fi
}

# ---- VLAN tenants, from a FIFO ------------------------------------------------------------
# A file source publishes a chunk when it is full or the file ends, not while it waits for
# more: the triggers are posted with `for` after the file's header and before its packets,
# so each flow is triggered by its first packet (the pending triggers of docs/api.md).
python3 "$HERE/tenants_pcap.py" "$TMP/tenants.pcap" || { fail "tenants_pcap.py"; finish; }
mkfifo "$TMP/fifo"
fs record --read "$TMP/fifo" --archive "$TMP/ten" --capture triggered --listen 127.0.0.1:0 \
    --status-interval 0 2>"$TMP/ten.err" &
RPID=$!
exec 3>"$TMP/fifo"
head -c 24 "$TMP/tenants.pcap" >&3 # the file header: the recorder opens, listens, waits
URL=$(api_url "$TMP/ten.err" $RPID)
[ -n "$URL" ] || { fail "tenants: no API: $(tail -3 "$TMP/ten.err")"; exec 3>&-; finish; }

[ "$(post "$URL" -d 'flow=tcp 10.1.0.2:80 10.1.0.1:40000 vlan 42' -d 'reason=tenant A' -d 'for=60s')" = 200 ] &&
    [ "$(json "$TMP/ans" matched)" = 0 ] && pass || fail "tenants: vlan 42: $(cat "$TMP/ans")"
[ "$(post "$URL" -H 'Content-Type: application/json' \
        -d '{"flow": "tcp 10.1.0.1:40000 10.1.0.2:80 vlan 300/43", "reason": "tenant \"C\" \\ 1", "for": 60}')" = 200 ] &&
    pass || fail "tenants: vlan 300/43: $(cat "$TMP/ans")"
[ "$(post "$URL" -d 'filter=vlan 300 and vlan 42 and udp' -d 'reason=tenant B udp' -d 'for=1m')" = 200 ] &&
    [ "$(json "$TMP/ans" for_s)" = 60.0 ] && pass || fail "tenants: filter: $(cat "$TMP/ans")"
# a Community ID (tshark's, of the tenants' UDP flow): it has no VLAN, every tenant's flow
cid=$(tshark -r "$TMP/tenants.pcap" --enable-protocol communityid -Y udp -T fields -e communityid 2>/dev/null | sort -u)
[ "$(post "$URL" --data-urlencode "community_id=$cid" -d 'reason=cid' -d 'for=1m')" = 200 ] && pass ||
    fail "tenants: community_id '$cid': $(cat "$TMP/ans")"
[ "$(post "$URL" -d 'community_id=1:nope')" = 400 ] && pass || fail "a bad community_id: $(cat "$TMP/ans")"
# a flow that never existed, without for: matched 0 (and nothing kept)
[ "$(post "$URL" --data-urlencode 'flow=tcp 10.1.0.1:40000 10.1.0.2:80 vlan 44')" = 200 ] &&
    [ "$(json "$TMP/ans" matched)" = 0 ] && pass || fail "tenants: vlan 44: $(cat "$TMP/ans")"
"$FLOWSCOPE" trigger --remote "$URL" --flow 'udp 192.0.2.1:1 192.0.2.2:2' >"$TMP/cli.out" 2>&1 &&
    grep -qx 'matched 0 flows, reached back 0 packets (api)' "$TMP/cli.out" && pass ||
    fail "flowscope trigger, a flow never seen: $(cat "$TMP/cli.out")"
# a page of another site, through the user's browser: refused (403); the server's own page
[ "$(post "$URL" -H 'Origin: https://evil.example' -d 'filter=tcp')" = 403 ] &&
    grep -q 'another site' "$TMP/ans" && pass || fail "a cross-site POST: $(cat "$TMP/ans")"
[ "$(post "$URL" -H "Origin: $URL" --data-urlencode 'flow=udp 192.0.2.1:1 192.0.2.2:2')" = 200 ] && pass ||
    fail "a POST from the server's own page: $(cat "$TMP/ans")"
# bad requests: 400 with the reason
[ "$(post "$URL" -d 'flow=tcp 10.1.0.1 10.1.0.2:80')" = 400 ] && grep -q 'bad address or port' "$TMP/ans" &&
    pass || fail "a flow without a port: $(cat "$TMP/ans")"
[ "$(post "$URL" -d 'filter=tcp port')" = 400 ] && grep -q 'syntax error' "$TMP/ans" && pass ||
    fail "a bad filter: $(cat "$TMP/ans")"
[ "$(post "$URL" -d 'filter=tcp' -d 'flow=tcp 1.1.1.1:1 2.2.2.2:2')" = 400 ] && pass ||
    fail "flow and filter together: $(cat "$TMP/ans")"
[ "$(post "$URL" -H 'Content-Type: application/json' -d '{"flow": ')" = 400 ] && pass ||
    fail "truncated JSON: $(cat "$TMP/ans")"
"$FLOWSCOPE" trigger --remote "$URL" 'tcp port' >"$TMP/cli.out" 2>&1
[ $? = 2 ] && grep -q 'syntax error' "$TMP/cli.out" && pass ||
    fail "flowscope trigger, a bad filter: exit 2 expected: $(cat "$TMP/cli.out")"
tail -c +25 "$TMP/tenants.pcap" >&3 # the packets: the pending triggers find their flows
exec 3>&-
wait $RPID && pass || fail "tenants: record failed: $(tail -3 "$TMP/ten.err")"
[ "$(counter "$TMP/ten.err" record trigger.api_requests)" = 7 ] && pass ||
    fail "tenants: trigger.api_requests=$(counter "$TMP/ten.err" record trigger.api_requests), expected 7"
# A's and C's TCP, B's UDP (the filter, posted first), A's and C's UDP (the Community ID)
[ "$(counter "$TMP/ten.err" record trigger.flows)" = 5 ] && pass ||
    fail "tenants: trigger.flows=$(counter "$TMP/ten.err" record trigger.flows), expected 5"

oracle "$TMP/tenants.pcap" "$TMP/a.pcap" 'vlan 42 and tcp and port 80'
oracle "$TMP/tenants.pcap" "$TMP/c.pcap" 'vlan 300 and vlan 43 and tcp and port 80'
oracle "$TMP/tenants.pcap" "$TMP/au.pcap" 'vlan 42 and udp'
oracle "$TMP/tenants.pcap" "$TMP/bu.pcap" 'vlan 300 and vlan 42 and udp'
oracle "$TMP/tenants.pcap" "$TMP/cu.pcap" 'vlan 300 and vlan 43 and udp'
[ "$(npackets "$TMP/a.pcap")" = 8 ] && [ "$(npackets "$TMP/c.pcap")" = 8 ] &&
    [ "$(cat "$TMP"/[abc]u.pcap | wc -c)" -gt 0 ] && [ "$(npackets "$TMP/bu.pcap")" = 2 ] && pass ||
    fail "tenants: the oracle's flows are not 8, 8, 2 packets"
mergecap -w "$TMP/exp.pcap" "$TMP/a.pcap" "$TMP/c.pcap" "$TMP/au.pcap" "$TMP/bu.pcap" "$TMP/cu.pcap"
fs query --archive "$TMP/ten" -w "$TMP/got.pcap" 2>/dev/null || fail "tenants: query"
same_digests tenants "$TMP/exp.pcap" "$TMP/got.pcap" -t
fs flows --archive "$TMP/ten" --triggered >"$TMP/flows" 2>&1
# (a reason is free text: C's has a quote and a backslash, escaped in JSON answers)
REASONS=('api: tenant A' 'api: tenant "C" \ 1' 'api: tenant B udp' 'api: cid')
for r in "${REASONS[@]}"; do
    grep -qF " $r" "$TMP/flows" && pass || fail "flows: no flow triggered by '$r': $(cat "$TMP/flows")"
done
# trigger_names FILE: the distinct triggers of flows --json lines, one a line (each must parse)
trigger_names() {
    python3 -c 'import json, sys; print("\n".join(sorted({json.loads(l)["trigger"] for l in sys.stdin})))' <"$1"
}
fs flows --archive "$TMP/ten" --triggered --json >"$TMP/flows.json" 2>&1
[ "$(trigger_names "$TMP/flows.json")" = "$(printf '%s\n' "${REASONS[@]}" | sort)" ] && pass ||
    fail "flows --json: the triggers are not the reasons posted: $(cat "$TMP/flows.json")"

# serve has no recorder: 404 with a JSON error
"$FLOWSCOPE" serve --archive "$TMP/ten" --listen 127.0.0.1:0 >"$TMP/serve.out" 2>&1 &
SPID=$!
if wait_for "$TMP/serve.out" 'listening on http://127.0.0.1:[0-9]+' $SPID 100; then
    SURL=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/serve.out")
    [ "$(post "$SURL" -d 'filter=tcp')" = 404 ] && grep -q '"error"' "$TMP/ans" && pass ||
        fail "serve: POST /api/v1/trigger: $(cat "$TMP/ans")"
    curl -sS "$SURL/api/v1/flows?triggered=true" >"$TMP/rflows.json" &&
        [ "$(trigger_names "$TMP/rflows.json")" = "$(printf '%s\n' "${REASONS[@]}" | sort)" ] && pass ||
        fail "serve: /api/v1/flows: the triggers are not the reasons posted: $(cat "$TMP/rflows.json")"
    fs flows --remote "$SURL" --triggered >"$TMP/rflows" 2>&1 && grep -qF ' api: tenant "C" \ 1' "$TMP/rflows" &&
        pass || fail "flows --remote: no trigger 'api: tenant \"C\" \\ 1': $(cat "$TMP/rflows")"
else
    fail "serve did not start: $(cat "$TMP/serve.out")"
fi
kill $SPID
wait $SPID

# ---- the first packet left the ring --------------------------------------------------------
SRC=$PCAPS/http.pcap
F1='tcp 10.99.1.80:80 10.99.1.10:34952' # 2822 packets at the start of the capture
mkfifo "$TMP/fifo2"
fs record --read "$TMP/fifo2" --archive "$TMP/late" --capture triggered --listen 127.0.0.1:0 \
    --qq-size 2M --status-interval 0 2>"$TMP/late.err" &
RPID=$!
exec 3>"$TMP/fifo2"
cat "$SRC" >&3 &
CPID=$!
URL=$(api_url "$TMP/late.err" $RPID)
wait $CPID
# 7000 of its 8978 packets analysed (the last chunk waits for the file's end): the ring of
# 2 MiB holds about 1700 of them, the first flow's first packets are long gone
if [ -n "$URL" ] && wait_analyzed "$URL" 7000 $RPID; then
    "$FLOWSCOPE" trigger --remote "$URL" --reason late --flow "$F1" >"$TMP/cli.out" 2>&1 &&
        grep -qx 'matched 1 flow, reached back 2822 packets (api: late)' "$TMP/cli.out" &&
        grep -qE '^first packet lost: ring window was [0-9]+\.[0-9] s$' "$TMP/cli.out" && pass ||
        fail "first packet lost: $(cat "$TMP/cli.out")"
else
    fail "late: the capture was not analysed: $(tail -3 "$TMP/late.err")"
fi
exec 3>&-
wait $RPID && pass || fail "late: record failed: $(tail -3 "$TMP/late.err")"
[ "$(counter "$TMP/late.err" record trigger.too_late)" = 1 ] && pass ||
    fail "trigger.too_late=$(counter "$TMP/late.err" record trigger.too_late), expected 1"
# what it archived is the end of that flow only
oracle "$SRC" "$TMP/f1.pcap" 'tcp and host 10.99.1.10 and port 34952'
fs query --archive "$TMP/late" -w "$TMP/late.pcap" 2>/dev/null || fail "late: query"
n=$(npackets "$TMP/late.pcap")
[ "$n" -lt 2822 ] && subsequence "$TMP/late.pcap" "$TMP/f1.pcap" && pass ||
    fail "late: archived $n packets, expected fewer than 2822, all of the flow"

# ---- capture all: a flow written before its trigger is marked, --pin-triggered keeps it ----
# F1's part of the capture, then random traffic from flowscope gen, through a FIFO into a
# recorder of everything with a disk budget of 12 MiB: once `flows` (reading the archive as
# it records) lists F1, its packets are written; the trigger then marks its records (api:
# written), and the 40 MB of traffic after it make retention drop segments: never F1's.
nf1=$(tshark -r "$SRC" -Y 'tcp.port == 34952' -T fields -e frame.number 2>/dev/null | tail -1)
editcap -r -F pcap "$SRC" "$TMP/head.pcap" "1-$nf1" &&
    oracle "$TMP/head.pcap" "$TMP/head-nano.pcap" && oracle "$TMP/head.pcap" "$TMP/f1-all.pcap" \
    'tcp and host 10.99.1.10 and port 34952' || fail "F1's part of the capture"
fs gen -w "$TMP/fill.pcap" --packets 80000 --size 0-1000 --payload random --seed 7 --start 1800000000 2>/dev/null &&
    editcap -F nsecpcap -r "$TMP/fill.pcap" "$TMP/fill1.pcap" 1-4000 &&
    editcap -F nsecpcap -r "$TMP/fill.pcap" "$TMP/fill2.pcap" 4001-80000 || fail "gen, editcap"
mkfifo "$TMP/fifo3"
fs record --read "$TMP/fifo3" --archive "$TMP/all" --capture all --listen 127.0.0.1:0 \
    --pin-triggered --max-disk 12M --segment-size 1M --dumpers 1 --qq-size 16M \
    --status-interval 0 2>"$TMP/all.err" &
RPID=$!
# the feeder: F1's part and 4000 packets that push its chunks out of the source; the rest
# once $TMP/go exists (~60 s bound): the FIFO stays open in between
(
    cat "$TMP/head-nano.pcap" && tail -c +25 "$TMP/fill1.pcap" || exit
    for ((i = 0; i < 600; i++)); do [ -e "$TMP/go" ] && break; sleep 0.1; done
    tail -c +25 "$TMP/fill2.pcap"
) >"$TMP/fifo3" &
FPID=$!
URL=$(api_url "$TMP/all.err" $RPID)
for ((i = 0; i < 300; i++)); do # until the archive's index lists F1 (~30 s bound)
    fs flows --archive "$TMP/all" 'port 34952' 2>/dev/null | grep -q 34952 && break
    sleep 0.1
done
"$FLOWSCOPE" trigger --remote "$URL" --reason written --flow "$F1" >"$TMP/cli.out" 2>&1 &&
    grep -qx 'matched 1 flow, reached back 2822 packets (api: written)' "$TMP/cli.out" && pass ||
    fail "capture all, F1 written: $(cat "$TMP/cli.out")"
m=$(metric "$URL" flowscope_trigger_marked_records_total)
[ "${m:-0}" -ge 1 ] && pass || fail "capture all: marked_records_total '$m', expected >= 1"
touch "$TMP/go"
wait $RPID && pass || fail "capture all: record failed: $(tail -3 "$TMP/all.err")"
kill $FPID 2>/dev/null
wait $FPID
[ "$(counter "$TMP/all.err" record retention.dropped_segments)" -gt 0 ] &&
    [ "$(counter "$TMP/all.err" record retention.dropped_pinned_segments)" = 0 ] && pass ||
    fail "capture all: retention: $(grep retention "$TMP/all.err")"
fs flows --archive "$TMP/all" --triggered >"$TMP/flows" 2>&1
grep -q '34952.*api: written$' "$TMP/flows" && pass ||
    fail "capture all: F1 not listed as triggered: $(head -5 "$TMP/flows")"
fs query --archive "$TMP/all" -w "$TMP/f1-got.pcap" 'tcp and host 10.99.1.10 and port 34952' \
    2>/dev/null || fail "capture all: query"
same_digests "capture all, F1 kept" "$TMP/f1-all.pcap" "$TMP/f1-got.pcap" -t

# ---- live: time travel through the API and flowscope trigger ------------------------------
# The capture is cut after the 20th packet of its flow F2 (frame N2), 3.4 MB in: then F2 is
# triggered by curl (its 20 packets are in the ring), and F1, whose 2822 packets came before,
# by flowscope trigger.  An 8 MiB ring (chunks of 512 KiB) holds those 3.4 MB only because a
# recorder that takes triggers holds packets back (90 %): without that, the closed chunks of
# F1 would be gone when its trigger comes.
[ "$(id -u)" = 0 ] || skip "the live part needs root (network namespaces)"
veth_pair trig || { fail "cannot create the veth pair"; finish; }
F2='tcp 10.99.1.80:80 10.99.1.10:37464' # 73 packets
# the frame number of F2's 20th packet (tshark), the capture cut after it (editcap)
n2=$(tshark -r "$SRC" -Y 'tcp.port == 37464' -T fields -e frame.number 2>/dev/null | sed -n 20p)
[ -n "$n2" ] || { fail "no split point"; finish; }
editcap -r "$SRC" "$TMP/p1.pcap" "1-$n2" && editcap -r "$SRC" "$TMP/p2.pcap" "$((n2 + 1))-$(npackets "$SRC")" ||
    { fail editcap; finish; }

"$FLOWSCOPE" record --afpacket "$A" --archive "$TMP/live" --capture triggered --listen 127.0.0.1:0 \
    --qq-size 8M --status-interval 1 --eve "$TMP/eve.json" 2>"$TMP/live.err" &
RPID=$!
URL=$(api_url "$TMP/live.err" $RPID)
[ -n "$URL" ] || { fail "live: no API: $(tail -3 "$TMP/live.err")"; finish; }
wait_for "$TMP/live.err" 'pkts, ' $RPID 100 # capturing
replay p1 "$TMP/p1.pcap" $RPID --pps=3000 || finish
wait_analyzed "$URL" "$n2" $RPID || fail "live: part 1 not analysed"
[ "$(post "$URL" -H 'Content-Type: application/json' \
        -d "{\"flow\": \"$F2\", \"reason\": \"ids alert\"}")" = 200 ] &&
    [ "$(json "$TMP/ans" matched)" = 1 ] && [ "$(json "$TMP/ans" packets)" = 20 ] && pass ||
    fail "live: trigger after the 20th packet: $(cat "$TMP/ans")"
"$FLOWSCOPE" trigger --remote "$URL" --reason cli --flow "$F1" >"$TMP/cli.out" 2>&1 &&
    grep -qx 'matched 1 flow, reached back 2822 packets (api: cli)' "$TMP/cli.out" &&
    grep -qE "^tcp 10.99.1.10:34952 <-> 10.99.1.80:80: reached back 2822 packets, [0-9.]+ s$" "$TMP/cli.out" &&
    ! grep -q 'first packet lost' "$TMP/cli.out" && pass || fail "live: flowscope trigger: $(cat "$TMP/cli.out")"
# and F3 by an IDS: a Suricata EVE alert line (eve_alert.py, from tshark) appended to the log
python3 "$HERE/eve_alert.py" "$SRC" 'tcp.srcport == 37450' 2010935 2 'ET TEST live' >>"$TMP/eve.json" ||
    fail "eve_alert.py"
for ((i = 0; i < 100; i++)); do
    [ "$(metric "$URL" flowscope_trigger_eve_requests_total)" = 1 ] && break
    sleep 0.1
done
[ "$(metric "$URL" flowscope_trigger_flows_total)" = 3 ] && pass ||
    fail "live: the EVE alert: $(metric "$URL" flowscope_trigger_eve_requests_total) applied, $(metric "$URL" flowscope_trigger_flows_total) flows found in all"
replay p2 "$TMP/p2.pcap" $RPID --pps=3000 || finish
SENT=$(npackets "$SRC")
stop_when_counted live "$TMP/live.err" $RPID
oracle "$SRC" "$TMP/live.exp" 'tcp and host 10.99.1.10 and (port 34952 or port 37464 or port 37450)'
fs query --archive "$TMP/live" -w "$TMP/live.got" 2>/dev/null || fail "live: query"
same_digests live "$TMP/live.exp" "$TMP/live.got"
live_drops=$(counter "$TMP/live.err" record ingest.afpacket.drops)

# ---- live: 10 000 triggers during a replay -----------------------------------------------
"$FLOWSCOPE" record --afpacket "$A" --archive "$TMP/load" --capture triggered --listen 127.0.0.1:0 \
    --status-interval 1 2>"$TMP/load.err" &
RPID=$!
URL=$(api_url "$TMP/load.err" $RPID)
[ -n "$URL" ] || { fail "load: no API: $(tail -3 "$TMP/load.err")"; finish; }
wait_for "$TMP/load.err" 'pkts, ' $RPID 100
python3 "$HERE/trigger_load.py" "$URL" 10000 8 'flow=udp+192.0.2.1%3A1+192.0.2.2%3A2&reason=load' 120 \
    >"$TMP/load.out" 2>&1 &
LPID=$!
replay load "$SRC" $RPID --pps=3000 || finish
wait $LPID && pass || fail "load: $(cat "$TMP/load.out")"
stop_when_counted load "$TMP/load.err" $RPID
[ "$(counter "$TMP/load.err" record trigger.api_requests)" = 10000 ] && pass ||
    fail "load: trigger.api_requests=$(counter "$TMP/load.err" record trigger.api_requests)"
[ "$(counter "$TMP/load.err" record trigger.refused)" = 0 ] && pass || fail "load: refused triggers"
[ "$(counter "$TMP/load.err" record ingest.afpacket.drops)" = "$live_drops" ] && pass ||
    fail "load: drops $(counter "$TMP/load.err" record ingest.afpacket.drops), without the triggers $live_drops"
[ "$(stored "$TMP/load")" = 0 ] && pass || fail "load: a trigger for no flow archived $(stored "$TMP/load") packets"
note "$(cat "$TMP/load.out")"
finish
