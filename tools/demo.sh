#!/bin/bash
# make demo: the main job end to end on built-in sample traffic.
#   1. flowscope gen     synthesises a capture (TCP/UDP/ICMP, IPv4/IPv6, some VLANs)
#   2. flowscope record  replays it through the QQ, flow tracking and the dumper
#                        into a segmented, zstd-compressed, LMDB-indexed archive
#   3. flowscope info    shows what the archive holds
#   4. flowscope query   pulls one TCP connection back out as a pcap, via the index
# Everything goes to ./demo/ (recreated on every run).
set -euo pipefail
FS=${1:-build/tools/flowscope}
D=demo
rm -rf "$D" && mkdir -p "$D"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

step "1. generate sample traffic (200 concurrent flows, 60000 packets, 10% on VLANs)"
run "$FS" gen -w "$D/sample.pcap" --packets 60000 --flows 200 --vlan 10 --seed 7

step "2. record it into an archive (QQ ring -> analyzer -> dumper -> segments + index)"
run "$FS" record --read "$D/sample.pcap" --archive "$D/archive" --capture all --qq-size 64M \
    --segment-size 4M

step "3. what the archive holds"
run "$FS" info --archive "$D/archive"
run ls -l "$D/archive/segments"

# one TCP connection of the sample: its first packet names the 5-tuple
line=$(tcpdump -nn -r "$D/sample.pcap" -c 1 'tcp[tcpflags] & tcp-syn != 0 and ip and not vlan' 2>/dev/null)
[[ $line =~ IP\ ([0-9.]+)\.([0-9]+)\ \>\ ([0-9.]+)\.([0-9]+): ]] || { echo "demo: no TCP flow found" >&2; exit 1; }
filter="host ${BASH_REMATCH[1]} and port ${BASH_REMATCH[2]} and host ${BASH_REMATCH[3]} and port ${BASH_REMATCH[4]} and tcp"

step "4. query one flow back: the index picks the frames, BPF matches exactly"
run "$FS" query --archive "$D/archive" --explain "$filter"
run "$FS" query --archive "$D/archive" -w "$D/flow.pcap" "$filter"
run capinfos -c -u "$D/flow.pcap"
tcpdump -nn -c 8 -r "$D/flow.pcap" 2>/dev/null

step "5. check it against tcpdump on the original capture"
tcpdump -Z root -r "$D/sample.pcap" --time-stamp-precision=nano -w "$D/expected.pcap" "$filter" 2>/dev/null
if cmp -s "$D/expected.pcap" "$D/flow.pcap"; then
    echo "identical: flowscope query == tcpdump -r sample.pcap '$filter'"
else
    echo "demo: the query differs from tcpdump" >&2
    exit 1
fi

cat <<NEXT

What to type next:
  $FS info   --archive $D/archive
  $FS query  --archive $D/archive -w - 'udp port 53' | tcpdump -nn -r - | head
  $FS query  --archive $D/archive --explain 'net 10.1.0.0/16 and tcp port 443'
  $FS query  --archive $D/archive -w $D/vlan.pcap 'vlan 100'   (then: wireshark $D/vlan.pcap)
  $FS flows  --archive $D/archive --top 5
  $FS index verify --archive $D/archive
  $FS record --read ../shared/pcaps/http.pcap --archive /tmp/a --capture all
  $FS monitor --read ../shared/pcaps/http.pcap --module docs/examples/lua/live_statistician.lua
  zstdcat $D/archive/segments/000000000001.pcap.zst | tcpdump -nn -r - | head
Docs: README.md, docs/cli.md, docs/modules.md, docs/archive-format.md
$FS is the built binary, not yet on the PATH: "make install" installs it as
flowscope (with man pages: man flowscope-record), or, without installing:
  export PATH="$(cd "$(dirname "$FS")" && pwd):\$PATH"
NEXT
