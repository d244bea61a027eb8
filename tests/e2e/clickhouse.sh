#!/bin/bash
# e2e_clickhouse: record --flow-export into Debian's clickhouse-server (docs/clickhouse.md),
# started here on loopback with its data under $TMP, the schema from docs/clickhouse-schema*.sql.
#   - three recorders, three captures of ../shared/pcaps shifted by editcap to overlap in time:
#     each sensor's rows, summed per flow, are its `flows --json` (ch_flows.py); the same into
#     the Distributed schema (a cluster of this one server);
#   - ClickHouse stopped during a recording (input from a FIFO): segments wait in the index
#     (pending_segments > 0 in /metrics), the recorder says it retries; ClickHouse started
#     again: they arrive; the end: every row once (count() = distinct (segment, seq)), the sums
#     as flows --json; a recording ended while ClickHouse is down leaves them for the next one;
#   - a bad --flow-export URL: one line, exit 2.
. "$(dirname "$0")/lib.sh"
command -v clickhouse-server >/dev/null || skip "clickhouse-server not installed (make deps)"
DOCS=$(cd "$(dirname "$0")/../../docs" && pwd)
CMP="python3 $(dirname "$0")/ch_flows.py"
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; [ -z "${CH_PID:-}" ] || stop_pid "$CH_PID"'
start_clickhouse "$TMP/ch" || { fail "clickhouse-server: $(tail -3 "$TMP/ch/error.log" "$TMP/ch/stdout")"; finish; }
note "clickhouse-server $(ch 'SELECT version()') on $CH_HTTP"
ch_schema "$DOCS/clickhouse-schema.sql" && pass || fail "docs/clickhouse-schema.sql"
ch_schema "$DOCS/clickhouse-schema-distributed.sql" && pass || fail "docs/clickhouse-schema-distributed.sql"
URL=clickhouse://127.0.0.1:$CH_PORT/flowscope.flows

# compare SENSOR ARCHIVE DB: that sensor's rows in DB.flows against the archive's flows --json
compare() {
    fs flows --archive "$2" --json >"$TMP/$1.want.json" || fail "flows --archive $2"
    ch "SELECT segment, segment_created_ns, seq, proto, hex(addr_a) AS a, port_a, hex(addr_b) AS b, port_b, vlan,
        vlan_inner, packets_ab, packets_ba, bytes_ab, bytes_ba, first_ns, last_ns
        FROM ${3:-flowscope}.flows WHERE sensor = '$1' FORMAT JSONEachRow" >"$TMP/$1.got.json" ||
        fail "SELECT $1"
    if out=$($CMP "$TMP/$1.want.json" "$TMP/$1.got.json"); then
        pass
        note "sensor $1: $(tail -1 <<<"$out")"
    else
        fail "sensor $1 (${3:-flowscope}): $out"
    fi
}

# --- three sensors --------------------------------------------------------------------------
editcap -t -6.9 "$PCAPS/dns_icmp.pcap" "$TMP/d.pcap" &&
    editcap -t -22.8 "$PCAPS/tcp_anomalies.pcap" "$TMP/t.pcap" &&
    cp "$PCAPS/http.pcap" "$TMP/h.pcap" || fail editcap
# sensor d's flows are triggered by a filter whose text has a tab and a backslash (ClickHouse's
# TabSeparated answers escape both: flows --fleet must give them back as they were)
DTRIG=$'udp port 53\tor ip proto \\icmp'
for s in h d t; do
    extra=()
    [ "$s" != d ] || extra=(--trigger "$DTRIG")
    fs record --read "$TMP/$s.pcap" --archive "$TMP/a$s" --status-interval 0 --flow-export "$URL" \
        --sensor "$s" "${extra[@]}" 2>"$TMP/r$s.err" || fail "record $s: $(cat "$TMP/r$s.err")"
    grep -q 'flow_export.pending_segments=0 flow_export.errors=0' "$TMP/r$s.err" && pass ||
        fail "record $s: $(grep flow_export "$TMP/r$s.err")"
    compare "$s" "$TMP/a$s"
