# e2e_stenoread: Stenographer's client against flowscope serve (docs/api.md, "Stenographer
# compatibility").  stenoread runs curl (through stenocurl, which reads Host, Port and
# CertPath from the JSON config STENOGRAPHER_CONFIG names, and the client certificate, key
# and CA from CertPath) and pipes the answer into tcpdump -r /dev/stdin.  This test runs that
# same curl line (-d QUERY --silent --max-time 890 --show-error, --header Steno-Limit-*),
# over mutual TLS with certificates openssl makes here, against a serve on 127.0.0.1:
#   - the Stenographer queries of steno.sh on each capture: the answer equals, byte for byte,
#     `tcpdump -r` with the hand-written filter (raw, and after stenoread's tcpdump pipe);
#   - before/after in RFC 3339 (editcap -A/-B cut the oracle) and "N m ago" (server clock);
#   - Steno-Limit-Packets/-Bytes: tcpdump -c K's answer, K the most that fit;
#   - a bad query: 400 with the translation's one-line JSON error; a bad limit header: 400;
#     a body over 4096 bytes: 413; GET: 405.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/certs.sh"
HERE=$(dirname "$0")
# api.sh's certificates, server start/stop and curl helper; steno.sh's queries and times
eval "$(sed -n '/^# ---- certificates/,/^# ---- differential/p' "$HERE/api.sh")"
eval "$(sed -n '/^QUERIES=(/,/^)/p;/^ns_to_epoch()/p;/^rfc3339_ns()/p;/^epoch_ns() {/,/^}/p' \
    "$HERE/steno.sh")"
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done'

