#!/bin/bash
# e2e_extcap: flowscope extcap, Wireshark's external-capture interface (docs/cli.md), with
# Debian's own tshark:
#   - the bare protocol: --extcap-interfaces, --extcap-dlts and --extcap-config print lines of
#     extcap(4)'s grammar, and the options the capture takes;
#   - `tshark -D` lists the interface when the script is in the extcap directory (Debian 12's
#     Wireshark 4.0 reads $HOME/.config/wireshark/extcap beside the system's; it does not
#     honour WIRESHARK_EXTCAP_DIR, so HOME is a directory of the test);
#   - `tshark -i flowscope -o extcap.flowscope.OPTION:VALUE ...` against a `flowscope serve`
#     with mutual TLS writes exactly the packets tcpdump selects from the recorded pcap (every
#     byte and nanosecond, after the file header), ends by itself when the answer is whole, and
#     stops with -c; Wireshark's capture filter is and-ed with the filter option; an archive
#     of raw IP comes as raw IP (the stream's link type, not --extcap-dlts's Ethernet);
#   - --follow against a `record --listen` whose input comes in parts: the packets recorded
#     after the capture began come too, each once, in order; the extcap ends when tshark does,
#     also when it was waiting for new packets (tshark -a duration against serve);
#   - a refusal (an invalid filter) reaches tshark's stderr as the server's message.
# Every wait is bounded; servers listen on 127.0.0.1 with a port they pick.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/certs.sh"
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done'
command -v tshark >/dev/null || skip "no tshark (Makefile's DEB_TEST installs it)"
C=$TMP/certs
server_client_certs || { fail "openssl could not make the certificates"; finish; }

# The extcap script (packaging/flowscope-extcap.in) naming the binary under test runs the
# protocol's commands; in the personal extcap dir tshark runs a wrapper of it that writes the
# process's pid and, once it ended, its exit status (SIGTERM passed on to it).
export HOME=$TMP/home
EXTDIR=$HOME/.config/wireshark/extcap
mkdir -p "$EXTDIR"
sed "s|@FLOWSCOPE_BIN@|$FLOWSCOPE|" "$SRC/packaging/flowscope-extcap.in" >"$TMP/extcap.sh"
chmod +x "$TMP/extcap.sh"
grep -qx "exec \"$FLOWSCOPE\" extcap \"\$@\"" "$TMP/extcap.sh" && pass ||
    fail "packaging/flowscope-extcap.in does not exec @FLOWSCOPE_BIN@ extcap: $(cat "$TMP/extcap.sh")"
cat >"$EXTDIR/flowscope" <<EOF
#!/bin/sh
"$TMP/extcap.sh" "\$@" &
p=\$!
echo \$p >>"$TMP/extcap.pids"
trap 'kill -TERM \$p' TERM INT
wait \$p
rc=\$?
kill -0 \$p 2>/dev/null && { wait \$p; rc=\$?; }
echo "\$rc \$*" >>"$TMP/extcap.status"
exit \$rc
EOF
chmod +x "$EXTDIR/flowscope"
xc() { timeout 300 "$TMP/extcap.sh" "$@"; } # xc ARGS...: flowscope extcap ARGS, by the script

# ---- the protocol --------------------------------------------------------------------------

xc --extcap-interfaces --extcap-version=4.0 >"$TMP/ifs" 2>"$TMP/ifs.err" && pass ||
    fail "--extcap-interfaces: exit $?: $(cat "$TMP/ifs.err")"
grep -qxE 'extcap \{version=[0-9]+\.[0-9]+\.[0-9]+\}(\{[a-z]+=[^{}]*\})*' "$TMP/ifs" && pass ||
    fail "--extcap-interfaces: no 'extcap {version=...}' line: $(cat "$TMP/ifs")"
grep -qxE 'interface \{value=flowscope\}\{display=[^{}]+\}' "$TMP/ifs" && pass ||
    fail "--extcap-interfaces: no 'interface {value=flowscope}{display=...}': $(cat "$TMP/ifs")"