done
[ "$(ch "SELECT count() FROM flowscope.flows_counters WHERE sensor = 'h' AND name = 'archive.writer.packets' AND value = 8978")" -ge 1 ] &&
    pass || fail "counters: no archive.writer.packets=8978 row for sensor h"
# the same rows through the Distributed schema, as a second export target of archive h: a
# cursor per target, so they all go again
fs record --read "$TMP/d.pcap" --archive "$TMP/dd" --status-interval 0 --sensor dist \
    --flow-export "clickhouse://127.0.0.1:$CH_PORT/flowscope_dist.flows" 2>"$TMP/rdist.err" ||
    fail "record into the Distributed table: $(cat "$TMP/rdist.err")"
compare dist "$TMP/dd" flowscope_dist

# --- the fleet: query --fleet asks only the sensors whose flows match; flows --fleet ----------
mergecap -F pcap -w "$TMP/all.pcap" "$TMP/h.pcap" "$TMP/d.pcap" "$TMP/t.pcap" || fail mergecap
for s in h d t; do
    "$FLOWSCOPE" serve --archive "$TMP/a$s" --listen 127.0.0.1:0 >"$TMP/s$s.out" 2>&1 &
    PIDS+=($!)
    eval "PID_$s=$!"
    wait_for "$TMP/s$s.out" 'listening on' $! 100 || fail "serve $s: $(cat "$TMP/s$s.out")"
    eval "URL_$s=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/s$s.out")"
done
cat >"$TMP/fleet.conf" <<CONF
clickhouse = $URL
[sensor h]
url = $URL_h
[sensor d]
url = $URL_d
[sensor t]
url = $URL_t
CONF
queries() { for s in h d t; do metric "$(eval echo "\$URL_$s")" flowscope_api_queries_total; done | tr '\n' ' '; }
# queries_after BEFORE SENSOR: the counters once SENSOR's has grown past BEFORE's (a server
# counts a query when its answer is done, which may be after the client has it; ~10 s bound)
queries_after() {
    local i a k=$2
    for ((i = 0; i < 100; i++)); do
        a=$(queries)
        set -- $1
        local b=("$@")
        set -- $a
        local n=("$@")
        [ "${n[$k]:-0}" -gt "${b[$k]:-0}" ] && break
        sleep 0.1
    done
    echo "$a"
}
# the range: up to the second every sensor's rows are complete to (the earliest of the three
# recordings' last packet second: flow_export.through_seconds), tcpdump's input cut there
END=$(for s in h d t; do capinfos -Tr -e -S "$TMP/$s.pcap"; done | awk -F'\t' '{print int($2)}' | sort -n | head -1)
TZ=UTC editcap -B "$(date -u -d "@$END" +%Y-%m-%dT%H:%M:%S)" "$TMP/all.pcap" "$TMP/cut.pcap" || fail "editcap -B"
note "--to $END: $(npackets "$TMP/cut.pcap") of $(npackets "$TMP/all.pcap") packets"
FIVE='tcp and host 10.99.1.10 and port 34952 and host 10.99.1.80 and port 80'
before=$(queries)
fs query --fleet "$TMP/fleet.conf" --to "$END" -w "$TMP/five.pcap" "$FIVE" 2>"$TMP/five.err" ||
    fail "query --fleet (5-tuple): exit $?: $(cat "$TMP/five.err")"
after=$(queries_after "$before" 0)
note "API queries of h d t before: $before, after: $after; $(cat "$TMP/five.err")"
set -- $before
b=("$@")
set -- $after
[ "$1" = $((b[0] + 1)) ] && [ "$2" = "${b[1]}" ] && [ "$3" = "${b[2]}" ] && pass ||
    fail "the 5-tuple query asked sensors $before -> $after (h only expected)"
