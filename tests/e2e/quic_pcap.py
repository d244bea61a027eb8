#!/usr/bin/env python3
"""Writes a pcap of QUIC-shaped UDP traffic with scripted connection migrations,
for the quic_migration example's test.  Usage: quic_pcap.py OUT.pcap EXPECTED.txt

EXPECTED gets one line per 5-tuple on which a known connection ID reappears
(what the module must trigger): "udp CLIENT CPORT SERVER SPORT".  Everything
is deterministic: fixed connection IDs, fixed timestamps.
"""
import struct
import sys

T0 = 1795000000
SERVER4, SERVER6 = "10.9.0.1", "fd00:9::1"


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def ip6(a):
    import ipaddress
    return ipaddress.IPv6Address(a).packed


def frame(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if ":" in src:
        l3 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + ip6(src) + ip6(dst)
        etype = 0x86DD
    else:
        l3 = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0)
        l3 += ip4(src) + ip4(dst)
        etype = 0x0800
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02" + struct.pack("!H", etype) + l3 + udp


def long_hdr(dcid, scid):
    return bytes([0xC3]) + struct.pack("!I", 1) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + b"\x00" * 40


def short_hdr(dcid):
    return bytes([0x41]) + dcid + b"\x11" * 30


def main():
    out, expected = sys.argv[1], sys.argv[2]
    pkts, exp = [], []
    t = [0]

    def send(src, dst, sport, dport, payload):
        t[0] += 1
        pkts.append((T0 + t[0] // 1000, (t[0] % 1000) * 1000, frame(src, dst, sport, dport, payload)))

    def conn(client, cport, server, client_cid, server_cid, n):
        send(client, server, cport, 443, long_hdr(bytes([client_cid[0] ^ 0xFF]) * 8, client_cid))
        send(server, client, 443, cport, long_hdr(client_cid, server_cid))
        for _ in range(n):
            send(client, server, cport, 443, short_hdr(server_cid))
            send(server, client, 443, cport, short_hdr(client_cid))

    def cont(client, cport, server, client_cid, server_cid, n):
        for _ in range(n):
            send(client, server, cport, 443, short_hdr(server_cid))
            send(server, client, 443, cport, short_hdr(client_cid))

    # A: migrates to a new client port (NAT rebinding)
    conn("10.9.1.1", 50000, SERVER4, b"\xa1" * 8, b"\x5a" * 8, 10)
    # B: never moves
    conn("10.9.1.2", 50001, SERVER4, b"\xb1" * 8, b"\x5b" * 8, 10)
    cont("10.9.1.1", 50002, SERVER4, b"\xa1" * 8, b"\x5a" * 8, 10)
    exp.append("udp 10.9.1.1 50002 %s 443" % SERVER4)
    # C: a new 5-tuple with a connection ID never seen: not a migration
    cont("10.9.1.3", 50003, SERVER4, b"\xc1" * 8, b"\x5c" * 8, 5)
    # D (IPv6): the client moves to a new address
    conn("fd00:9::a", 40000, SERVER6, b"\xd1" * 8, b"\x5d" * 8, 10)
    cont("fd00:9::b", 40000, SERVER6, b"\xd1" * 8, b"\x5d" * 8, 10)
    exp.append("udp fd00:9::b 40000 %s 443" % SERVER6)
    # B again on its own 5-tuple: still not a migration
    cont("10.9.1.2", 50001, SERVER4, b"\xb1" * 8, b"\x5b" * 8, 5)
    # other UDP traffic
    for i in range(20):
        send("10.9.2.1", "10.9.2.2", 5353, 53, b"\x00" * 20)

    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for sec, nsec, fr in pkts:
            f.write(struct.pack("<IIII", sec, nsec, len(fr), len(fr)) + fr)
    with open(expected, "w") as f:
        f.write("\n".join(exp) + "\n")


main()
