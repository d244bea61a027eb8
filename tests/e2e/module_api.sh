#!/bin/bash
# The module API as a module's author meets it (docs/modules.md):
#  * the example C module builds outside the project's CMake exactly as its
#    README says (a copy of docs/examples/module, make FLOWSCOPE=SRC), and
#    flowtrack/flowtrack.h compiles alone under plain cc -std=c17; the built
#    module loads in monitor and record and triggers the flows tshark finds;
#  * monitor prints a Lua module's own flow keys as the module formats them
#    (formatFlowKey), else as the key type's name and bytes in hex, never as
#    a 5-tuple read out of the module's bytes (oracle: tshark's host pairs
#    and 5-tuples);
#  * ARP frames are not IPv4 to a module: pkt:ip4() is nil, family 0,
#    FT_PKT_ARP set (tcpdump counts the ARP frames, tshark the IPv4 ones);
#  * with --read a last checker pass runs over every flow when the input
#    ends, in record and monitor (tshark's flows, tcpdump's IP packets), one
#    report even when some analyzers saw no packet.
. "$(dirname "$0")/lib.sh"
: "${SRC:?SRC must name the source tree}"
LUA=$SRC/tests/e2e/lua

# keys PROG: the keys of monitor's trigger lines in its output, sorted
keys() { sed -n "s/^[^ ]* trigger [^ ]*$1: \(.*\) filter '.*'$/\1/p" "$TMP/mon.out" | sort; }

# ---- the example C module, built as its README says --------------------------------------------
cp -r "$SRC/docs/examples/module" "$TMP/mod"
if make -C "$TMP/mod" FLOWSCOPE="$SRC" >"$TMP/make.out" 2>&1 && [ -f "$TMP/mod/syn_to_port.so" ]; then
    pass
else
    fail "docs/examples/module: make FLOWSCOPE=SRC: $(grep -m1 -A2 'error' "$TMP/make.out")"
fi
printf '#include "flowtrack/flowtrack.h"\nint main(void) { return FT_MODULE_ABI == 0; }\n' >"$TMP/h.c"
cc -std=c17 -Wall -Wextra -Werror -pedantic -I"$SRC" -c "$TMP/h.c" -o "$TMP/h.o" 2>"$TMP/h.err" && pass ||
    fail "flowtrack/flowtrack.h alone under cc -std=c17 -Wall -Werror: $(grep -m1 error "$TMP/h.err")"
# loaded by monitor and record: one trigger per connection whose client sends a SYN to port 80
want=$(tshark -r "$PCAPS/http.pcap" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == 80' \
    -T fields -e ip.src -e ipv6.src -e tcp.srcport -e ip.dst -e ipv6.dst 2>/dev/null | sort -u | grep -c .)
MOD=$TMP/mod/syn_to_port.so:port=80
fs monitor --read "$PCAPS/http.pcap" --module "$MOD" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
got=$(keys syn_to_port.so:port=80 | grep -cE '^tcp [^ ]+:[0-9]+ <-> [^ ]+:80$')
[ "$want" -gt 0 ] && [ "$got" = "$want" ] && pass ||
    fail "monitor with the example built outside CMake: $got triggers, tshark: $want SYNs to port 80 ($(tail -1 "$TMP/mon.err"))"
fs record --read "$PCAPS/http.pcap" --archive "$TMP/a" --capture triggered --module "$MOD" \
    --stats-interval 0 >/dev/null 2>"$TMP/rec.err"
grep -q "module $MOD: .* triggers $want," "$TMP/rec.err" && pass ||
    fail "record with the example built outside CMake: $(grep "module $MOD" "$TMP/rec.err"), tshark: $want"

# ---- ARP is not IPv4 to a module -----------------------------------------------------------------
for p in dns_icmp http tcp_anomalies mixed_vlan; do
    arp=$(timeout 300 tcpdump -nn -r "$PCAPS/$p.pcap" 'arp or rarp or (vlan and (arp or rarp))' 2>/dev/null | grep -c .)
    ip4=$(tshark -r "$PCAPS/$p.pcap" -Y ip 2>/dev/null | grep -c .)
    fs monitor --read "$PCAPS/$p.pcap" --module "$LUA/arp_view.lua" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
    want="arp_view: arp $arp flagged $arp ip4 0 family4 0; ip4 frames $ip4"
    [ "$arp" -gt 0 ] && [ "$(cat "$TMP/mon.out")" = "$want" ] && pass ||
        fail "ARP frames in $p: module saw '$(cat "$TMP/mon.out")', want '$want' (tcpdump, tshark)"
done

finish