[ "$(wc -l <"$TMP/ifs")" = 2 ] && pass || fail "--extcap-interfaces: not two lines: $(cat "$TMP/ifs")"
xc --extcap-dlts --extcap-interface flowscope >"$TMP/dlts" &&
    [ "$(cat "$TMP/dlts")" = 'dlt {number=1}{name=EN10MB}{display=Ethernet}' ] && pass ||
    fail "--extcap-dlts: $(cat "$TMP/dlts")"
xc --extcap-config --extcap-interface flowscope >"$TMP/config" && pass || fail "--extcap-config: exit $?"
bad=$(grep -vxE 'arg \{number=[0-9]+\}\{call=--[a-z-]+\}\{display=[^{}]+\}\{type=(string|fileselect|boolflag)\}(\{[a-z]+=[^{}]*\})*' "$TMP/config")
[ -z "$bad" ] && [ -s "$TMP/config" ] && pass || fail "--extcap-config: lines off the grammar: $bad"
# numbered 0.., and each option it offers is one the capture takes (its --help names them)
[ "$(sed -E 's/^arg \{number=([0-9]+)\}.*/\1/' "$TMP/config" | tr '\n' ' ')" = "$(seq -s ' ' 0 $(($(wc -l <"$TMP/config") - 1))) " ] &&
    pass || fail "--extcap-config: arg numbers are not 0..n-1: $(cat "$TMP/config")"
for call in $(sed -E 's/.*\{call=(--[a-z-]+)\}.*/\1/' "$TMP/config"); do
    xc --help | grep -q -- "$call" && pass || fail "--extcap-config offers $call, which --help does not name"
done
grep -q '{call=--remote}.*{required=true}' "$TMP/config" && pass || fail "--remote is not required"
xc --extcap-dlts --extcap-interface eth0 >/dev/null 2>"$TMP/e"
[ $? = 2 ] && one_line_error "$TMP/e" "^flowscope extcap: --extcap-interface 'eth0': the interface is flowscope$" ||
    fail "--extcap-interface eth0: not a usage error"
xc --capture --extcap-interface flowscope --fifo "$TMP/nofifo" --remote https://x:1 --follow --to now \
    2>"$TMP/e"
[ $? = 2 ] && one_line_error "$TMP/e" "^flowscope extcap: --follow follows new packets: it has no --to$" ||
    fail "--follow --to: not a usage error"

# ---- tshark lists it -----------------------------------------------------------------------

timeout 120 tshark -D >"$TMP/D" 2>"$TMP/D.err"
grep -qE '^[0-9]+\. flowscope \(flowscope archive' "$TMP/D" && pass ||
    fail "tshark -D does not list flowscope: $(cat "$TMP/D" "$TMP/D.err" | tr '\n' ' ')"

# ---- a server's archive as a capture -------------------------------------------------------

ARCH=$TMP/arch
fs record --read "$PCAPS/http.pcap" --archive "$ARCH" --qq-size 16M --stats-interval 0 2>"$TMP/rec.err" ||
    { fail "record: $(cat "$TMP/rec.err")"; finish; }
"$FLOWSCOPE" serve --archive "$ARCH" --listen 127.0.0.1:0 --tls-cert "$C/server.crt" \
    --tls-key "$C/server.key" --client-ca "$C/ca.crt" >"$TMP/serve.out" 2>"$TMP/serve.err" &
PIDS+=($!)
wait_for "$TMP/serve.out" '^flowscope serve: listening on https://127.0.0.1:[0-9]+$' $! 100 ||
    { fail "serve did not start: $(cat "$TMP/serve.err")"; finish; }
URL=$(sed -n 's/^flowscope serve: listening on //p' "$TMP/serve.out")

