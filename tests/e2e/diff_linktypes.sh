#!/bin/bash
# The differential test on raw IP, Linux cooked v1 and v2 captures, made from
# the Ethernet sample captures (see relink.c).
. "$(dirname "$0")/lib.sh"
RELINK=$1
files=()
for mode in raw sll sll2; do
    for src in dns_icmp mixed_vlan tcp_anomalies; do
        "$RELINK" "$mode" "$PCAPS/$src.pcap" "$TMP/$src.$mode.pcap" || fail "relink $mode $src"
        files+=("$TMP/$src.$mode.pcap")
    done
done
bash "$(dirname "$0")/diff_tcpdump.sh" full "${files[@]}"
