#!/bin/bash
# e2e_fleet: `flowscope query --fleet FILE` (docs/fleet.md), tcpdump the oracle.
#   - three sensors: three captures of ../shared/pcaps shifted in time by editcap so that
#     they interleave, each recorded into its own archive and served by its own
#     `flowscope serve` on 127.0.0.1 (two over HTTPS with client certificates from a fleet
#     file's defaults and one sensor's own keys, one over plain HTTP);
#   - for every differential filter of diff_tcpdump.sh, the fleet's answer is byte for byte
#     tcpdump's over `mergecap` of the three inputs (nanosecond timestamps, order); with
#     --from/--to too; pcapng names each packet's sensor (tshark's frame.interface_name);
#   - one sensor stopped: the others' packets (tcpdump's over theirs), a line naming it,
#     exit status 3; all stopped: exit 1; a filter every sensor refuses: exit 2; a bad fleet
#     file: one line naming it, exit 2.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/certs.sh"
load_full_filters
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done'
C=$TMP/certs
server_client_certs || { fail "openssl"; finish; }

# three inputs that interleave in time: dns_icmp.pcap and tcp_anomalies.pcap moved into
# http.pcap's seconds
editcap -t -6.9 "$PCAPS/dns_icmp.pcap" "$TMP/d.pcap" &&
    editcap -t -22.8 "$PCAPS/tcp_anomalies.pcap" "$TMP/t.pcap" &&
    cp "$PCAPS/http.pcap" "$TMP/h.pcap" || { fail "editcap"; finish; }
mergecap -F pcap -w "$TMP/all.pcap" "$TMP/h.pcap" "$TMP/d.pcap" "$TMP/t.pcap" || fail mergecap

# serve NAME [TLS]: records $TMP/NAME.pcap and serves it; its URL in URL_NAME
serve() {
    local tls=()
    fs record --read "$TMP/$1.pcap" --archive "$TMP/a$1" --status-interval 0 2>/dev/null ||
        fail "record $1"
    [ -z "${2:-}" ] || tls=(--tls-cert "$C/server.crt" --tls-key "$C/server.key" --client-ca "$C/ca.crt")
    "$FLOWSCOPE" serve --archive "$TMP/a$1" --listen 127.0.0.1:0 "${tls[@]}" >"$TMP/s$1.out" 2>&1 &
    PIDS+=($!)
    eval "PID_$1=$!"
    wait_for "$TMP/s$1.out" 'listening on' $! 100 || fail "serve $1: $(cat "$TMP/s$1.out")"
    eval "URL_$1=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/s$1.out")"
}
serve h tls
serve d tls
serve t
# the defaults (before any section) serve sensors h and d; d names its own key pair (the same
# files by other paths), t is plain HTTP on loopback
cp "$C/client.crt" "$TMP/d-client.crt" && cp "$C/client.key" "$TMP/d-client.key"
cat >"$TMP/fleet.conf" <<CONF
# three sensors
cert = $C/client.crt
key = $C/client.key
cacert = $C/ca.crt

[sensor h]
url = $URL_h

[sensor d]
url = $URL_d
cert = $TMP/d-client.crt
key = $TMP/d-client.key

[sensor t]
url = $URL_t
CONF

# check FILTER [OPTS...]: the fleet's answer equals tcpdump's over the merged inputs
check() {
    local f=$1
    shift
    fs query --fleet "$TMP/fleet.conf" -w "$TMP/got.pcap" "$@" $f 2>"$TMP/err"
    local rc=$?
    oracle "$TMP/all.pcap" "$TMP/want.pcap" $f
    if [ ! -f "$TMP/want.pcap" ]; then # tcpdump refuses it: so does every sensor
        [ $rc = 2 ] && pass || fail "fleet '$f': tcpdump refuses it, exit $rc (2 expected)"
    elif [ $rc = 0 ] && cmp -s "$TMP/got.pcap" "$TMP/want.pcap"; then pass; else
        fail "fleet '$f' $*: exit $rc, $(npackets "$TMP/got.pcap") packets, tcpdump $(npackets "$TMP/want.pcap"): $(head -2 "$TMP/err")"
    fi
}
for f in "${FULL_FILTERS[@]}"; do check "$f"; done
# a time range across the three: the oracle is tcpdump over editcap's cut of the merged input
t0=$(tshark -r "$TMP/h.pcap" -c 1 -T fields -e frame.time_epoch 2>/dev/null)
from=$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 1 }')
to=$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 3 }')
fs query --fleet "$TMP/fleet.conf" -w "$TMP/got.pcap" --from "$from" --to "$to" 2>"$TMP/err" ||
    fail "fleet --from --to: $(cat "$TMP/err")"