# opts URL: tshark's options for the interface's server and certificates
opts() {
    OPTS=(-i flowscope -o "extcap.flowscope.remote:$1" -o "extcap.flowscope.cert:$C/client.crt"
        -o "extcap.flowscope.key:$C/client.key" -o "extcap.flowscope.cacert:$C/ca.crt")
}
# same_packets GOT EXPECTED WHAT: the capture tshark wrote (pcapng) holds EXPECTED's packets
# (a nanosecond pcap): the same records, byte for byte, once converted back to one
same_packets() {
    editcap -F nsecpcap "$1" "$1.pcap" 2>"$TMP/editcap.err" ||
        { fail "$3: editcap: $(cat "$TMP/editcap.err")"; return; }
    if [ "$(npackets "$2")" -gt 0 ] && cmp -s <(tail -c +25 "$1.pcap") <(tail -c +25 "$2"); then pass; else
        fail "$3: $(npackets "$1.pcap") packets captured, tcpdump selects $(npackets "$2"); they differ"
    fi
}
# capture WHAT TSHARK-OPTIONS...: tshark with the interface into $TMP/got.pcapng; its status
capture() {
    local what=$1
    shift
    rm -f "$TMP/got.pcapng"*
    timeout 120 tshark "${OPTS[@]}" "$@" -w "$TMP/got.pcapng" >"$TMP/tshark.out" 2>"$TMP/tshark.err"
}
opts "$URL"

for filter in '' 'tcp port 80' 'tcp[tcpflags] & tcp-syn != 0'; do
    oracle "$PCAPS/http.pcap" "$TMP/exp.pcap" ${filter:+"$filter"}
    if [ -z "$filter" ]; then capture all; else capture "$filter" -o "extcap.flowscope.filter:$filter"; fi
    s=$?
    [ $s = 0 ] && pass || fail "'$filter': tshark exit $s: $(tail -3 "$TMP/tshark.err")"
    same_packets "$TMP/got.pcapng" "$TMP/exp.pcap" "filter '$filter'"
done

# a range and Wireshark's capture filter (-f), and-ed with the option's; -c stops it early
t0=$(tcpdump -tt -nn --time-stamp-precision=nano -r "$PCAPS/http.pcap" -c 100 2>/dev/null | tail -1 | cut -d' ' -f1)
t1=$(tcpdump -tt -nn --time-stamp-precision=nano -r "$PCAPS/http.pcap" -c 5000 2>/dev/null | tail -1 | cut -d' ' -f1)
oracle "$PCAPS/http.pcap" "$TMP/all80.pcap" "tcp port 80 and tcp[tcpflags] & tcp-push != 0"
fs query --archive "$ARCH" --from "$t0" --to "$t1" -w "$TMP/exp.pcap" "tcp port 80 and tcp[tcpflags] & tcp-push != 0" 2>/dev/null
capture range -o "extcap.flowscope.filter:tcp port 80" -o "extcap.flowscope.from:$t0" \
    -o "extcap.flowscope.to:$t1" -f "tcp[tcpflags] & tcp-push != 0"
[ $? = 0 ] && pass || fail "range and capture filter: tshark: $(tail -3 "$TMP/tshark.err")"
[ "$(npackets "$TMP/exp.pcap")" -lt "$(npackets "$TMP/all80.pcap")" ] && pass ||
    fail "the range selects no fewer packets than the whole archive: not a test of --from/--to"
same_packets "$TMP/got.pcapng" "$TMP/exp.pcap" "--from/--to and -f"
oracle "$PCAPS/http.pcap" "$TMP/exp.pcap" -c 25 "tcp port 80"
capture -c25 -o "extcap.flowscope.filter:tcp port 80" -c 25
[ $? = 0 ] && pass || fail "-c 25: tshark: $(tail -3 "$TMP/tshark.err")"
same_packets "$TMP/got.pcapng" "$TMP/exp.pcap" "-c 25"

# by hand, a reader that takes 1000 bytes and closes the FIFO: the extcap ends with 0, silent
mkfifo "$TMP/fifo"
oracle "$PCAPS/http.pcap" "$TMP/all.pcap"
xc --capture --extcap-interface flowscope --fifo "$TMP/fifo" --remote "$URL" --cert "$C/client.crt" \
    --key "$C/client.key" --cacert "$C/ca.crt" 2>"$TMP/epipe.err" &
