#!/bin/bash
# flowscope gen against tshark: docs/cli.md promises packets "that tshark dissects without
# complaint".  For the default mix, the size presets, tiny payloads and random filler, tshark
# reads the whole file (exit 0, nothing on stderr but its root warning) and flags no packet
# malformed (_ws.malformed) and none with an error-level expert note (bad checksums included).
source "$(dirname "$0")/lib.sh"

# tshark_clean NAME FILE: tshark reads FILE without error and finds no malformed packet.
tshark_clean() {
    local name=$1 file=$2 rc n
    timeout 300 tshark -r "$file" -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE \
        -o ip.check_checksum:TRUE -Y '_ws.malformed || _ws.expert.severity == error' \
        -T fields -e frame.number -e frame.protocols >"$TMP/$name.bad" 2>"$TMP/$name.err"
    rc=$?
    grep -v '^Running as user "root"' "$TMP/$name.err" >"$TMP/$name.err2"
    if [ "$rc" -ne 0 ] || [ -s "$TMP/$name.err2" ]; then
        fail "$name: tshark exit $rc: $(head -c 300 "$TMP/$name.err2")"
        return
    fi
    n=$(wc -l <"$TMP/$name.bad")
    [ "$n" -eq 0 ] && pass ||
        fail "$name: tshark flags $n packets malformed or in error, first: $(head -3 "$TMP/$name.bad" | tr '\n' ' ')"
}

# case NAME GEN-ARGS...: generate, check the packet count with capinfos, then with tshark.
case_() {
    local name=$1
    shift
    fs gen -w "$TMP/$name.pcap" "$@" 2>"$TMP/$name.gen" || { fail "$name: gen exit $?"; return; }
    [ "$(npackets "$TMP/$name.pcap")" -gt 0 ] && pass || fail "$name: capinfos reads no packets"
    tshark_clean "$name" "$TMP/$name.pcap"
}

case_ default
case_ vlan64 --packets 30000 --size 64 --vlan 100
case_ imix_random --size imix --payload random
case_ tiny --size 0-20
case_ tiny_random --size 0-20 --payload random --ipv6 50 --udp 40 --icmp 10
case_ zero --payload zero --size 0-1400 --vlan 30
case_ p1500_v6 --size 1500 --ipv6 100 --payload random
case_ events --packets 20000 --event rst:5 --event big:2:2M --event ttl-change:3 --vlan 20

finish