# steno_config: the layout stenocurl reads: a JSON config and CertPath's three PEM files
steno_config() {
    local port=${URL##*:}
    CP=$TMP/steno-certs
    mkdir -p "$CP"
    cp "$C/client.crt" "$CP/client_cert.pem"
    cp "$C/client.key" "$CP/client_key.pem"
    cp "$C/ca.crt" "$CP/ca_cert.pem"
    jq -n --arg cp "$CP" --argjson port "$port" \
        '{Host: "127.0.0.1", Port: $port, CertPath: $cp}' >"$TMP/steno.config"
}

# stenoread [--limit-packets N] [--limit-bytes N] QUERY OUT: stenoread's curl line, its
# answer kept in OUT.raw and piped, as stenoread does, through tcpdump -r /dev/stdin -s 0
# (written to OUT instead of printed)
stenoread() {
    local headers=() cfg=$TMP/steno.config
    while [ "$1" = --limit-packets ] || [ "$1" = --limit-bytes ]; do
        [ "$1" = --limit-packets ] && headers+=(--header "Steno-Limit-Packets:$2")
        [ "$1" = --limit-bytes ] && headers+=(--header "Steno-Limit-Bytes:$2")
        shift 2
    done
    local q=$1 out=$2 host port certs
    host=$(jq -r .Host <"$cfg") port=$(jq -r .Port <"$cfg") certs=$(jq -r .CertPath <"$cfg")
    rm -f "$out" "$out.raw"
    timeout 120 curl --cert "$certs/client_cert.pem" --key "$certs/client_key.pem" \
        --cacert "$certs/ca_cert.pem" -d "$q" --silent --max-time 890 --show-error \
        "${headers[@]}" "https://$host:$port/query" 2>"$TMP/curl.err" | tee "$out.raw" |
        timeout 120 tcpdump -r /dev/stdin -s 0 -w "$out" 2>/dev/null
}

# check SRC STENO_QUERY HAND_FILTER [ORACLE_INPUT]: stenoread's answer equals tcpdump's for
# HAND_FILTER (on ORACLE_INPUT, default SRC): raw (nanosecond pcap) and through the pipe
check() {
    local src=$1 q=$2 hand=$3 in=${4:-$1} hargs=()
    [ -z "$hand" ] || hargs=("$hand")
    oracle "$in" "$TMP/exp.pcap" "${hargs[@]}" || { fail "tcpdump refuses '$hand'"; return; }
    timeout 300 tcpdump -r "$in" -w "$TMP/exp.us.pcap" "${hargs[@]}" 2>/dev/null
    stenoread "$q" "$TMP/got.pcap"
    if cmp -s "$TMP/exp.pcap" "$TMP/got.pcap.raw" && cmp -s "$TMP/exp.us.pcap" "$TMP/got.pcap"; then
        pass
    else
        fail "$(basename "$src"): '$q' differs from tcpdump '$hand' ($(npackets "$TMP/exp.pcap") vs $(npackets "$TMP/got.pcap.raw") packets): $(head -c 300 "$TMP/got.pcap.raw") $(cat "$TMP/curl.err")"
    fi
}

# check_limit SRC QUERY HAND [--limit-packets N] [--limit-bytes N]: the answer is tcpdump -c K's
# for the largest K whose file fits the byte limit (and K <= the packet limit)
check_limit() {
    local src=$1 q=$2 hand=$3 maxp=0 maxb=0
    shift 3
    [ "$1" = --limit-packets ] && maxp=$2 && shift 2
    [ "${1:-}" = --limit-bytes ] && maxb=$2
    local args=()
    [ "$maxp" = 0 ] || args+=(--limit-packets "$maxp")
    [ "$maxb" = 0 ] || args+=(--limit-bytes "$maxb")
    stenoread "${args[@]}" "$q" "$TMP/got.pcap"
    local k all
    k=$(npackets "$TMP/got.pcap.raw")
    all=$(tcpdump -r "$src" "$hand" 2>/dev/null | wc -l)
    oracle "$src" "$TMP/exp.pcap" -c "$k" "$hand"
    oracle "$src" "$TMP/next.pcap" -c "$((k + 1))" "$hand"
    local fits=1
    [ "$maxp" = 0 ] || [ "$k" -le "$maxp" ] || fits=0
    [ "$maxb" = 0 ] || [ "$(stat -c %s "$TMP/got.pcap.raw")" -le "$maxb" ] || fits=0
    # the next packet would break a limit (or there is none)
    local more=0
    if [ "$k" -lt "$all" ] && { [ "$maxp" = 0 ] || [ "$k" -lt "$maxp" ]; } &&
        { [ "$maxb" = 0 ] || [ "$(stat -c %s "$TMP/next.pcap")" -le "$maxb" ]; }; then
        more=1
    fi
    if [ -n "$k" ] && [ "$fits" = 1 ] && [ "$more" = 0 ] && cmp -s "$TMP/exp.pcap" "$TMP/got.pcap.raw"; then
        pass
    else
        fail "$(basename "$src"): '$q' ${args[*]}: $k packets, $(stat -c %s "$TMP/got.pcap.raw") bytes: not tcpdump -c's longest answer within the limits $(cat "$TMP/curl.err")"
    fi
}

# status_is CODE WHAT [GREP]: api's answer (in $TMP/body) has status CODE and a JSON error
# (matching GREP)
status_is() {
    if [ "$(code)" = "$1" ] && jq -e '.error | type == "string"' "$TMP/body" >/dev/null &&
        grep -q -- "${3:-}" "$TMP/body"; then
        pass
    else fail "$2: status $(code), expected $1 with a JSON error${3:+ naming '$3'}: $(head -c 300 "$TMP/body")"; fi
}

make_certs
for src in "$PCAPS"/{http,dns_icmp,mixed_vlan,tcp_anomalies}.pcap; do
    arch=$TMP/a-$(basename "$src" .pcap)
    fs record --read "$src" --archive "$arch" --stats-interval 0 2>"$TMP/rec.err" ||
        { fail "record $src: $(tail -3 "$TMP/rec.err")"; continue; }
    start_server "$arch"
    steno_config
    for qh in "${QUERIES[@]}"; do
        check "$src" "${qh%% ;; *}" "${qh#* ;; }"
    done
    # times: RFC 3339 (the oracle cut by editcap), and "ago" from the server's clock (the
    # captures are older than a minute)
    n=$(npackets "$src")
    t1=$(epoch_ns "$src" $((n / 4 + 1)))
    t2=$(epoch_ns "$src" $((n * 3 / 4 + 1)))
    editcap -F nsecpcap -A "$(ns_to_epoch "$t1")" -B "$(ns_to_epoch "$t2")" "$src" \
        "$TMP/win.pcap" 2>/dev/null || fail "editcap"
    check "$src" "tcp and (after $(rfc3339_ns "$t1") and before $(rfc3339_ns "$t2"))" \
        "ip proto 6 or ip6 proto 6" "$TMP/win.pcap"
    check "$src" "before 1m ago" ""
    check "$src" "udp and after 1m ago" "udp and less 0" # nothing: a header only
    stop_server
done

# limits: Steno-Limit-Packets, Steno-Limit-Bytes, both, and 0 (no limit, as Stenographer)
src=$PCAPS/http.pcap
start_server "$TMP/a-http"
steno_config
check_limit "$src" "tcp" "tcp" --limit-packets 5
check_limit "$src" "tcp" "tcp" --limit-bytes 2000
check_limit "$src" "port 80" "tcp port 80 or udp port 80" --limit-packets 40 --limit-bytes 5000
check_limit "$src" "port 80" "tcp port 80 or udp port 80" --limit-packets 0

# errors: one JSON line each, with the status that fits
api -d 'host 10.99.1.80 and port 99999' "$URL/query" -o "$TMP/body"
status_is 400 "a bad port" "column 26: expected a port number"
api -d 'port 80 or after 2h ago' "$URL/query" -o "$TMP/body"
status_is 400 "a time under 'or'" "column 12"
api -d 'tcp' --header 'Steno-Limit-Packets:many' "$URL/query" -o "$TMP/body"
status_is 400 "a bad Steno-Limit-Packets" "Steno-Limit-Packets"
head -c 5000 /dev/zero | tr '\0' ' ' >"$TMP/big"
echo tcp >>"$TMP/big"
api --data-binary @"$TMP/big" "$URL/query" -o "$TMP/body"
status_is 413 "a 5001-byte query" "longer than 4096 bytes"
api "$URL/query" -o "$TMP/body"
status_is 405 "GET /query"
# and the server still answers
stenoread "tcp" "$TMP/got.pcap"
oracle "$src" "$TMP/exp.pcap" tcp
if cmp -s "$TMP/exp.pcap" "$TMP/got.pcap.raw"; then pass; else fail "after the errors: 'tcp' differs"; fi
stop_server
finish