XPID=$!
head -c 1000 "$TMP/fifo" >"$TMP/head.out"
wait "$XPID"
s=$?
[ $s = 0 ] && [ ! -s "$TMP/epipe.err" ] && cmp -s "$TMP/head.out" <(head -c 1000 "$TMP/all.pcap") && pass ||
    fail "a FIFO closed after 1000 bytes: extcap exit $s: $(cat "$TMP/epipe.err")"

# the server's refusal is what tshark shows
capture invalid -o "extcap.flowscope.filter:tcp port 99999"
grep -q 'port 99999' "$TMP/tshark.err" && pass ||
    fail "an invalid filter: tshark's stderr does not carry the server's message: $(cat "$TMP/tshark.err")"

# --follow with nothing new to follow: tshark's -a duration stops the capture, and the extcap
# (waiting between queries, writing nothing) sees its FIFO closed and ends
capture follow-idle -o extcap.flowscope.follow:true -a duration:2
[ $? = 0 ] && pass || fail "--follow, -a duration:2: tshark: $(tail -3 "$TMP/tshark.err")"
oracle "$PCAPS/http.pcap" "$TMP/exp.pcap"
same_packets "$TMP/got.pcapng" "$TMP/exp.pcap" "--follow on serve, -a duration:2"

# another link type: --extcap-dlts says Ethernet, the stream's file header says raw IP (DLT
# 101), and tshark decodes it as such (dns_icmp.pcap's IPv4 packets without Ethernet headers)
python3 - "$PCAPS/dns_icmp.pcap" "$TMP/raw.pcap" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
out = bytearray(d[:20] + struct.pack("<I", 101))
i = 24
while i + 16 <= len(d):
    s, u, cl, ol = struct.unpack("<IIII", d[i:i + 16])
    p = d[i + 16:i + 16 + cl]
    i += 16 + cl
    if p[12:14] == b"\x08\x00":
        out += struct.pack("<IIII", s, u, cl - 14, ol - 14) + p[14:]
open(sys.argv[2], "wb").write(out)
EOF
fs record --read "$TMP/raw.pcap" --archive "$TMP/rawarch" --qq-size 16M --stats-interval 0 2>"$TMP/rec.err" ||
    fail "record raw IP: $(cat "$TMP/rec.err")"
"$FLOWSCOPE" serve --archive "$TMP/rawarch" --listen 127.0.0.1:0 --tls-cert "$C/server.crt" \
    --tls-key "$C/server.key" --client-ca "$C/ca.crt" >"$TMP/serve2.out" 2>"$TMP/serve2.err" &
PIDS+=($!)
if wait_for "$TMP/serve2.out" '^flowscope serve: listening on https://127.0.0.1:[0-9]+$' $! 100; then
    opts "$(sed -n 's/^flowscope serve: listening on //p' "$TMP/serve2.out")"
    capture rawip
    oracle "$TMP/raw.pcap" "$TMP/exp.pcap"
    capinfos -E "$TMP/got.pcapng" | grep -q 'Raw IP$' && pass ||
        fail "a raw IP archive: tshark's capture is $(capinfos -E "$TMP/got.pcapng" | tail -1)"
    same_packets "$TMP/got.pcapng" "$TMP/exp.pcap" "a raw IP archive"
    opts "$URL"
else
    fail "the second serve did not start: $(cat "$TMP/serve2.err")"
fi

# every extcap process ended with its capture (within 10 s)
ended() {
    local p i
    for p in $(cat "$TMP/extcap.pids"); do
        for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && fail "$1: extcap process $p outlived its capture"
    done
    pass
}
ended "the captures from serve"
# each capture's extcap ended with status 0 (the answer whole, tshark's -c or -a: EPIPE, the
# FIFO closed, SIGTERM), the refused one with 2
grep -c -- ' --capture ' "$TMP/extcap.status" | grep -qx 8 && pass ||
    fail "not 8 captures from serve: $(cat "$TMP/extcap.status")"