grep -q 'asking 1 of 3 sensors' "$TMP/five.err" && pass || fail "no line saying 1 of 3: $(cat "$TMP/five.err")"
oracle "$TMP/cut.pcap" "$TMP/five.want" "$FIVE"
cmp -s <(tcpdump -nn --time-stamp-precision=nano -r "$TMP/five.want" 2>/dev/null) \
    <(tcpdump -nn --time-stamp-precision=nano -r "$TMP/five.pcap" 2>/dev/null) && pass ||
    fail "query --fleet (5-tuple) differs from tcpdump"
# a host seen by two sensors, and a filter the rows cannot tell: the sensors that may hold it
for q in 'udp port 53' 'tcp[13] & 4 != 0' 'arp'; do
    fs query --fleet "$TMP/fleet.conf" --to "$END" -w "$TMP/q.pcap" "$q" 2>"$TMP/q.err" ||
        fail "query --fleet '$q': exit $?"
    oracle "$TMP/cut.pcap" "$TMP/q.want" "$q"
    cmp -s <(tcpdump -nn --time-stamp-precision=nano -r "$TMP/q.want" 2>/dev/null) \
        <(tcpdump -nn --time-stamp-precision=nano -r "$TMP/q.pcap" 2>/dev/null) && pass ||
        fail "query --fleet '$q' differs from tcpdump ($(cat "$TMP/q.err"))"
    note "'$q': $(cat "$TMP/q.err")"
done
# without --to the range reaches past what ClickHouse vouches for: every sensor
before=$(queries)
fs query --fleet "$TMP/fleet.conf" -w "$TMP/five2.pcap" "$FIVE" 2>"$TMP/five2.err" || fail "query --fleet without --to"
after=$(queries_after "$before" 2)
set -- $before
b=("$@")
set -- $after
[ "$2" = $((b[1] + 1)) ] && [ "$3" = $((b[2] + 1)) ] && pass || fail "without --to: $before -> $after"
cmp -s <(tcpdump -nn -r "$TMP/five.pcap" 2>/dev/null) <(tcpdump -nn -r "$TMP/five2.pcap" 2>/dev/null) &&
    pass || fail "without --to: another answer"
fs query --fleet "$TMP/fleet.conf" --all-sensors --to "$END" -w "$TMP/five3.pcap" "$FIVE" 2>"$TMP/five3.err" &&
    ! grep -q 'asking' "$TMP/five3.err" && cmp -s "$TMP/five.pcap" "$TMP/five3.pcap" && pass ||
    fail "--all-sensors: $(cat "$TMP/five3.err")"
# flows --fleet: each sensor's flows of a host, as flows --archive lists them
HOSTQ='host 10.99.2.10'
fs flows --fleet "$TMP/fleet.conf" --json "$HOSTQ" >"$TMP/ff.json" 2>"$TMP/ff.err" ||
    fail "flows --fleet: exit $?: $(cat "$TMP/ff.err")"
KEYS='[.proto,.a,.b,.vlan,.vlan_inner,.packets_ab,.packets_ba,.bytes_ab,.bytes_ba,.first,.last,.tcp_flags,.community_id]'
for s in h d t; do
    fs flows --archive "$TMP/a$s" --json "$HOSTQ" | jq -c "$KEYS" | sort >"$TMP/fw.$s"
    jq -c "select(.sensor == \"$s\") | $KEYS" "$TMP/ff.json" | sort >"$TMP/fg.$s"
    cmp -s "$TMP/fw.$s" "$TMP/fg.$s" && pass || fail "flows --fleet, sensor $s: $(diff "$TMP/fw.$s" "$TMP/fg.$s" | head -4)"
done
t=$(jq -r 'select(.sensor == "d" and .trigger != "") | .trigger' "$TMP/ff.json" | sort -u)
[ "$t" = "trigger: $DTRIG" ] && [ "$(fs flows --archive "$TMP/ad" --json "$HOSTQ" | jq -r 'select(.trigger != "") | .trigger' | sort -u)" = "trigger:$DTRIG" ] &&
    pass || fail "flows --fleet: sensor d's trigger is $(printf %q "$t"), not $(printf %q "trigger: $DTRIG")"
