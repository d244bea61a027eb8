#!/usr/bin/env bash
# Regenerates the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/),
# which are committed: make test-fuzz does not run this.  Seeds come from the
# shared captures (../shared/pcaps) and from archives recorded here from
# them: the segment files (one untouched, one a two-frame segment spliced from
# a real frame, a torn and an open-shaped one) and the index records
# (mdb_dump).  Each file is a few KB at most.
#
#   tests/fuzz/make_seeds.sh build/tools/flowscope [../shared/pcaps]
set -euo pipefail
FS=$(realpath "${1:?usage: make_seeds.sh FLOWSCOPE [PCAPS]}")
PCAPS=$(realpath "${2:-../shared/pcaps}")
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/corpus
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"/{fuzz_pcapng,fuzz_segment,fuzz_index,fuzz_units}

# first N packets of a capture
head_of() { tcpdump -r "$1" -c "$2" -w "$3" 2>/dev/null; }

# ---- fuzz_pcapng: small pcap and pcapng files, behind a 0 byte (no prepended header) ----
pcapng_seed() { { printf '\0'; cat "$1"; } >"$OUT/fuzz_pcapng/$2"; }
head_of "$PCAPS/dns_icmp.pcap" 8 "$TMP/dns.pcap" && pcapng_seed "$TMP/dns.pcap" dns_icmp8.pcap
head_of "$PCAPS/mixed_vlan.pcap" 6 "$TMP/vlan.pcap" && pcapng_seed "$TMP/vlan.pcap" mixed_vlan6.pcap
head_of "$PCAPS/public/gopacket/test_loopback.pcap" 2 "$TMP/loop.pcap" &&
    pcapng_seed "$TMP/loop.pcap" test_loopback2.pcap
for f in dpkt/truncated_dns.pcap gopacket/test_dns.pcap; do
    pcapng_seed "$PCAPS/public/$f" "$(basename "$f")"
done
for t in 001 002 006 009 010 014 017 101 202; do
    pcapng_seed "$PCAPS/public/pcapng-test-generator/le/test$t.pcapng" "le_test$t.pcapng"
done
pcapng_seed "$PCAPS/public/pcapng-test-generator/be/test005.pcapng" be_test005.pcapng
editcap -F pcapng "$TMP/dns.pcap" "$TMP/dns.pcapng" && pcapng_seed "$TMP/dns.pcapng" dns_icmp8.pcapng
# an odd first byte: the target's two-interface header, then these blocks
tail -c +29 "$TMP/dns.pcapng" | { printf '\1'; cat; } >"$OUT/fuzz_pcapng/two_idb_dns.bin"

# ---- archives: fuzz_segment and fuzz_index ----
record() { # NAME CAPTURE
    "$FS" record --archive "$TMP/$1" --read "$2" --stats-interval 0 --qq-size 2M --dumpers 1 \
        --zstd-level 3 >/dev/null 2>&1
}
head_of "$PCAPS/dns_icmp.pcap" 40 "$TMP/dns40.pcap"
record a_dns "$TMP/dns40.pcap"
record a_vlan "$TMP/vlan.pcap"
record a_loop "$TMP/loop.pcap"
python3 - "$TMP" "$OUT/fuzz_segment" <<'EOF'
import glob, os, struct, subprocess, sys
tmp, out = sys.argv[1], sys.argv[2]
TAG, SEEK, FOOT = 0x184D2A53, 0x184D2A5E, 0x8F92EAB1

def zstd(b, *args):
    return subprocess.run(["zstd", "-q", "-c", *args], input=b, stdout=subprocess.PIPE,
                          check=True).stdout

def compress(raw):  # content size and checksum, as the writer's frames
    path = os.path.join(tmp, "raw")
    open(path, "wb").write(raw)
    return subprocess.run(["zstd", "-q", "-c", "-3", "--check", path], stdout=subprocess.PIPE,
                          check=True).stdout

def seek_table(frames):
    body = b"".join(struct.pack("<II", c, u) for c, u in frames)
    body += struct.pack("<IBI", len(frames), 0, FOOT)
    return struct.pack("<II", SEEK, len(body)) + body

def records(raw, at):  # offsets of the pcap records from `at`
    offs = []
    while at < len(raw):
        offs.append(at)
        at += 16 + struct.unpack_from("<I", raw, at + 8)[0]
    return offs

