#!/bin/bash
# Segments are standard: every closed segment decompresses with zstdcat into a
# pcap that tcpdump reads; for a one-segment archive that pcap is exactly what
# `tcpdump -r SRC -w -` writes in nanosecond form; the last bytes are a zstd
# seekable-format seek table; rotation splits a capture without losing,
# reordering or changing a packet; every export opens in capinfos and tshark.
. "$(dirname "$0")/lib.sh"

HTTP=$PCAPS/http.pcap

# check_seektable SEG: footer magic, reserved bits, and the sizes it lists add up.
check_seektable() {
    local seg=$1 size n desc fsize sum i off
    size=$(stat -c %s "$seg")
    [ "$(le32 "$seg" -4)" = $((0x8F92EAB1)) ] || { fail "$seg: no seek table footer"; return; }
    n=$(le32 "$seg" -9)
    desc=$(od -An -tu1 -j $((size - 5)) -N1 "$seg" | tr -d ' ')
    [ "$desc" = 0 ] || { fail "$seg: seek table descriptor $desc"; return; }
    fsize=$(( n * 8 + 9 ))
    [ "$(le32 "$seg" $(( size - fsize - 8 )))" = $((0x184D2A5E)) ] || { fail "$seg: no skippable frame magic"; return; }
    [ "$(le32 "$seg" $(( size - fsize - 4 )))" = "$fsize" ] || { fail "$seg: bad seek table frame size"; return; }
    sum=0
    off=$(( size - fsize ))
    for ((i = 0; i < n; i++)); do sum=$(( sum + $(le32 "$seg" $(( off + i * 8 ))) )); done
    [ "$sum" = $(( size - fsize - 8 )) ] && pass || fail "$seg: seek table sizes $sum != frames $(( size - fsize - 8 ))"
}

# one segment (one dumper): byte-identical to tcpdump's nanosecond rewrite of the source
for src in "$HTTP" "$PCAPS/mixed_vlan.pcap" "$PCAPS/public/gopacket/test_loopback.pcap"; do
    a="$TMP/one.$(basename "$src")"
    fs record --read "$src" --archive "$a" --qq-size 16M --stats-interval 0 --dumpers 1 2>/dev/null ||
        fail "record $src"
    segs=("$a"/segments/*.pcap.zst)
    [ ${#segs[@]} = 1 ] && pass || fail "$src: expected one segment, got ${#segs[@]}"
    oracle "$src" "$TMP/exp.pcap"
    zstdcat -q "${segs[0]}" >"$TMP/seg.pcap" && cmp -s "$TMP/exp.pcap" "$TMP/seg.pcap" && pass ||
        fail "$src: zstdcat of the segment differs from tcpdump -r -w"
    zstdcat -q "${segs[0]}" | tcpdump -r - -w /dev/null 2>/dev/null && pass || fail "$src: tcpdump cannot read the segment"
    check_seektable "${segs[0]}"
done

# rotation: 1 MiB segments of http.pcap (~10 MB compressed)
a=$TMP/rot
fs record --read "$HTTP" --archive "$a" --segment-size 1M --qq-size 16M --stats-interval 0 2>/dev/null || fail "record with rotation"
segs=("$a"/segments/*.pcap.zst)
[ ${#segs[@]} -ge 5 ] && pass || fail "expected >= 5 segments, got ${#segs[@]}"
ls "$a"/segments/*.open >/dev/null 2>&1 && fail "an .open segment was left after a clean stop" || pass
total=0
for s in "${segs[@]}"; do
    zstdcat -q "$s" | tcpdump -r - -w "$TMP/part.pcap" 2>/dev/null || fail "$s: tcpdump cannot read it"
    total=$(( total + $(npackets "$TMP/part.pcap") ))
    check_seektable "$s"
done
[ "$total" = "$(npackets "$HTTP")" ] && pass || fail "segments hold $total packets, the source $(npackets "$HTTP")"
oracle "$HTTP" "$TMP/exp.pcap"
fs query --archive "$a" -w "$TMP/all.pcap" 2>/dev/null && cmp -s "$TMP/exp.pcap" "$TMP/all.pcap" && pass ||
    fail "query over rotated segments differs from the source"
oracle "$HTTP" "$TMP/exp.pcap" "host 10.99.1.80 and tcp port 8000"
fs query --archive "$a" -w "$TMP/f.pcap" "host 10.99.1.80 and tcp port 8000" 2>/dev/null && cmp -s "$TMP/exp.pcap" "$TMP/f.pcap" && pass ||
    fail "filtered query over rotated segments differs from tcpdump"
fs info --archive "$a" >"$TMP/info" 2>&1 || fail "info"
grep -q "^segments: *${#segs[@]} (0 open)" "$TMP/info" && grep -q "^packets: *$(npackets "$HTTP")$" "$TMP/info" && pass ||
    fail "info disagrees: $(cat "$TMP/info")"

# --explain names exactly the segments that hold packets of the flow
n_explained=0
while read -r port; do
    f="host 10.99.1.10 and tcp port $port"
    want=$(for s in "${segs[@]}"; do
        n=$(zstdcat -q "$s" | tcpdump -r - -w - "$f" 2>/dev/null | tcpdump -r - 2>/dev/null | wc -l)
        [ "$n" -gt 0 ] && basename "$s" .pcap.zst | sed 's/^0*//'
    done)
    got=$(fs query --archive "$a" --explain "$f" | sed -n 's/^  segment \([0-9]*\):.*/\1/p')
    [ -n "$want" ] && [ "$got" = "$want" ] && pass || fail "--explain '$f' names segments '$got', they are '$want'"
    n_explained=$((n_explained + 1))
