#!/bin/bash
# API benchmark: the same queries locally (`flowscope query -w -`) and over
# HTTPS with a client certificate (curl, and `flowscope query --remote`) on
# one archive of `flowscope gen` traffic (bench_data.sh: a real capture laid
# into the middle): a 5-tuple, a host, and a large answer (every TCP packet);
# median of 5 runs each, in the same run.  Columns: milliseconds; the added
# latency per query over HTTPS; throughput of the large answer over HTTPS as
# a share of local.  A ceiling row: the large answer as a static file over
# TLS (openssl s_server), what the transport alone costs here.  Then 32
# clients at once asking for the large answer (aggregate MB/s) beside one;
# last, `record --read` flat out with --listen, alone and with 8 clients
# querying it all along.  A benchmark, not a test: it prints, never judges
# (issue 16's goals: <= 5 ms added, >= 80 % throughput).
#
#   tools/bench/api_bench.sh [BUILD_DIR] [SIZE]      (default build/, 1G)
set -u
BUILD=${1:-build}
SIZE=${2:-1G}
FS=$BUILD/tools/flowscope
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
. "$(dirname "$0")/bench_data.sh"
W=$(mktemp -d)
SPID= OPID=
# (the bench's own shell only: a job signalled before its exec runs the EXIT trap too)
trap '[ "$BASHPID" != "$$" ] || { [ -z "$SPID" ] || kill "$SPID"; [ -z "$OPID" ] || kill "$OPID" 2>/dev/null; rm -rf "$W"; }' EXIT

bench_dataset "$SIZE" || { echo "dataset $SIZE failed" >&2; exit 1; }

# certificates: a CA, the server's (127.0.0.1) and a client's
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/ca.key" \
    -out "$W/ca.crt" -subj /CN=bench-ca -days 1 2>/dev/null
for n in server client; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/$n.key" \
        -subj "/CN=$n" -out "$W/$n.csr" 2>/dev/null
done
printf 'subjectAltName=IP:127.0.0.1\n' >"$W/server.ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial \
    -out "$W/server.crt" -days 1 -extfile "$W/server.ext" 2>/dev/null
openssl x509 -req -in "$W/client.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial \
    -out "$W/client.crt" -days 1 2>/dev/null

"$FS" serve --archive "$ARCH" --listen 127.0.0.1:0 --tls-cert "$W/server.crt" \
    --tls-key "$W/server.key" --client-ca "$W/ca.crt" --max-queries 40 --max-connections 80 \
    --per-ip-connections 80 >"$W/serve.out" 2>"$W/serve.err" &
SPID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" && break; sleep 0.1; done
URL=$(sed -n 's/^flowscope serve: listening on //p' "$W/serve.out")
[ -n "$URL" ] || { echo "serve did not start: $(cat "$W/serve.err")" >&2; exit 1; }

TLS=(--cacert "$W/ca.crt" --cert "$W/client.crt" --key "$W/client.key")
local_q() { "$FS" query --archive "$ARCH" -w - "$1"; }
curl_q() { curl -s "${TLS[@]}" -G "$URL/api/v1/query" --data-urlencode "filter=$1"; }
remote_q() { "$FS" query --remote "$URL" "${TLS[@]}" -w - "$1"; }

bench_machine api_bench
echo "# $SIZE: archive $(du -sb "$ARCH" | cut -f1) bytes; server: flowscope serve, TLS 1.3, client certificate"
echo "# median of 5 runs each; curl and query --remote write to /dev/null"
printf '%-54s %12s %9s %9s %10s %10s %11s\n' query answer_bytes local_ms curl_ms remote_ms added_ms throughput
row() {
    local name=$1 filter=$2 l c r bytes
    bytes=$(local_q "$filter" 2>/dev/null | wc -c)
    l=$(median_time local_q "$filter")
    c=$(median_time curl_q "$filter")
    r=$(median_time remote_q "$filter")
    printf '%-54s %12s %9.1f %9.1f %10.1f %10.1f %10.0f%%\n' "$name" "$bytes" \
        "$(echo "$l * 1000" | bc -l)" "$(echo "$c * 1000" | bc -l)" "$(echo "$r * 1000" | bc -l)" \
        "$(echo "($c - $l) * 1000" | bc -l)" "$(echo "100 * $l / $c" | bc -l)"
}
row "5-tuple: $Q_FLOW" "$Q_FLOW"
row "host: $Q_HOST" "$Q_HOST"
row "large: tcp" "tcp"

