#!/bin/bash
# Output formats and merging: pcapng and JSON carry the same packets as the
# pcap output (read back with tcpdump/tshark/jq); --ts micro equals tcpdump's
# microsecond file; limits stop where they say; two recordings whose times
# overlap come out merged in timestamp order (mergecap is the oracle); and a
# pcapng can hold packets of several link types.
. "$(dirname "$0")/lib.sh"
HTTP=$PCAPS/http.pcap
A=$TMP/a
fs record --read "$HTTP" --archive "$A" --qq-size 32M --stats-interval 0 2>/dev/null || fail "record"
F='tcp port 80 or udp'

fs query --archive "$A" -w "$TMP/q.pcap" "$F" 2>/dev/null || fail "query pcap"
fs query --archive "$A" -w "$TMP/q.pcapng" --format pcapng "$F" 2>/dev/null || fail "query pcapng"
# libpcap reads the pcapng back into exactly the pcap output
tcpdump -Z root -r "$TMP/q.pcapng" --time-stamp-precision=nano -w "$TMP/back.pcap" 2>/dev/null
cmp -s "$TMP/q.pcap" "$TMP/back.pcap" && pass || fail "pcapng differs from pcap"
[ "$(tshark -r "$TMP/q.pcapng" 2>/dev/null | wc -l)" = "$(npackets "$TMP/q.pcap")" ] && pass ||
    fail "tshark reads a different number of packets from the pcapng"
capinfos "$TMP/q.pcapng" | grep -q "flowscope query" && pass || fail "the pcapng has no query comment"
capinfos -M "$TMP/q.pcapng" | grep -q "Time resolution = 0x09" && pass || fail "pcapng not in nanoseconds"
# JSON: one object per packet, each line valid JSON
fs query --archive "$A" -w "$TMP/q.json" --format json "$F" 2>/dev/null || fail "query json"
[ "$(wc -l <"$TMP/q.json")" = "$(npackets "$TMP/q.pcap")" ] && pass || fail "JSON lines != packets"
jq -e -c 'select(.time and .ts_ns and .len)' "$TMP/q.json" >/dev/null && pass || fail "JSON lines do not parse"
[ "$(jq -r 'select(.proto == "tcp" and (.sport == 80 or .dport == 80)) | .ts_ns' "$TMP/q.json" | wc -l)" = \
  "$(npackets <(tcpdump -Z root -r "$HTTP" -w - 'tcp port 80' 2>/dev/null))" ] && pass ||
    fail "JSON's tcp port 80 objects do not match tcpdump's count"
# ARP is not IP: docs/cli.md's `ethertype` (and the sender and target addresses as src, dst),
# no proto, ttl or other IP field; tshark is the oracle
fs query --archive "$A" -w "$TMP/arp.json" --format json arp 2>/dev/null || fail "query json arp"
jq -r '[.ts_ns, .ethertype, .src, .dst, (.proto // "-"), (.ttl // "-"), (.arp // "-")] | @tsv' \
    "$TMP/arp.json" >"$TMP/arp.got"
tshark -r "$HTTP" -Y arp -T fields -e frame.time_epoch -e arp.src.proto_ipv4 -e arp.dst.proto_ipv4 \
    2>"$TMP/arp.err" | awk -F'\t' '{ sub(/\./, "", $1); printf "%s\t0x0806\t%s\t%s\t-\t-\t-\n", $1, $2, $3 }' \
    >"$TMP/arp.exp"
[ -s "$TMP/arp.exp" ] && cmp -s "$TMP/arp.exp" "$TMP/arp.got" && pass ||
    fail "JSON of ARP: got '$(head -1 "$TMP/arp.got")' ($(cat "$TMP/arp.json" | head -1)), tshark: '$(head -1 "$TMP/arp.exp")' $(grep -v '^Running as' "$TMP/arp.err")"
