#!/bin/bash
# The differential test on raw IP, Linux cooked v1 and v2 captures, made from
# the Ethernet sample captures (see relink.c).  Each made capture must exist
# with its link type (capinfos) and the frames it should hold before the
# differential test runs on it: a capture that could not be made is a failure,
# not an "unreadable input" that diff_tcpdump.sh would accept being refused.
. "$(dirname "$0")/lib.sh"
RELINK=$1
declare -A ENCAP=([raw]=rawip [sll]=linux-sll [sll2]=linux-sll2)
files=()
for mode in raw sll sll2; do
    for src in dns_icmp mixed_vlan tcp_anomalies; do
        out=$TMP/$src.$mode.pcap
        "$RELINK" "$mode" "$PCAPS/$src.pcap" "$out" || { fail "relink $mode $src: exit $?"; continue; }
        # raw keeps the IP frames only; sll and sll2 keep every frame
        read -r encap n < <(capinfos -M -T -r -E -c "$out" 2>/dev/null | cut -f2-)
        want=$(npackets "$PCAPS/$src.pcap")
        if [ "$encap" != "${ENCAP[$mode]}" ]; then
            fail "relink $mode $src: capinfos reads link type '${encap:-none}', expected ${ENCAP[$mode]}"
        elif [ -z "$n" ] || [ "$n" -eq 0 ] || [ "$n" -gt "$want" ] || { [ "$mode" != raw ] && [ "$n" != "$want" ]; }; then
            fail "relink $mode $src: ${n:-no} packets of $want"
        else
            pass
            files+=("$out")
        fi
    done
done
[ "${#files[@]}" = 9 ] || finish
bash "$(dirname "$0")/diff_tcpdump.sh" full "${files[@]}" && pass || fail "diff_tcpdump.sh on the relinked captures"
finish
