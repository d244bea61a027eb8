#!/bin/bash
# Web view benchmark (docs/web.md; issue 18's goal: the timeline and the flows table usable
# within 1 s on a 10 GB archive): `flowscope serve` on a bench_data.sh archive of SIZE, then
#   - the server's time for each API call the views make (curl's total time, median of 5:
#     the timeline, the triggered flows it marks, a flows page by time and by bytes deep in,
#     the flows summary, a filtered page, info);
#   - Debian's chromium (puppeteer-core, from tests/e2e/web/package-lock.json, `npm ci` into
#     BUILD_DIR/web-node as e2e_web does) opening the timeline and the flows views with an
#     empty cache: milliseconds to the view drawn (its data fetched and shown), median of 5.
# A benchmark, not a test: it prints, never judges.
#
#   tools/bench/web_bench.sh [BUILD_DIR] [SIZE]      (default build/, 1G; the goal is at 10G)
set -u
BUILD=${1:-build}
SIZE=${2:-1G}
FS=$BUILD/tools/flowscope
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$FS" ] || { echo "build first (make)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "no chromium (make deps)" >&2; exit 1; }
. "$HERE/bench_data.sh"
W=$(mktemp -d)
SPID=
# (the bench's own shell only: a job signalled before its exec runs the EXIT trap too)
trap '[ "$BASHPID" != "$$" ] || { [ -z "$SPID" ] || kill "$SPID"; rm -rf "$W"; }' EXIT

NODE_DIR=$BUILD/web-node
LOCK=$HERE/../../tests/e2e/web/package-lock.json
if ! cmp -s "$LOCK" "$NODE_DIR/package-lock.json" || [ ! -d "$NODE_DIR/node_modules/puppeteer-core" ]; then
    rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR" && cp "$LOCK" "${LOCK%-lock.json}.json" "$NODE_DIR/" &&
        (cd "$NODE_DIR" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts \
            >/dev/null) || { echo "npm ci failed" >&2; exit 1; }
fi
cp "$HERE/web_bench.mjs" "$NODE_DIR/"

bench_dataset "$SIZE" || { echo "dataset $SIZE failed" >&2; exit 1; }
"$FS" serve --archive "$ARCH" --listen 127.0.0.1:0 >"$W/serve.out" 2>"$W/serve.err" &
SPID=$!
for ((i = 0; i < 100; i++)); do grep -qs listening "$W/serve.out" && break; sleep 0.1; done
URL=$(sed -n 's/^flowscope serve: listening on //p' "$W/serve.out")
[ -n "$URL" ] || { echo "serve did not start: $(cat "$W/serve.err")" >&2; exit 1; }
INFO=$(curl -s "$URL/api/v1/info")
FLOWS=$(curl -s -D - -o /dev/null "$URL/api/v1/flows?limit=1" | tr -d '\r' | sed -n 's/^X-Flowscope-Flows-Total: //p')
bench_machine web_bench
echo "# web_bench: $SIZE archive: $(jq -r .packets <<<"$INFO") packets, $FLOWS flows, $(jq -r .frames <<<"$INFO") frames, $(jq -r .segments <<<"$INFO") segments (recorded in ${RECORD_SECS}s)"

echo "## the server, per API call (curl, median of 5)"
for call in "api/v1/timeline?buckets=300" "api/v1/flows?triggered=true&limit=2000" \
    "api/v1/flows?sort=time&limit=100" "api/v1/flows?sort=bytes&offset=10000&limit=100" \
    "api/v1/flows/summary" "api/v1/flows?sort=time&limit=100&filter=udp" \
    "api/v1/flows/summary?filter=udp" "api/v1/info"; do
    ts=()
    for i in 1 2 3 4 5 6; do ts+=("$(curl -s -o /dev/null -w '%{time_total}' "$URL/$call")"); done
    printf '%-52s %8.1f ms\n' "$call" "$(printf '%s\n' "${ts[@]:1}" | sort -n | sed -n 3p | awk '{print $1 * 1000}')"
done

echo "## the browser: navigation to the view drawn (chromium, empty cache)"
(cd "$NODE_DIR" && timeout 900 node web_bench.mjs "$URL" 5)