note "flows --fleet '$HOSTQ': $(wc -l <"$TMP/ff.json") flows ($(jq -r .sensor "$TMP/ff.json" | sort | uniq -c | tr '\n' ' '))"
fs flows --fleet "$TMP/fleet.conf" --top 3 >"$TMP/top.txt" && [ "$(wc -l <"$TMP/top.txt")" = 4 ] && pass ||
    fail "flows --fleet --top 3: $(cat "$TMP/top.txt")"
rc=0
fs flows --fleet "$TMP/fleet.conf" 'tcp[13] & 4 != 0' 2>"$TMP/ffbad.err" >/dev/null || rc=$?
[ "$rc" = 2 ] && pass || fail "flows --fleet with a filter rows cannot answer: exit $rc"
one_line_error "$TMP/ffbad.err" 'cannot be answered from flow rows'
# ClickHouse unreachable: a line says so, every sensor is asked, the answer is whole
sed "s|^clickhouse = .*|clickhouse = clickhouse://127.0.0.1:$(free_port)/flowscope.flows|" \
    "$TMP/fleet.conf" >"$TMP/fleet-dead.conf"
fs query --fleet "$TMP/fleet-dead.conf" --to "$END" -w "$TMP/five4.pcap" "$FIVE" 2>"$TMP/five4.err" &&
    grep -q 'asking every sensor' "$TMP/five4.err" && cmp -s "$TMP/five.pcap" "$TMP/five4.pcap" && pass ||
    fail "ClickHouse unreachable: $(cat "$TMP/five4.err")"
for s in h d t; do eval "kill \$PID_$s"; done

# --- ClickHouse stopped and started during a recording -----------------------------------------
# two parts, the second fed while ClickHouse is down (gen: the same pcap header)
fs gen -w "$TMP/g1.pcap" --flows 3000 --packets 40000 --payload random --seed 7 >/dev/null &&
    fs gen -w "$TMP/g2.pcap" --flows 3000 --packets 80000 --payload random --seed 8 \
        --start 1795000020 >/dev/null || fail gen
mkfifo "$TMP/fifo"
"$FLOWSCOPE" record --read "$TMP/fifo" --archive "$TMP/ag" --status-interval 0 --segment-size 4M \
    --dumpers 1 --listen 127.0.0.1:0 --flow-export "$URL" --sensor g --flow-export-interval 200ms \
    2>"$TMP/rg.err" &
RG=$!
PIDS+=($RG)
exec 7>"$TMP/fifo"
cat "$TMP/g1.pcap" >&7
wait_for "$TMP/rg.err" 'listening on' $RG 100 || fail "record g: $(cat "$TMP/rg.err")"
API=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$TMP/rg.err" | head -1)
# the first segments' rows arrive: then ClickHouse goes
for ((i = 0; i < 300; i++)); do
    [ "$(ch "SELECT count() FROM flowscope.flows WHERE sensor = 'g'")" -gt 0 ] && break
    sleep 0.1
done
before=$(ch "SELECT count() FROM flowscope.flows WHERE sensor = 'g'")
[ "$before" -gt 0 ] && pass || fail "no row of sensor g arrived"
stop_pid "$CH_PID"
wait_for "$TMP/rg.err" 'flow-export: .*retrying' $RG 300 && pass ||
    fail "the recorder did not say it retries: $(tail -3 "$TMP/rg.err")"
