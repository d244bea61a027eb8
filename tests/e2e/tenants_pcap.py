#!/usr/bin/env python3
"""Writes a pcap of three tenants that use identical addresses and ports and
differ only by their VLAN tags, for the tests of VLAN-aware flow keys.
Usage: tenants_pcap.py OUT.pcap

  tenant A: 802.1Q VLAN 42            (TPID 0x8100)
  tenant B: QinQ, outer 300, inner 42 (TPIDs 0x88a8, 0x8100)
  tenant C: QinQ, outer 300, inner 43 (same outer tag as B)

Each tenant has the same three flows between 10.1.0.1 and 10.1.0.2: an ICMP
echo (6 requests, 6 replies), a TCP connection to port 80 (handshake, one
request, one response, FIN both ways: 8 packets, one of them a SYN without
ACK) and a UDP exchange to port 53 (2 packets): 22 packets a tenant, 66 in all.  Packets of
the tenants interleave, one microsecond apart; everything is deterministic
and every checksum is right (tshark finds nothing malformed).
"""
import struct
import sys

T0_NS = 1795000000 * 10**9
CLIENT, SERVER = bytes([10, 1, 0, 1]), bytes([10, 1, 0, 2])
MAC_C, MAC_S = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
TENANTS = {"A": [(0x8100, 42)], "B": [(0x88A8, 300), (0x8100, 42)],
           "C": [(0x88A8, 300), (0x8100, 43)]}


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(src, dst, proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                      src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def l4_csum(src, dst, proto, seg):
    return csum(src + dst + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def tcp(src, dst, sport, dport, seq, ack, flags, data=b""):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    c = l4_csum(src, dst, 6, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = l4_csum(src, dst, 17, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def icmp(kind, seq):
    body = struct.pack("!BBHHH", kind, 0, 0, 0x1234, seq) + bytes(range(32))
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def flows():
    """The packets of one tenant: (from_client, proto, l4 bytes)."""
    out = []
    for i in range(6):
        out.append((True, 1, icmp(8, i)))
        out.append((False, 1, icmp(0, i)))
    c, s = 1000, 5000
    req, resp = b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n"
    SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
    out += [(True, 6, tcp(CLIENT, SERVER, 40000, 80, c, 0, SYN)),
            (False, 6, tcp(SERVER, CLIENT, 80, 40000, s, c + 1, SYN | ACK)),
            (True, 6, tcp(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK)),
            (True, 6, tcp(CLIENT, SERVER, 40000, 80, c + 1, s + 1, PSH | ACK, req)),
            (False, 6, tcp(SERVER, CLIENT, 80, 40000, s + 1, c + 1 + len(req), PSH | ACK, resp)),
            (True, 6, tcp(CLIENT, SERVER, 40000, 80, c + 1 + len(req), s + 1 + len(resp),
                          FIN | ACK)),
            (False, 6, tcp(SERVER, CLIENT, 80, 40000, s + 1 + len(resp), c + 2 + len(req),
                           FIN | ACK)),
            (True, 6, tcp(CLIENT, SERVER, 40000, 80, c + 2 + len(req), s + 2 + len(resp), ACK)),
            (True, 17, udp(CLIENT, SERVER, 53000, 53, b"\x12\x34\x01\x00" + bytes(8))),
            (False, 17, udp(SERVER, CLIENT, 53, 53000, b"\x12\x34\x81\x80" + bytes(8)))]
    return out


def frame(tags, from_client, proto, l4, ident):
    src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
    eth = (MAC_S + MAC_C) if from_client else (MAC_C + MAC_S)
    for tpid, vid in tags:
        eth += struct.pack("!HH", tpid, vid)
    return eth + struct.pack("!H", 0x0800) + ip4(src, dst, proto, l4, ident)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tenants_pcap.py OUT.pcap")
    pkts = flows()
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        n = 0
        for i, (fc, proto, l4) in enumerate(pkts):
            for name in sorted(TENANTS):
                data = frame(TENANTS[name], fc, proto, l4, i + 1)
                ts = T0_NS + n * 1000
                f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), len(data)))
                f.write(data)
                n += 1


main()
