#!/bin/bash
# record --ipfix against real collectors: nfdump's nfcapd (and pmacct's nfacctd when it is
# installed) receive the recorder's IPFIX export on 127.0.0.1; every flow's packets and bytes
# per direction, summed over its records (active and idle timeouts, evictions split a flow
# into several), must equal what `flowscope flows --json` says of the same recording, and
# nfdump's first/last times the flow's (to the millisecond nfdump keeps).  Also: a bad
# --ipfix value is one line and status 2; a collector that is not there costs counted send
# errors, never the recording.
. "$(dirname "$0")/lib.sh"

command -v nfcapd >/dev/null && command -v nfdump >/dev/null || skip "nfdump (nfcapd) not installed"

COLLECTOR=""
at_exit '[ -n "$COLLECTOR" ] && kill "$COLLECTOR" 2>/dev/null'

# free_port: a UDP port nothing is bound to on 127.0.0.1 now
free_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_bound PORT: until something listens on 127.0.0.1:PORT/udp (~10 s bound)
wait_bound() {
    local i
    for ((i = 0; i < 100; i++)); do
        ss -Hlun "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# stop_collector: SIGTERM (nfcapd and nfacctd write out what they hold), waited for ~10 s
stop_collector() {
    [ -n "$COLLECTOR" ] || return 0
    stop_pid "$COLLECTOR"
    COLLECTOR=""
}

# start_nfcapd DIR PORT [HOST [OPTION]]: nfcapd on HOST (default 127.0.0.1)
start_nfcapd() {
    local host=${3:-127.0.0.1} six="" opt=${4:-}
    [[ "$host" == *:* ]] && six=-6
    mkdir -p "$1"
    # -B: a socket buffer for the bursts of a file read flat out (the kernel caps it at
    # net.core.rmem_max); UDP loses what does not fit, and nfcapd counts sequence errors
    # shellcheck disable=SC2086 # options or none
    nfcapd $six $opt -b "$host" -p "$2" -w "$1" -B 4194304 >"$1.log" 2>&1 &
    COLLECTOR=$!
    wait_bound "$2" || { fail "nfcapd did not bind $host port $2: $(head -c 300 "$1.log")"; return 1; }
}

# same FLOWS_JSON COLLECTOR_CSV KIND: 0 when, per direction (proto, src, sport, dst, dport,
# outer VLAN), the packets and bytes are equal; KIND nfdump also compares the times.  Says
# what differs on stderr.
same() {
    python3 - "$1" "$2" "$3" <<'EOF'
import csv, json, sys
PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "sctp": 132, "ipv6-icmp": 58}
def proto(p):
    p = p.strip().lower()
    return int(p[5:]) if p.startswith("proto") else PROTO[p] if p in PROTO else int(p)
def flow(k):  # a direction's key -> its flow's (both directions: the times are the flow's)
    a, b = (k[1], k[2]), (k[3], k[4])
    return (k[0], min(a, b), max(a, b), k[5])
def ep(s):  # "10.0.0.1:80" or "[fe80::1]:0"
    h, _, port = s.rpartition(":")
    return h.strip("[]"), int(port)
want, times = {}, {}
for line in open(sys.argv[1]):
    f = json.loads(line)
    (a, pa), (b, pb) = ep(f["a"]), ep(f["b"])
    for src, sp, dst, dp, d in ((a, pa, b, pb, "ab"), (b, pb, a, pa, "ba")):
        if f["packets_" + d]:
            k = (proto(f["proto"]), src, sp, dst, dp, f["vlan"])
            w = want.setdefault(k, [0, 0])
            w[0] += f["packets_" + d]
            w[1] += f["bytes_" + d]
            times.setdefault(flow(k), []).append((f["first"], f["last"]))
got, seen = {}, {}
kind = sys.argv[3]
with open(sys.argv[2]) as fh:
    rows = list(csv.reader(fh))
if kind == "nfdump":  # nfdump -6 -N -o fmt: TS|TE|PROTO|SA|SP|DA|DP|PKT|BYT|SVLN
    for r in rows:
        r = [x.strip() for x in "|".join(r).split("|")]
        if len(r) != 10 or not r[7].isdigit():
            continue
        k = (proto(r[2]), r[3], int(r[4]), r[5], int(float(r[6])), int(r[9]))
        g = got.setdefault(k, [0, 0])
        g[0] += int(r[7])
        g[1] += int(r[8])
        s = seen.setdefault(flow(k), [r[0], r[1]])
        s[0], s[1] = min(s[0], r[0]), max(s[1], r[1])
else:  # nfacctd's print plugin, csv: VLAN,SRC_IP,DST_IP,SRC_PORT,DST_PORT,PROTOCOL,PACKETS,BYTES
    head = [h.strip() for h in rows[0]]
    col = {n: i for i, n in enumerate(head)}
    for r in rows[1:]:
        if len(r) != len(head):
            continue
        k = (proto(r[col["PROTOCOL"]]), r[col["SRC_IP"]], int(r[col["SRC_PORT"]]),
             r[col["DST_IP"]], int(r[col["DST_PORT"]]), int(r[col["VLAN"]]))
        g = got.setdefault(k, [0, 0])
        g[0] += int(r[col["PACKETS"]])
        g[1] += int(r[col["BYTES"]])
bad = 0
for k in sorted(set(want) | set(got), key=str):
    if want.get(k) != got.get(k):
        bad += 1
        if bad <= 10:
            print("  %s: flows --json %s, collector %s" % (k, want.get(k), got.get(k)), file=sys.stderr)
for k, (ts, te) in seen.items():  # nfdump: "2026-11-27 05:29:34.521", ms cut
    first = min(t[0] for t in times.get(k, [("", "")]))
    last = max(t[1] for t in times.get(k, [("", "")]))
    if first.replace("T", " ")[:23] != ts or last.replace("T", " ")[:23] != te:
        bad += 1
        if bad <= 10:
            print("  %s: times %s .. %s, nfdump %s .. %s" % (k, first, last, ts, te), file=sys.stderr)
print("%d directions, %d differ" % (len(want), bad), file=sys.stderr)
sys.exit(bad != 0 or not want)
EOF
}