# microsecond pcap == tcpdump's own output of the (microsecond) source
fs query --archive "$A" -w "$TMP/us.pcap" --ts micro "$F" 2>/dev/null
tcpdump -Z root -r "$HTTP" -w "$TMP/us-exp.pcap" "$F" 2>/dev/null
cmp -s "$TMP/us.pcap" "$TMP/us-exp.pcap" && pass || fail "--ts micro differs from tcpdump -w"
# limits
[ "$(npackets <(fs query --archive "$A" -w - --limit-packets 10 "$F" 2>/dev/null))" = 10 ] && pass ||
    fail "--limit-packets 10"
# --limit-bytes: the longest whole-packet prefix of the full answer that fits
tcpdump -Z root -r "$HTTP" --time-stamp-precision=nano -w "$TMP/full.pcap" 2>/dev/null
fs query --archive "$A" -w "$TMP/lim.pcap" --limit-bytes 100K 2>"$TMP/lim.err"
size=$(stat -c %s "$TMP/lim.pcap")
next_caplen=$(od -An -tu4 -j $((size + 8)) -N4 "$TMP/full.pcap" | tr -d ' ')
[ "$size" -le 102400 ] && [ $((size + 16 + next_caplen)) -gt 102400 ] && pass ||
    fail "--limit-bytes 100K wrote $size bytes (next packet $next_caplen)"
cmp -s -n "$size" "$TMP/lim.pcap" "$TMP/full.pcap" &&
    pass || fail "--limit-bytes output is not a prefix of the full answer"
grep -q "stopped at the limit after $(npackets "$TMP/lim.pcap") packets, $size bytes; more packets match" \
    "$TMP/lim.err" && pass || fail "--limit-bytes notice: $(cat "$TMP/lim.err")"
fs query --archive "$A" -w "$TMP/lim.json" --format json --limit-bytes 10K 2>/dev/null
fs query --archive "$A" -w "$TMP/full.json" --format json 2>/dev/null
size=$(stat -c %s "$TMP/lim.json")
nl=$(wc -l <"$TMP/lim.json")
next=$(sed -n "$((nl + 1))p" "$TMP/full.json" | wc -c)
[ "$size" -le 10240 ] && [ $((size + next)) -gt 10240 ] && cmp -s -n "$size" "$TMP/lim.json" "$TMP/full.json" &&
    pass || fail "--format json --limit-bytes 10K wrote $size bytes, next line $next"
fs query --archive "$A" -w "$TMP/lim.pcapng" --format pcapng --limit-bytes 50K 2>/dev/null
size=$(stat -c %s "$TMP/lim.pcapng")
[ "$size" -le 51200 ] && [ "$size" -gt $((51200 - 32 - 1600)) ] && tshark -r "$TMP/lim.pcapng" >/dev/null 2>&1 &&
    pass || fail "--format pcapng --limit-bytes 50K wrote $size bytes or a file tshark cannot read"
fs query --archive "$A" -w "$TMP/lim.pcap" --limit-packets 8978 2>"$TMP/lim.err"
[ ! -s "$TMP/lim.err" ] && pass || fail "a limit equal to the answer says more match: $(cat "$TMP/lim.err")"
# a limit below the file's header cannot be kept: refused (exit 2, one line saying the least
# limit), nothing written; that least limit gives the header alone, a valid empty capture
for fmt in pcap pcapng; do
    fs query --archive "$A" -w "$TMP/tiny.$fmt" --format $fmt --limit-bytes 10 2>"$TMP/tiny.err"
    rc=$?
    [ $rc -eq 2 ] && [ ! -e "$TMP/tiny.$fmt" ] && pass ||
        fail "--format $fmt --limit-bytes 10: exit $rc, wrote $(stat -c %s "$TMP/tiny.$fmt" 2>/dev/null) bytes"
    one_line_error "$TMP/tiny.err" "--limit-bytes '10': .*header.*at least [0-9]+ bytes"
    least=$(sed -n 's/.*at least \([0-9]*\) bytes.*/\1/p' "$TMP/tiny.err")
    fs query --archive "$A" -w "$TMP/tiny.$fmt" --format $fmt --limit-bytes "$least" 2>"$TMP/tiny.err"
    [ "$(stat -c %s "$TMP/tiny.$fmt" 2>/dev/null)" = "$least" ] && [ "$(npackets "$TMP/tiny.$fmt")" = 0 ] &&
        grep -q "stopped at the limit after 0 packets, $least bytes" "$TMP/tiny.err" && pass ||
        fail "--format $fmt --limit-bytes $least: $(stat -c %s "$TMP/tiny.$fmt" 2>/dev/null) bytes, $(cat "$TMP/tiny.err")"
