#!/bin/bash
# GET /metrics for real (docs/metrics.md): promtool accepts /metrics of `serve` (the archive's
# gauges, its last run, the API's own counters, which count a query) and of `record --listen`
# (the live counters); /healthz of the recorder says "dropping" once after packets were lost;
# a real Prometheus server on loopback scrapes the recorder, and a PromQL query on its HTTP API
# returns the packet and drop counters the recorder printed at exit.  The recorder reads a
# FIFO the test feeds, so it lives (and is scraped) after its last packet until the FIFO closes.
. "$(dirname "$0")/lib.sh"
for t in promtool prometheus curl jq editcap mergecap; do
    command -v $t >/dev/null || { fail "$t not found (Debian packages prometheus curl jq wireshark-common)"; finish; }
done
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do stop_pid "$p"; done'

# poll TENTHS CMD...: until CMD succeeds; 1 after TENTHS tenths of a second.
poll() {
    local i n=$1
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
url_of() { grep -aoE 'http://127\.0\.0\.1:[0-9]+' "$1" | head -1; }

# ---- serve: the archive's metrics and the API's counters ------------------------------------
fs record --read "$PCAPS/http.pcap" --archive "$TMP/a" --stats-interval 0 2>"$TMP/rec0.err" ||
    fail "record: $(tail -2 "$TMP/rec0.err")"
"$FLOWSCOPE" serve --archive "$TMP/a" --listen 127.0.0.1:0 >"$TMP/serve.out" 2>&1 &
PIDS+=($!)
wait_for "$TMP/serve.out" listening "$!" || fail "serve did not start: $(cat "$TMP/serve.out")"
S=$(url_of "$TMP/serve.out")
curl -sS -m 30 -o /dev/null "$S/api/v1/query?filter=tcp+port+80" || fail "serve: a query failed"
# the query is counted when the server lets go of its answer, which may be just after curl
# has it all: until /metrics shows it
counted() {
    code=$(curl -sS -m 30 -o "$TMP/serve.prom" -w '%{http_code}' "$S/metrics")
    [ "$code" = 200 ] && grep -qxF 'flowscope_api_queries_total 1' "$TMP/serve.prom"
}
poll 100 counted && pass || fail "serve: GET /metrics answered $code: $(head -c 300 "$TMP/serve.prom")"
promtool check metrics <"$TMP/serve.prom" >"$TMP/promtool.out" 2>&1 && pass ||
    fail "serve: promtool check metrics: $(head -5 "$TMP/promtool.out")"
for s in 'flowscope_api_queries_total 1' 'flowscope_api_query_duration_seconds_count 1' \
    'flowscope_api_query_duration_seconds_bucket{le="+Inf"} 1' 'flowscope_ingest_packets_total{source="file"} 8978' \
    "flowscope_archive_packets $(npackets "$PCAPS/http.pcap")"; do
    grep -qxF "$s" "$TMP/serve.prom" && pass || fail "serve: no sample '$s' in /metrics"
done
grep -qE '^flowscope_api_query_sent_bytes_total [1-9]' "$TMP/serve.prom" && pass || fail "serve: no bytes sent counted"

# ---- record --listen on a FIFO: the live counters ---------------------------------------------
# http.pcap, then dns_icmp.pcap moved past 2554 (ns in 64 bits): its 164 packets are dropped
editcap -F pcapng -t -1800000000 "$PCAPS/dns_icmp.pcap" "$TMP/late.pcapng"
mergecap -a -F pcapng -w "$TMP/in.pcapng" "$PCAPS/http.pcap" "$TMP/late.pcapng"
mkfifo "$TMP/fifo"
"$FLOWSCOPE" record --read "$TMP/fifo" --archive "$TMP/live" --listen 127.0.0.1:0 \
    --stats-interval 0 >"$TMP/rec.out" 2>"$TMP/rec.err" &
REC=$!
PIDS+=($REC)
exec 7>"$TMP/fifo" # held open: the recorder waits for more after the last packet
cat "$TMP/in.pcapng" >&7
wait_for "$TMP/rec.err" "API listening" $REC || fail "record --listen did not start: $(cat "$TMP/rec.err")"
R=$(url_of "$TMP/rec.err")
# until the source has read the whole input: 8978 packets, then the 164 late ones dropped
live() {
    curl -sS -m 10 -o "$TMP/live.prom" "$R/metrics" &&
        grep -qxF 'flowscope_ingest_packets_total{source="file"} 8978' "$TMP/live.prom" &&
        grep -qxF 'flowscope_ingest_dropped_packets_total{source="file",reason="time"} 164' "$TMP/live.prom"
}
poll 300 live && pass ||
    fail "record --listen: /metrics never counted the 8978 packets and 164 drops: $(grep -e ingest_packets -e 'reason="time"' "$TMP/live.prom")"
promtool check metrics <"$TMP/live.prom" >"$TMP/promtool.out" 2>&1 && pass ||
    fail "record --listen: promtool check metrics: $(head -5 "$TMP/promtool.out")"
grep -qE '^flowscope_qq_fill_ratio [0-9.e-]+$' "$TMP/live.prom" &&
    grep -qE '^flowscope_api_connections [0-9]+$' "$TMP/live.prom" && pass ||
    fail "record --listen: the ring's fill or the API's counters are missing"
# /healthz: "dropping" once (164 lost since the start), then healthy: nothing lost since
code=$(curl -sS -m 10 -o "$TMP/h1.json" -w '%{http_code}' "$R/healthz")
[ "$code" = 503 ] && jq -e '.error | startswith("dropping: 164 packets lost")' "$TMP/h1.json" >/dev/null &&
    pass || fail "record --listen: /healthz after drops answered $code $(cat "$TMP/h1.json")"
code=$(curl -sS -m 10 -o "$TMP/h2.json" -w '%{http_code}' "$R/healthz")
[ "$code" = 200 ] && pass || fail "record --listen: /healthz with no new drops answered $code $(cat "$TMP/h2.json")"

# every family of both /metrics is in docs/metrics.md
: "${SRC:?SRC must name the source tree}"
sed -n 's/^| `\(flowscope_[a-z_]*\)`.*/\1/p' "$SRC/docs/metrics.md" | sort -u >"$TMP/doc"
sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' "$TMP/serve.prom" "$TMP/live.prom" | sort -u >"$TMP/fam"
undocumented=$(comm -23 "$TMP/fam" "$TMP/doc" | tr '\n' ' ')
[ -z "$undocumented" ] && pass || fail "/metrics families not in docs/metrics.md: $undocumented"

# ---- a real Prometheus scrapes the recorder ---------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: flowscope
    static_configs:
      - targets: ['${R#http://}']
EOF
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
    --web.listen-address="127.0.0.1:$PORT" >"$TMP/prom.log" 2>&1 7>&- &
PIDS+=($!)
P="http://127.0.0.1:$PORT"
# promql QUERY: the value of the query's single sample ("" when none)
promql() {
    curl -sS -m 5 -G "$P/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
        jq -r 'if .status == "success" and (.data.result | length) == 1 then .data.result[0].value[1] else "" end'
}
is() { [ "$(promql "$1")" = "$2" ]; }
poll 600 is 'up{job="flowscope"}' 1 && pass || fail "prometheus: the target never came up: $(tail -3 "$TMP/prom.log")"
Q_PKTS='flowscope_ingest_packets_total{job="flowscope",source="file"}'
Q_DROPS='sum without (reason) (flowscope_ingest_dropped_packets_total{job="flowscope",source="file"})'
poll 300 is "$Q_PKTS" 8978 && pass || fail "prometheus: the packets never appeared: '$(promql "$Q_PKTS")'"

# the end of input: the recorder prints its final report and exits
exec 7>&-
poll 600 eval '! kill -0 $REC 2>/dev/null' || { fail "the recorder did not exit after the FIFO closed"; kill -9 $REC; }
wait $REC
rc=$?
[ $rc -eq 3 ] && pass || fail "record exit $rc (expected 3: packets outside what an archive holds): $(tail -3 "$TMP/rec.err")"
pkts=$(counter "$TMP/rec.err" record ingest.file.packets)
drops=$(counter "$TMP/rec.err" record ingest.file.drops)
# what Prometheus stored last (the series are stale now that the target is gone)
Q_PKTS_LAST="last_over_time(${Q_PKTS}[10m])"
Q_DROPS_LAST='sum without (reason) (last_over_time(flowscope_ingest_dropped_packets_total{job="flowscope",source="file"}[10m]))'
got_pkts=$(promql "$Q_PKTS_LAST")
got_drops=$(promql "$Q_DROPS_LAST")
note "PromQL $Q_PKTS_LAST = $got_pkts; the recorder printed ingest.file.packets=$pkts"
note "PromQL $Q_DROPS_LAST = $got_drops; the recorder printed ingest.file.drops=$drops"
[ -n "$pkts" ] && [ "$got_pkts" = "$pkts" ] && pass || fail "packets: Prometheus '$got_pkts', the recorder '$pkts'"
[ -n "$drops" ] && [ "$drops" = 164 ] && [ "$got_drops" = "$drops" ] && pass ||
    fail "drops: Prometheus '$got_drops', the recorder '$drops'"
finish