# compare NAME FLOWS_JSON COLLECTOR_CSV KIND: same, a check
compare() {
    same "$2" "$3" "$4" && pass || fail "$1: the collector's flows differ from flows --json"
}

# drained PORT: until the collector on PORT has read every datagram its socket holds (Recv-Q
# 0; ~10 s bound): what the recorder sent before it exited is in the collector, not in the
# kernel, when the collector is stopped
drained() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(ss -Hlun "sport = :$1" | awk '{ q += $2 } END { print q + 0 }')" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# through_nfcapd NAME PCAP [record options...]: record PCAP with --ipfix to a fresh nfcapd
# (on $COLLECTOR_HOST, default 127.0.0.1), then compare; leaves the report in $TMP/NAME.err
through_nfcapd() {
    local name=$1 pcap=$2 port host=${COLLECTOR_HOST:-127.0.0.1} target
    shift 2
    port=$(free_port)
    target="$host:$port"
    [[ "$host" == *:* ]] && target="[$host]:$port"
    start_nfcapd "$TMP/$name.nf" "$port" "$host" || return 1
    TZ=UTC fs record --read "$pcap" --archive "$TMP/$name.a" --qq-size 32M --status-interval 0 \
        --ipfix "$target" "$@" 2>"$TMP/$name.err" || { fail "$name: record: $(tail -3 "$TMP/$name.err")"; stop_collector; return 1; }
    drained "$port" || fail "$name: nfcapd did not read what it was sent"
    stop_collector
    grep -q "Sequence Errors: 0," "$TMP/$name.nf.log" && pass ||
        fail "$name: nfcapd lost messages: $(grep -o 'Flows:.*' "$TMP/$name.nf.log")"
    TZ=UTC nfdump -R "$TMP/$name.nf" -6 -q -N -o "fmt:%ts|%te|%pr|%sa|%sp|%da|%dp|%pkt|%byt|%svln" \
        >"$TMP/$name.csv" 2>"$TMP/$name.nfdump.err" ||
        { fail "$name: nfdump: $(head -c 300 "$TMP/$name.nfdump.err")"; return 1; }
    fs flows --archive "$TMP/$name.a" --json >"$TMP/$name.json" || { fail "$name: flows"; return 1; }
    [ "$(counter "$TMP/$name.err" record ipfix.send_errors)" = 0 ] && pass ||
        fail "$name: send errors: $(grep ipfix "$TMP/$name.err")"
    compare "$name" "$TMP/$name.json" "$TMP/$name.csv" nfdump
}

# 1. real captures, default timeouts: one record per direction (the files are short)
for f in http dns_icmp mixed_vlan; do
    through_nfcapd "$f" "$PCAPS/$f.pcap"
done
n=$(counter "$TMP/http.err" record ipfix.records)
d=$(wc -l <"$TMP/http.json")
[ -n "$n" ] && [ "$n" -ge "$d" ] && pass || fail "http: ipfix.records=$n for $d flows"
[ "$(counter "$TMP/http.err" record ipfix.templates)" -ge 2 ] && pass || fail "http: no templates counted"

# the collector at an IPv6 address
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null; then
    COLLECTOR_HOST=::1 through_nfcapd v6collector "$PCAPS/dns_icmp.pcap"