done
fs query --archive "$A" -w "$TMP/zero.pcap" --limit-packets 0 2>"$TMP/zero.err"
[ $? -eq 2 ] && [ ! -e "$TMP/zero.pcap" ] && pass || fail "--limit-packets 0 accepted"
one_line_error "$TMP/zero.err" "--limit-packets '0': .*at least 1"

# two recordings whose times overlap: one archive, answers merged by timestamp
DNS=$PCAPS/dns_icmp.pcap
first_http=$(tcpdump -tt -r "$HTTP" -c 1 2>/dev/null | cut -d' ' -f1)
first_dns=$(tcpdump -tt -r "$DNS" -c 1 2>/dev/null | cut -d' ' -f1)
shift=$(awk "BEGIN{printf \"%.6f\", $first_http - $first_dns + 1}")
editcap -t "$shift" "$DNS" "$TMP/dns-shifted.pcap" 2>/dev/null || fail "editcap -t"
fs record --read "$TMP/dns-shifted.pcap" --archive "$A" --qq-size 8M --stats-interval 0 2>/dev/null || fail "record 2"
mergecap -F nsecpcap -w "$TMP/merged.pcap" "$HTTP" "$TMP/dns-shifted.pcap" || fail "mergecap"
oracle "$TMP/merged.pcap" "$TMP/exp.pcap" "udp or icmp or arp or tcp[tcpflags] & tcp-syn != 0"
fs query --archive "$A" -w "$TMP/got.pcap" "udp or icmp or arp or tcp[tcpflags] & tcp-syn != 0" 2>/dev/null
cmp -s "$TMP/exp.pcap" "$TMP/got.pcap" && pass ||
    fail "overlapping recordings are not merged in time order ($(npackets "$TMP/exp.pcap") vs $(npackets "$TMP/got.pcap"))"

# several link types: pcap refuses with a clear line, pcapng holds both
"$RELINK" raw "$DNS" "$TMP/raw.pcap" && fs record --read "$TMP/raw.pcap" --archive "$A" --qq-size 8M --stats-interval 0 2>/dev/null
fs query --archive "$A" -w "$TMP/x.pcap" udp 2>"$TMP/err" && fail "pcap with two link types accepted" || pass
one_line_error "$TMP/err" "several link types .*--format pcapng"
fs query --archive "$A" -w "$TMP/x.pcapng" --format pcapng udp 2>/dev/null || fail "pcapng with two link types"
[ "$(capinfos "$TMP/x.pcapng" | grep -c "Encapsulation = ")" = 2 ] && pass || fail "pcapng should have 2 interfaces"

# -w on something that is not a regular file (a FIFO here; /dev/null alike) is written
# in place, never replaced by a renamed temporary file
mkfifo "$TMP/fifo"
timeout 60 cat "$TMP/fifo" >"$TMP/from-fifo.pcap" &
fs query --archive "$A" -w "$TMP/fifo" "tcp port 80" 2>/dev/null || fail "query -w FIFO"
wait
[ -p "$TMP/fifo" ] && pass || fail "the FIFO was replaced"
oracle "$HTTP" "$TMP/exp.pcap" "tcp port 80"
cmp -s "$TMP/exp.pcap" "$TMP/from-fifo.pcap" && pass || fail "the FIFO's reader got something else"
finish
