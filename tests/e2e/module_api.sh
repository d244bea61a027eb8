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
[ "$(module_counter "$TMP/rec.err" record "$MOD" triggers)" = "$want" ] && pass ||
    fail "record with the example built outside CMake: $(grep "module $MOD" "$TMP/rec.err"), tshark: $want"

# ---- monitor prints a module's own key as the module formats it, or in hex ---------------------
# example_user_module.lua (formatFlowKey): "host pair A <-> B PROTO", one per host pair and protocol
EX=$SRC/docs/examples/lua/example_user_module.lua
for p in dns_icmp http; do
    fs monitor --read "$PCAPS/$p.pcap" --module "$EX:rate=1" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
    got=$(keys 'example_user_module.lua:rate=1' |
        awk '$1 == "host" && $2 == "pair" && $4 == "<->" && NF == 6 {
                 a = $3; b = $5; if (b < a) { a = $5; b = $3 }; print a, b, $6; next }
             { print "not formatFlowKey: " $0 }' | sort)
    want=$(bash "$SRC/tests/e2e/tshark_flows.sh" pairs "$PCAPS/$p.pcap" |
        awk 'BEGIN { n[6] = "tcp"; n[17] = "udp"; n[1] = "icmp"; n[58] = "icmp6"; n[132] = "sctp" }
             { print $2, $3, ($1 in n) ? n[$1] : "proto" $1 }' | sort)
    [ -n "$want" ] && [ "$got" = "$want" ] && pass ||
        fail "monitor's keys of example_user_module on $p: $(diff <(echo "$want") <(echo "$got") | head -4)"
done
# proto_key.lua (no formatter): "struct pk_key FFPP", family and protocol in hex
for p in dns_icmp http; do
    fs monitor --read "$PCAPS/$p.pcap" --module "$LUA/proto_key.lua" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
    got=$(keys proto_key.lua)
    want=$(bash "$SRC/tests/e2e/tshark_flows.sh" pairs "$PCAPS/$p.pcap" |
        awk '{ printf "struct pk_key %02x%02x\n", index($2, ":") ? 6 : 4, $1 }' | sort -u)
    [ -n "$want" ] && [ "$got" = "$want" ] && pass ||
        fail "monitor's hex keys of proto_key on $p: $(diff <(echo "$want") <(echo "$got") | head -4)"
done
# tuple_keys.lua (two key types, no formatter): each type's own bytes, decoded here to the
# 5-tuple tshark gives for the flows to port 53 (only dns_icmp has DNS)
for p in dns_icmp; do
    fs monitor --read "$PCAPS/$p.pcap" --module "$LUA/tuple_keys.lua" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
    got=$(keys tuple_keys.lua | python3 -c '
import ipaddress, sys
for line in sys.stdin:
    f = line.split()
    n = {"struct tk_ipv4_5tuple": 4, "struct tk_ipv6_5tuple": 16}.get(" ".join(f[:2]))
    h = bytes.fromhex(f[2]) if n and len(f) == 3 else b""
    if len(h) != (14 if n == 4 else 38):
        print("not a key type in hex:", line.strip()); continue
    port = lambda o: int.from_bytes(h[o:o + 2], sys.byteorder)
    print(h[2 * n + 4], ipaddress.ip_address(h[:n]), port(2 * n), ipaddress.ip_address(h[n:2 * n]),
          port(2 * n + 2))' | sort)
    want=$(tshark -r "$PCAPS/$p.pcap" -Y '(udp.dstport == 53 || tcp.dstport == 53) && !icmp && !icmpv6' \
        -T fields -e ip.proto -e ipv6.nxt -e ip.src -e ipv6.src -e tcp.srcport -e udp.srcport \
        -e ip.dst -e ipv6.dst -e tcp.dstport -e udp.dstport 2>/dev/null | awk '{print $1, $2, $3, $4, $5}' | sort -u)
    [ -n "$want" ] && [ "$got" = "$want" ] && pass ||
        fail "monitor's hex keys of tuple_keys on $p: $(diff <(echo "$want") <(echo "$got") | head -4)"
done

# ---- ARP is not IPv4 to a module -----------------------------------------------------------------
for p in dns_icmp http tcp_anomalies mixed_vlan; do
    arp=$(timeout 300 tcpdump -nn -r "$PCAPS/$p.pcap" 'arp or rarp or (vlan and (arp or rarp))' 2>/dev/null | grep -c .)
    ip4=$(tshark -r "$PCAPS/$p.pcap" -Y ip 2>/dev/null | grep -c .)
    fs monitor --read "$PCAPS/$p.pcap" --module "$LUA/arp_view.lua" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
    want="arp_view: arp $arp flagged $arp ip4 0 family4 0; ip4 frames $ip4"
    [ "$arp" -gt 0 ] && [ "$(cat "$TMP/mon.out")" = "$want" ] && pass ||
        fail "ARP frames in $p: module saw '$(cat "$TMP/mon.out")', want '$want' (tcpdump, tshark)"
done

# ---- the last checker pass at the end of the input -----------------------------------------------
# end_pass.lua has one pass a day: its report can only come from the pass at the end of the
# input, which sees (and expires) every flow
for p in dns_icmp http tcp_anomalies; do
    flows=$(bash "$SRC/tests/e2e/tshark_flows.sh" flows "$PCAPS/$p.pcap" | grep -c .)
    pkts=$(timeout 300 tcpdump -nn -r "$PCAPS/$p.pcap" 'ip or ip6' 2>/dev/null | grep -c .)
    want="end_pass: flows $flows packets $pkts kept 0 purged $flows"
    fs monitor --read "$PCAPS/$p.pcap" --module "$LUA/end_pass.lua" --stats-interval 0 >"$TMP/mon.out" 2>"$TMP/mon.err"
    [ "$(cat "$TMP/mon.out")" = "$want" ] && [ "$(module_counter "$TMP/mon.err" monitor "$LUA/end_pass.lua" expired)" = "$flows" ] && pass ||
        fail "monitor's last pass on $p: '$(cat "$TMP/mon.out")', want '$want' (tshark, tcpdump)"
    # a file is one queue: with 3 analyzers two see no packet, and still one report, merged
    for n in 1 3; do
        rm -rf "$TMP/a"
        fs record --read "$PCAPS/$p.pcap" --archive "$TMP/a" --analyzers $n --module "$LUA/end_pass.lua" \
            --stats-interval 0 >"$TMP/rec.out" 2>"$TMP/rec.err"
        [ "$(cat "$TMP/rec.out")" = "$want" ] && [ "$(module_counter "$TMP/rec.err" record "$LUA/end_pass.lua" expired)" = "$flows" ] &&
            pass || fail "record's last pass on $p, $n analyzers: '$(tr '\n' '|' <"$TMP/rec.out")', want '$want' (tshark, tcpdump)"
    done
done
finish