tail -c +25 "$TMP/g2.pcap" >&7 # the rest, without its pcap header
# pending some|none [TENTHS]: until the recorder's pending_segments is > 0 / 0 (bounded)
pending() {
    local i
    for ((i = 0; i < ${2:-300}; i++)); do
        p=$(metric "$API" flowscope_flow_export_pending_segments)
        case "$1:${p:-x}" in some:[1-9]* | none:0) return 0 ;; esac
        sleep 0.1
    done
    return 1
}
pending some && pass || fail "no segment waits while ClickHouse is down (pending ${p:-none})"
note "ClickHouse down: $before rows in, $p segment(s) waiting in the index"
start_clickhouse "$TMP/ch" "$CH_PORT" || fail "clickhouse-server restart"
pending none 600 && pass || fail "segments still pending after the restart: ${p:-none}"
grep -q 'flow-export: .* answers again' "$TMP/rg.err" && pass || fail "no 'answers again' line"
exec 7>&-
wait "$RG" || fail "record g: exit $?: $(tail -3 "$TMP/rg.err")"
compare g "$TMP/ag"
[ "$(ch "SELECT count() - uniqExact(segment, segment_created_ns, seq) FROM flowscope.flows WHERE sensor = 'g'")" = 0 ] &&
    pass || fail "sensor g: a row twice"
note "$(grep -o 'flow_export.rows=.*' "$TMP/rg.err")"

# --- a recording that ends while ClickHouse is down: the next one sends its rows ------------
stop_pid "$CH_PID"
fs record --read "$TMP/d.pcap" --archive "$TMP/ae" --status-interval 0 --flow-export "$URL" \
    --sensor e 2>"$TMP/re.err" || fail "record e: exit $?"
grep -q 'flow_export.pending_segments=1 ' "$TMP/re.err" && grep -q 'not sent yet' "$TMP/re.err" &&
    pass || fail "record e without ClickHouse: $(grep -i 'flow.export' "$TMP/re.err")"
start_clickhouse "$TMP/ch" "$CH_PORT" || fail "clickhouse-server restart"
fs record --read "$TMP/t.pcap" --archive "$TMP/ae" --status-interval 0 --flow-export "$URL" \
    --sensor e 2>"$TMP/re2.err" || fail "record e again: exit $?"
grep -q 'flow_export.pending_segments=0 flow_export.errors=0' "$TMP/re2.err" && pass ||
    fail "record e again: $(grep flow_export "$TMP/re2.err")"
compare e "$TMP/ae"

# sensor h again on a new archive (its disk replaced): segments numbered from 1 again are
# other segments (their creation time tells), so its rows are sent, not taken as sent.  How many
# rows a recording makes is not fixed (two dumpers: a flow in both segments is two rows), so
# the table must grow by what the recorder says it sent, none skipped as there already.
had=$(ch "SELECT count() FROM flowscope.flows WHERE sensor = 'h'")
fs record --read "$TMP/t.pcap" --archive "$TMP/ah2" --status-interval 0 --flow-export "$URL" \
    --sensor h 2>"$TMP/rh2.err" || fail "record h2: $(cat "$TMP/rh2.err")"
sent=$(grep -o 'flow_export.rows=[0-9]*' "$TMP/rh2.err" | cut -d= -f2)
[ "${sent:-0}" -gt 0 ] && grep -q 'flow_export.skipped_batches=0 ' "$TMP/rh2.err" &&
    [ "$(ch "SELECT count() FROM flowscope.flows WHERE sensor = 'h'")" = $((had + sent)) ] && pass ||
    fail "sensor h on a new archive: $had rows before; $(grep -i 'flow.export' "$TMP/rh2.err")"

# --- bad values ---------------------------------------------------------------------------------
# bad_value ARGS...: record refuses them with one line naming the option, exit 2
bad_value() {
    local rc=0
    fs record --read "$TMP/d.pcap" --archive "$TMP/bad" --status-interval 0 "$@" 2>"$TMP/bad.err" || rc=$?
    [ "$rc" = 2 ] && pass || fail "record $*: exit $rc, not 2"
    one_line_error "$TMP/bad.err" '^flowscope record: --(flow-export|sensor)' || true
}
for bad in http://127.0.0.1:1/x.y clickhouse://127.0.0.1/x.y clickhouse://127.0.0.1:8123/nodot \
    "clickhouse://127.0.0.1:8123/a.b;drop"; do
    bad_value --flow-export "$bad"
done
bad_value --flow-export "$URL" --sensor "a'b"
bad_value --sensor x
[ ! -e "$TMP/bad" ] && pass || fail "a refused recording left an archive"
finish