else
    note "no ::1 here: the IPv6 collector address is not checked"
fi

# 2. timeouts: a 21 s capture with 2 s active and 1 s idle timeouts splits flows into more
#    records (capture time: the file is read flat out), the sums stay
through_nfcapd tcp_anom "$PCAPS/tcp_anomalies.pcap" --ipfix-active-timeout 2s \
    --ipfix-idle-timeout 1s
n=$(counter "$TMP/tcp_anom.err" record ipfix.records)
m=$(python3 -c 'import json, sys
print(sum((json.loads(l)["packets_ab"] > 0) + (json.loads(l)["packets_ba"] > 0) for l in open(sys.argv[1])))' "$TMP/tcp_anom.json")
[ -n "$n" ] && [ "$n" -gt "$m" ] && pass || fail "timeouts: $n records for $m directions: no flow was split"

# 3. evictions: 3000 concurrent flows through tables of 1024 (each flow's records at its
#    eviction, lack of resources, and later ones when it comes back); 2 s of capture at
#    its own pace, or nfcapd could not keep up with the records of 10000 evictions
fs gen -w "$TMP/many.pcap" --flows 3000 --packets 20000 --ipv6 30 --vlan 20 2>/dev/null || fail "gen"
through_nfcapd evict "$TMP/many.pcap" --max-flows 1024 --replay-speed 1
e=$(counter "$TMP/evict.err" record flowtrack.evicted)
[ -n "$e" ] && [ "$e" -gt 0 ] && pass || fail "evict: flowtrack.evicted=$e"

# 4. a bad --ipfix (its form, its port, a name that does not resolve): one line, status 2, no
#    archive made
for v in "127.0.0.1" "127.0.0.1:" "127.0.0.1:0" "127.0.0.1:70000" ":4739" "[::1]4739" "1:2:3:4" \
    "no-such-host.invalid:4739"; do
    fs record --read "$PCAPS/dns_icmp.pcap" --archive "$TMP/bad.a" --ipfix "$v" 2>"$TMP/bad.err"
    rc=$?
    [ "$rc" = 2 ] && pass || fail "--ipfix '$v': status $rc, expected 2"
    one_line_error "$TMP/bad.err" "--ipfix '.*'"
done
fs record --read "$PCAPS/dns_icmp.pcap" --archive "$TMP/bad.a" --ipfix-idle-timeout 5s 2>"$TMP/bad.err"
[ $? = 2 ] && pass || fail "--ipfix-idle-timeout without --ipfix accepted"
one_line_error "$TMP/bad.err" "are for --ipfix"
[ ! -e "$TMP/bad.a" ] && pass || fail "a refused --ipfix left an archive"

# 5. nobody listening: ICMP port unreachable, counted as send errors; the recording is whole
port=$(free_port)
fs record --read "$TMP/many.pcap" --archive "$TMP/nobody.a" --qq-size 32M --status-interval 0 \
    --ipfix "127.0.0.1:$port" 2>"$TMP/nobody.err"
rc=$?
[ "$rc" = 0 ] && pass || fail "no collector: status $rc: $(tail -2 "$TMP/nobody.err")"
se=$(counter "$TMP/nobody.err" record ipfix.send_errors)
[ -n "$se" ] && [ "$se" -gt 0 ] && pass || fail "no collector: ipfix.send_errors=$se"
[ "$(counter "$TMP/nobody.err" record archive.writer.packets)" = 20000 ] && pass ||
    fail "no collector: not every packet archived"

# 6. GET /metrics of a recorder (--listen) while it records: the flowscope_ipfix_* families
port=$(free_port)
fs record --read "$PCAPS/tcp_anomalies.pcap" --replay-speed 4 --archive "$TMP/live.a" \
    --qq-size 32M --status-interval 0 --ipfix "127.0.0.1:$port" --ipfix-idle-timeout 1s \
    --listen 127.0.0.1:0 2>"$TMP/live.err" &
RPID=$!
if wait_for "$TMP/live.err" '^flowscope record: API listening on http://127.0.0.1:[0-9]+$' $RPID 100; then
    URL=$(sed -n 's/^flowscope record: API listening on //p' "$TMP/live.err")
    for name in messages records templates send_errors; do
        v=$(metric "$URL" "flowscope_ipfix_${name}_total")
        [[ "$v" =~ ^[0-9]+$ ]] && pass || fail "/metrics: flowscope_ipfix_${name}_total is '$v'"
    done
    curl -s "$URL/metrics" | grep -q '^# HELP flowscope_ipfix_records_total ' && pass ||
        fail "/metrics: no HELP for flowscope_ipfix_records_total"
else
    fail "the recorder with --listen did not listen: $(tail -3 "$TMP/live.err")"
fi
for ((i = 0; i < 300; i++)); do kill -0 $RPID 2>/dev/null || break; sleep 0.1; done
kill $RPID 2>/dev/null
wait $RPID && pass || fail "record --listen --ipfix: $(tail -2 "$TMP/live.err")"

# 7. a live source (AF_PACKET on a veth pair, root): the wall clock ends idle flows, so their
#    records reach the collector while the recorder still runs; the sums as for a file
if [ "$(id -u)" != 0 ] || ! command -v tcpreplay >/dev/null; then
    note "not root, or no tcpreplay: the live source is not checked"
elif veth_pair ipfx; then
    trap 'ip link del "$A" 2>/dev/null; ip netns del "$NS" 2>/dev/null
          [ -n "$COLLECTOR" ] && kill "$COLLECTOR" 2>/dev/null; rm -rf "$TMP"' EXIT
    port=$(free_port)
    # -E: nfcapd prints each record as it comes
    if start_nfcapd "$TMP/afp.nf" "$port" 127.0.0.1 -E; then
        # (not fs: SIGINT must reach the recorder itself)
        "$FLOWSCOPE" record --afpacket "$A" --archive "$TMP/afp.a" --qq-size 32M --status-interval 1 \
            --ipfix "127.0.0.1:$port" --ipfix-idle-timeout 1s 2>"$TMP/afp.err" &
        RPID=$!
        if wait_for "$TMP/afp.err" ' pkts, ' $RPID 100 && replay afp "$PCAPS/dns_icmp.pcap" $RPID; then
            for ((i = 0; i < 100; i++)); do # idle 1 s, passes once a second: ~2 s
                grep -q '^Flow Record' "$TMP/afp.nf.log" && break
                sleep 0.1
            done
            grep -q '^Flow Record' "$TMP/afp.nf.log" && pass ||
                fail "live: no record reached nfcapd within 10 s of the last packet"
            stop_when_counted afp "$TMP/afp.err" $RPID
            drained "$port" || fail "live: nfcapd did not read what it was sent"
            stop_collector
            TZ=UTC nfdump -R "$TMP/afp.nf" -6 -q -N \
                -o "fmt:%ts|%te|%pr|%sa|%sp|%da|%dp|%pkt|%byt|%svln" >"$TMP/afp.csv" 2>/dev/null
            fs flows --archive "$TMP/afp.a" --json >"$TMP/afp.json" || fail "live: flows"
            compare live "$TMP/afp.json" "$TMP/afp.csv" nfdump
        else
            fail "live: the recorder did not start: $(tail -3 "$TMP/afp.err")"
            kill "$RPID" 2>/dev/null
        fi
    fi
    stop_collector
else
    fail "live: cannot make a veth pair"
fi

# 8. pmacct's nfacctd, print plugin to a CSV file, when installed
if command -v nfacctd >/dev/null; then
    port=$(free_port)
    mkdir -p "$TMP/pm"
    cat >"$TMP/pm/nfacctd.conf" <<EOF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $port
plugins: print[out]
aggregate[out]: vlan, src_host, dst_host, src_port, dst_port, proto
print_output[out]: csv
print_output_file[out]: $TMP/pm/flows.csv
print_refresh_time[out]: 1
EOF
    nfacctd -f "$TMP/pm/nfacctd.conf" >"$TMP/pm/log" 2>&1 &
    COLLECTOR=$!
    # the print plugin runs (it says its cache size) before anything is sent
    if wait_bound "$port" && wait_for "$TMP/pm/log" 'INFO \( out/print \): cache entries=' $COLLECTOR 100; then
        fs record --read "$PCAPS/http.pcap" --archive "$TMP/pm.a" --qq-size 32M \
            --status-interval 0 --ipfix "127.0.0.1:$port" 2>"$TMP/pm.err" || fail "nfacctd: record"
        fs flows --archive "$TMP/pm.a" --json >"$TMP/pm.json" || fail "nfacctd: flows"
        # the plugin writes its file each print_refresh_time (1 s): until it holds them all
        for ((i = 0; i < 300; i++)); do
            [ -s "$TMP/pm/flows.csv" ] && same "$TMP/pm.json" "$TMP/pm/flows.csv" nfacctd 2>/dev/null && break
            sleep 0.1
        done
        stop_collector
        if [ -s "$TMP/pm/flows.csv" ]; then
            compare nfacctd "$TMP/pm.json" "$TMP/pm/flows.csv" nfacctd
        else
            fail "nfacctd wrote nothing: $(tail -5 "$TMP/pm/log")"
        fi
    else
        fail "nfacctd did not bind: $(tail -5 "$TMP/pm/log")"
        stop_collector
    fi
else
    note "nfacctd (pmacct) not installed: only nfcapd checked"
fi

finish