for name in ("a_dns", "a_vlan", "a_loop"):
    seg = open(glob.glob(f"{tmp}/{name}/segments/*.pcap.zst")[0], "rb").read()
    open(f"{out}/{name}.seg", "wb").write(seg)
    tag = seg[:24]
    _, _, run, _, chunk = struct.unpack("<IIIIQ", tag)
    z = seg[24:len(seg) - (8 + 8 + 9)]  # one frame: the seek table has one entry
    raw = zstd(z, "-d")
    offs = records(raw, 24)
    if len(offs) < 2:
        continue
    cut = offs[len(offs) // 2]
    parts = [raw[:cut], raw[cut:]]
    frames, body = [], b""
    for i, p in enumerate(parts):
        t = struct.pack("<IIIIQ", TAG, 16, run, 0, chunk + i) + compress(p)
        frames.append((len(t), len(p)))
        body += t
    two = body + seek_table(frames)
    open(f"{out}/{name}_2frames.seg", "wb").write(two)
    open(f"{out}/{name}_open.seg", "wb").write(body)  # an open segment: no seek table
    open(f"{out}/{name}_torn.seg", "wb").write(body[:frames[0][0] + frames[1][0] // 2])
    dmg = bytearray(two)  # frame 0 damaged in its middle: resync finds frame 1
    mid = 24 + frames[0][0] // 2
    dmg[mid:mid + 8] = b"\0" * 8
    open(f"{out}/{name}_damaged0.seg", "wb").write(bytes(dmg))
EOF

# index records as the decoders get them: selector byte, key, value
python3 - "$TMP" "$OUT/fuzz_index" <<'EOF'
import os, subprocess, sys
tmp, out = sys.argv[1], sys.argv[2]
n = 0
for name in ("a_dns", "a_vlan"):
    for db, sel in (("segments", 0), ("frames", 1), ("flows", 2), ("terms", 4)):
        lines = subprocess.run(["mdb_dump", "-s", db, f"{tmp}/{name}/index"],
                               stdout=subprocess.PIPE, check=True, text=True).stdout.splitlines()
        data = [bytes.fromhex(l.strip()) for l in lines if l.startswith(" ")]
        for k, v in list(zip(data[0::2], data[1::2]))[:6]:
            if db == "segments":
                rec = v
            elif db == "terms":
                rec = v
            else:
                rec = k + v
            s = sel
            if db == "flows" and len(k) == 25:  # an IPv4 flow's key (format 4)
                s = 5
                mapped = bytes(10) + b"\xff\xff"  # and as format 3 wrote it
                k = k[:8] + mapped + k[8:12] + mapped + k[12:]
                open(f"{out}/{name}_{db}_wide_{n}", "wb").write(bytes([2]) + k + v)
            if db == "flows":  # also as a format 2 key
                open(f"{out}/{name}_{db}_v2_{n}", "wb").write(
                    bytes([3]) + k[:47] + v)
            open(f"{out}/{name}_{db}_{n}", "wb").write(bytes([s]) + rec)
            n += 1
# posting lists of several runs: {3, 4, 5, 300} (docs/archive-format.md), {0, 2, 4..9, 70000}
open(f"{out}/plist_runs", "wb").write(bytes([4, 0x07, 0x01, 0xcc, 0x04]))
open(f"{out}/plist_mixed", "wb").write(bytes([4, 0x00, 0x02, 0x03, 0x04, 0xcc, 0xc5, 0x08]))
# the same bytes once
seen = set()
for f in sorted(os.listdir(out)):
    h = open(os.path.join(out, f), "rb").read()
    if h in seen:
        os.remove(os.path.join(out, f))
    seen.add(h)
EOF

# ---- fuzz_units: selector byte (0 size, 1 duration, 2 count, 3 uint, 4 time), then text ----
u() { printf "\\x$(printf %02x "$1")%s" "$2" >"$OUT/fuzz_units/$3"; }
u 0 512M size_512M
u 0 1GiB size_1GiB
u 0 18446744073709551615 size_max
u 1 1.5s dur_1.5s
u 1 250ms dur_250ms
u 1 30d dur_30d
u 2 1.5M count_1.5M
u 2 10k count_10k
u 83 1500 uint_1500
u 4 now time_now
u 4 "15m ago" time_ago
u 4 2026-11-27T14:02:00Z time_rfc3339
u 4 2026-11-27T14:02:00.123456789+01:30 time_zone
u 4 1795000000.5 time_epoch
# ---- fuzz_api: a request's decoded parameters, behind the endpoint byte (0 query, 1 flows) ----
mkdir -p "$OUT/fuzz_api"
a() { printf "\\$(printf %03o "$1")%s" "$2" >"$OUT/fuzz_api/$3"; }
a 0 'filter=tcp&from=15m ago&to=now&limit_bytes=100' query_range
a 0 'format=pcapng&ts=micro&comment=flowscope query' query_pcapng
a 0 'filter=host 10.0.0.1&format=json&limit_packets=10' query_json
a 1 'filter=port 80&sort=bytes&top=3&offset=1&triggered=true' flows_top
a 1 'from=2026-11-27T14:02:00Z&to=1795000000.5&sort=duration' flows_range
a 2 'flow=tcp 10.0.0.1:443 10.0.0.2:51234 vlan 42/7&reason=ids&for=30s' trigger_flow
a 2 'filter=host 10.0.0.9 and vlan 42&for=1m' trigger_filter
a 6 '{"flow": "udp [2001:db8::1]:53 [2001:db8::2]:5353", "for": 60, "reason": "eve"}' trigger_json
# ---- fuzz_eve: selector byte (0 EVE, 1 Zeek notice, 2 --eve-filter), then the line ----
mkdir -p "$OUT/fuzz_eve"
e() { printf "\\$(printf %03o "$1")%s" "$2" >"$OUT/fuzz_eve/$3"; }
grep -v '^#' "$HERE/../ingest/data/eve_alerts.tsv" | while IFS=$'\t' read -r name _ _ _ _ _ _ _ _ _ _ _ _ _ line; do
    e 0 "$line" "eve_$name"
done
e 0 '{"timestamp":"2026-11-27T05:29:34.521251+0000","event_type":"flow","src_ip":"10.0.0.1"}' eve_flow
e 1 '{"ts":1795757374.521251,"id.orig_h":"10.99.1.10","id.orig_p":34952,"id.resp_h":"10.99.1.80","id.resp_p":80,"proto":"tcp","note":"HTTP::SQL_Injection_Attacker","msg":"m"}' zeek_tcp
e 1 '{"ts":"2026-11-27T05:29:41.494684Z","id":{"orig_h":"fd00::1","orig_p":128,"resp_h":"fd00::2","resp_p":0},"proto":"icmp","note":"X","community_id":"1:LyYZBn5jx1YGi6rf/vY7u51hsEw="}' zeek_icmp6
e 2 'sid=2010935,2010936,severity<=2' filter_sid_sev
e 2 'sid!=2200000-2299999' filter_range
echo "make_seeds: $(find "$OUT" -type f | wc -l) seeds, $(du -sk "$OUT" | cut -f1) KB in $OUT"