editcap -F nsecpcap -A "$from" -B "$to" "$TMP/all.pcap" "$TMP/cut.pcap" &&
    oracle "$TMP/cut.pcap" "$TMP/want.pcap"
[ "$(npackets "$TMP/want.pcap")" -gt 0 ] && cmp -s "$TMP/got.pcap" "$TMP/want.pcap" && pass ||
    fail "fleet --from --to: $(npackets "$TMP/got.pcap") packets, editcap+tcpdump $(npackets "$TMP/want.pcap")"

# pcapng: an interface per sensor, named after it; the packets are tcpdump's
fs query --fleet "$TMP/fleet.conf" --format pcapng -w "$TMP/got.pcapng" 'udp' 2>"$TMP/err" ||
    fail "fleet pcapng: $(cat "$TMP/err")"
for s in h d t; do
    want=$(tcpdump -r "$TMP/$s.pcap" -w - udp 2>/dev/null | capinfos -c -M - 2>/dev/null | awk '/Number/ {print $NF}')
    got=$(tshark -r "$TMP/got.pcapng" -Y "frame.interface_name == \"$s\"" 2>/dev/null | wc -l)
    [ "$got" = "$want" ] && pass || fail "pcapng: sensor $s has $got UDP packets, tcpdump $want"
done
oracle "$TMP/all.pcap" "$TMP/want.pcap" udp
cmp -s <(tcpdump -nn --time-stamp-precision=nano -r "$TMP/got.pcapng" 2>/dev/null) \
    <(tcpdump -nn --time-stamp-precision=nano -r "$TMP/want.pcap" 2>/dev/null) && pass ||
    fail "pcapng: not tcpdump's packets"

# a filter every sensor refuses: exit 2, one line per sensor
fs query --fleet "$TMP/fleet.conf" -w "$TMP/got.pcap" 'tcp port' 2>"$TMP/err"
[ $? = 2 ] && [ "$(grep -c 'syntax error.*HTTP 400' "$TMP/err")" = 3 ] && pass ||
    fail "a bad filter: $(cat "$TMP/err")"

# one sensor stopped: the others' packets, a line naming it, exit 3
kill "$PID_d"
wait "$PID_d" 2>/dev/null
fs query --fleet "$TMP/fleet.conf" -w "$TMP/got.pcap" tcp 2>"$TMP/err"
rc=$?
mergecap -F pcap -w - "$TMP/h.pcap" "$TMP/t.pcap" | tcpdump -r - --time-stamp-precision=nano \
    -w "$TMP/want.pcap" tcp 2>/dev/null
[ $rc = 3 ] && cmp -s "$TMP/got.pcap" "$TMP/want.pcap" && pass ||
    fail "sensor d stopped: exit $rc (3 expected), $(npackets "$TMP/got.pcap") packets, tcpdump over h and t $(npackets "$TMP/want.pcap")"
one_line_error "$TMP/err" "^flowscope query: sensor d: $URL_d: .*: the answer is partial"
kill "$PID_h" "$PID_t"
wait "$PID_h" "$PID_t" 2>/dev/null
fs query --fleet "$TMP/fleet.conf" -w "$TMP/none.pcap" tcp 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$TMP/err")" = 3 ] && [ ! -e "$TMP/none.pcap" ] && pass ||
    fail "every sensor stopped: exit $rc (1 expected): $(cat "$TMP/err")"

# bad fleet files: one line naming the file, exit 2
printf '[sensor x]\nurl = http://127.0.0.1:1\nport = 3\n' >"$TMP/bad1.conf"
printf 'url = http://127.0.0.1:1\n' >"$TMP/bad2.conf"
printf '[sensors]\nurl = http://127.0.0.1:1\n' >"$TMP/bad3.conf"
printf '# nothing\n' >"$TMP/bad4.conf"
printf '[sensor x]\ncert = /c\n' >"$TMP/bad5.conf"
for i in 1 2 3 4 5; do
    fs query --fleet "$TMP/bad$i.conf" -w "$TMP/x.pcap" 2>"$TMP/err"
    rc=$?
    [ $rc = 2 ] && pass || fail "bad fleet file $i: exit $rc, expected 2"
    one_line_error "$TMP/err" "^flowscope query: $TMP/bad$i.conf: "
done
fs query --fleet "$TMP/nowhere.conf" -w "$TMP/x.pcap" 2>"$TMP/err"
[ $? = 1 ] && pass || fail "a missing fleet file: not exit 1"
one_line_error "$TMP/err" "^flowscope query: cannot read the fleet file $TMP/nowhere.conf: "
fs query --fleet "$TMP/fleet.conf" --archive "$TMP/ah" -w "$TMP/x.pcap" 2>"$TMP/err"
[ $? = 2 ] && pass || fail "--fleet with --archive: not exit 2"
finish