done < <(fs flows --archive "$a" --json 'src host 10.99.1.10 and tcp' | jq -r '.a | sub(".*:"; "")' | head -8)
[ "$n_explained" -ge 5 ] && pass || fail "--explain checked on $n_explained flows only"

# exports open in capinfos and tshark, also when streamed
fs query --archive "$a" -w - "port 80" 2>/dev/null >"$TMP/stream.pcap"
for f in "$TMP/all.pcap" "$TMP/f.pcap" "$TMP/stream.pcap"; do
    capinfos "$f" >/dev/null 2>&1 && pass || fail "capinfos cannot read $f"
    [ "$(tshark -r "$f" 2>/dev/null | wc -l)" = "$(npackets "$f")" ] && pass || fail "tshark reads $f differently"
done
oracle "$HTTP" "$TMP/exp.pcap" "port 80"
cmp -s "$TMP/exp.pcap" "$TMP/stream.pcap" && pass || fail "-w - output differs from -w FILE"
[ "$(fs query --archive "$a" -w - 'tcp port 80' 2>/dev/null | tcpdump -r - -c 5 -nn 2>/dev/null | wc -l)" = 5 ] && pass ||
    fail "streaming into tcpdump -r - -c 5"

# the io_uring and the pwritev writer write the same bytes; O_DIRECT unless on tmpfs
direct=" O_DIRECT"
[ "$(stat -f -c %T "$TMP")" = tmpfs ] && direct=", "
for io in uring pwritev; do
    FLOWSCOPE_IO=$io fs record --read "$HTTP" --archive "$TMP/io.$io" --segment-size 2M --dumpers 1 \
        --stats-interval 0 2>"$TMP/io.$io.err" || fail "record with FLOWSCOPE_IO=$io"
    grep -q "io ${io/uring/io_uring}$direct" "$TMP/io.$io.err" && pass || fail "FLOWSCOPE_IO=$io: $(grep writer "$TMP/io.$io.err")"
done
n=0
for s in "$TMP"/io.uring/segments/*.pcap.zst; do
    cmp -s "$s" "$TMP/io.pwritev/segments/$(basename "$s")" || fail "$(basename "$s") differs between io_uring and pwritev"
    n=$((n + 1))
done
[ "$n" -ge 5 ] && [ "$n" = "$(ls "$TMP"/io.pwritev/segments/*.pcap.zst | wc -l)" ] && pass ||
    fail "io_uring wrote $n segments, pwritev $(ls "$TMP"/io.pwritev/segments | wc -l)"
# several dumpers: segments overlap in time, the query merges them back to capture order
fs record --read "$HTTP" --archive "$TMP/d3" --segment-size 1M --dumpers 3 --stats-interval 0 2>/dev/null ||
    fail "record --dumpers 3"
oracle "$HTTP" "$TMP/exp.pcap"
fs query --archive "$TMP/d3" -w "$TMP/d3.pcap" 2>/dev/null && cmp -s "$TMP/exp.pcap" "$TMP/d3.pcap" && pass ||
    fail "--dumpers 3: the query differs from the source"

# appending a second recording to the same archive keeps both
fs record --read "$PCAPS/dns_icmp.pcap" --archive "$a" --qq-size 8M --stats-interval 0 2>/dev/null || fail "append"
n=$(( $(npackets "$HTTP") + $(npackets "$PCAPS/dns_icmp.pcap") ))
grep -q "^packets: *$n$" <(fs info --archive "$a") && pass || fail "after appending, info does not show $n packets"
oracle "$PCAPS/dns_icmp.pcap" "$TMP/exp.pcap" "udp port 53"
fs query --archive "$a" -w "$TMP/dns.pcap" "udp port 53" 2>/dev/null && cmp -s "$TMP/exp.pcap" "$TMP/dns.pcap" && pass ||
    fail "query of the appended recording differs"
finish