# The transport's own ceiling on this machine: the large answer as a file, served over TLS 1.3
# by openssl s_server (no query, no HTTP library: a static file) to the same curl, client
# and server sharing the machine's cores as above.
local_q tcp >"$W/large.pcap" 2>/dev/null
(cd "$W" && exec openssl s_server -WWW -accept 127.0.0.1:0 -cert server.crt -key server.key \
    >"$W/s_server.out" 2>&1) &
OPID=$!
for _ in $(seq 100); do grep -q ACCEPT "$W/s_server.out" && break; sleep 0.1; done
OURL=https://$(sed -n 's/^ACCEPT //p' "$W/s_server.out")
static_q() { curl -s --cacert "$W/ca.crt" "$OURL/large.pcap"; }
l=$(median_time local_q tcp)
o=$(median_time static_q)
kill "$OPID" 2>/dev/null
OPID=
printf '%-54s %12s %9.1f %9.1f %10s %10.1f %10.0f%%\n' "ceiling: the same bytes from openssl s_server" \
    "$(wc -c <"$W/large.pcap")" "$(echo "$l * 1000" | bc -l)" "$(echo "$o * 1000" | bc -l)" - \
    "$(echo "($o - $l) * 1000" | bc -l)" "$(echo "100 * $l / $o" | bc -l)"

# 32 clients at once, each the large answer
clients() {
    local n=$1 i t0 s
    t0=$(now_s)
    for ((i = 0; i < n; i++)); do curl_q tcp >/dev/null & done
    wait
    s=$(elapsed "$t0")
    echo "$s"
}
bytes=$(local_q tcp 2>/dev/null | wc -c)
printf '%-10s %10s %14s\n' clients seconds aggregate_MB/s
for n in 1 32; do
    s=$(clients "$n")
    printf '%-10s %10s %14.1f\n' "$n" "$s" "$(echo "$n * $bytes / $s / 1000000" | bc -l)"
done

# The recorder under queries: `record --read` of the dataset's capture flat out (--capture
# all, one dumper) with --listen, alone, then with 8 clients asking for a host's packets over
# HTTPS in a loop from the archive it writes, as fast as they can: the record's seconds, and
# the queries answered meanwhile.  The API's threads run at nice 19, so on a busy machine they
# take what the recorder leaves; the clients too (nice 19: in the field they are elsewhere).
record_under() {
    local clients=$1 t0 s i n=0 rpid url arch=$W/rec.arch loops=()
    rm -rf "$arch" "$W/rec.err" "$W"/loop.*
    t0=$(now_s)
    "$FS" record --read "$PCAP" --archive "$arch" --capture all --dumpers 1 --stats-interval 0 \
        --listen 127.0.0.1:0 --tls-cert "$W/server.crt" --tls-key "$W/server.key" \
        --client-ca "$W/ca.crt" --max-queries 16 2>"$W/rec.err" &
    rpid=$!
    for _ in $(seq 100); do grep -q 'API listening' "$W/rec.err" && break; sleep 0.05; done
    url=$(sed -n 's/^flowscope record: API listening on //p' "$W/rec.err")
    for ((i = 0; i < clients; i++)); do
        (while kill -0 "$rpid" 2>/dev/null; do
            nice -n 19 curl -s "${TLS[@]}" -G "$url/api/v1/query" --data-urlencode "filter=$Q_HOST" \
                -o /dev/null -w '%{http_code}\n'
        done >"$W/loop.$i") &
        loops+=($!)
    done
    wait "$rpid"
    s=$(elapsed "$t0")
    [ "$clients" = 0 ] || wait "${loops[@]}"
    for ((i = 0; i < clients; i++)); do n=$((n + $(grep -c '^200$' "$W/loop.$i"))); done
    printf '%-10s %10s %14s\n' "$clients" "$s" "$n"
}
echo "# record --read of the capture ($(stat -c %s "$PCAP") bytes), flat out, with --listen"
printf '%-10s %10s %14s\n' clients seconds queries_200
record_under 0
record_under 8