bad=$(grep -- ' --capture ' "$TMP/extcap.status" | grep -v '^0 ' | grep -v '^2 .*port 99999')
[ -z "$bad" ] && grep -q '^2 .*port 99999' "$TMP/extcap.status" && pass ||
    fail "extcap exit statuses: $bad $(grep 'port 99999' "$TMP/extcap.status")"
: >"$TMP/extcap.status"

# ---- --follow: a recorder fed in three parts -----------------------------------------------
# Part 1 is recorded and committed before the capture starts; parts 2 and 3 come after the
# extcap's first two queries (a follow query found nothing new).  Part 3, the whole pcap again
# 10 s later, makes the recorder commit the end of part 2 (a frame is committed as the next
# comes); tshark -c takes exactly http.pcap's packets: all of parts 1 and 2, each once.
editcap -F pcap -r "$PCAPS/http.pcap" "$TMP/p1.pcap" 1-4000 &&
    editcap -F pcap -r "$PCAPS/http.pcap" "$TMP/p2.pcap" 4001-100000 &&
    editcap -F pcap -t 10 "$PCAPS/http.pcap" "$TMP/p3.pcap" || { fail "editcap"; finish; }
N=$(npackets "$PCAPS/http.pcap")
mkfifo "$TMP/in"
"$FLOWSCOPE" record --read "$TMP/in" --archive "$TMP/live" --dumpers 1 --qq-size 16M \
    --stats-interval 0 --listen 127.0.0.1:0 --tls-cert "$C/server.crt" --tls-key "$C/server.key" \
    --client-ca "$C/ca.crt" 2>"$TMP/live.err" &
RPID=$!
PIDS+=("$RPID")
exec 3>"$TMP/in"
cat "$TMP/p1.pcap" >&3
wait_for "$TMP/live.err" '^flowscope record: API listening on https://127.0.0.1:[0-9]+$' "$RPID" 100 ||
    { fail "record --listen did not start: $(cat "$TMP/live.err")"; finish; }
LURL=$(sed -n 's/^flowscope record: API listening on //p' "$TMP/live.err")
api() {
    timeout 60 curl -sS --cacert "$C/ca.crt" --cert "$C/client.crt" --key "$C/client.key" "$@"
}
queries() { api "$LURL/metrics" | awk '$1 ~ /^flowscope_api_queries_total/ {s += $2} END {print s + 0}'; }
for ((i = 0; i < 100; i++)); do # until part 1's first frames are committed
    api "$LURL/api/v1/query" -o "$TMP/mid.pcap"
    [ "$(npackets "$TMP/mid.pcap")" -gt 0 ] 2>/dev/null && break
    sleep 0.1
done
[ "$(npackets "$TMP/mid.pcap")" -gt 0 ] 2>/dev/null && pass || fail "record --listen committed nothing of part 1"
q0=$(queries)
opts "$LURL"
timeout 120 tshark "${OPTS[@]}" -o extcap.flowscope.follow:true -c "$N" -w "$TMP/follow.pcapng" \
    >"$TMP/tshark.out" 2>"$TMP/tshark.err" &
TPID=$!
PIDS+=("$TPID")
for ((i = 0; i < 300; i++)); do # the first answer and one follow query
    [ "$(queries)" -ge $((q0 + 2)) ] && break
    sleep 0.1
done
[ "$(queries)" -ge $((q0 + 2)) ] && pass || fail "--follow: the extcap did not query again ($(queries) queries)"
tail -c +25 "$TMP/p2.pcap" >&3
tail -c +25 "$TMP/p3.pcap" >&3
if wait "$TPID"; then pass; else fail "--follow: tshark -c $N: exit $?: $(tail -3 "$TMP/tshark.err")"; fi
oracle "$PCAPS/http.pcap" "$TMP/exp.pcap"
same_packets "$TMP/follow.pcapng" "$TMP/exp.pcap" "--follow"
exec 3>&-
wait "$RPID" || fail "record --listen: exit $?: $(tail -2 "$TMP/live.err")"
ended "--follow"
grep -qx "0 --capture .* --follow" "$TMP/extcap.status" && pass ||
    fail "--follow: the extcap's exit status: $(cat "$TMP/extcap.status")"
finish
