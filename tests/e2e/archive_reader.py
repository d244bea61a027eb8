#!/usr/bin/python3
"""An archive reader written from docs/archive-format.md alone (not from the C code).

It answers a host query or a 5-tuple query the way `flowscope query` does: it opens the
LMDB index read-only, finds the candidate frames from the `terms` posting lists (plus the
UNINDEXED frames and segments), reads and decompresses those frames from the segment files,
parses their pcap records, keeps the packets the filter accepts (the filter is evaluated here,
on the packet headers, as libpcap evaluates the equivalent tcpdump filter printed by
--print-filter), merges the recordings in the documented order and writes a nanosecond pcap.
If the document and the code drift apart, its answer stops matching `flowscope query`'s.

Debian 12: python3-lmdb, python3-zstandard (run it with /usr/bin/python3).

    archive_reader.py ARCHIVE [--vlan N] --host ADDR -w OUT [--candidates]
    archive_reader.py ARCHIVE [--vlan N] --tuple tcp|udp A PORTA B PORTB -w OUT
"""
import argparse
import heapq
import ipaddress
import os
import struct
import sys

import lmdb
import zstandard

# -- the index (docs/archive-format.md, "Index (LMDB)") --
DB_NAMES = (b"meta", b"segments", b"frames", b"terms", b"flows")
PARTITION = 64
SEG_CLOSED, SEG_OPEN = 2, 1
SEG_UNINDEXED = 1
FRAME_UNINDEXED = 1
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # what libpcap's `vlan` takes as a tag


def die(msg):
    print("archive_reader: " + msg, file=sys.stderr)
    sys.exit(1)


def read_format(archive):
    with open(os.path.join(archive, "FORMAT"), encoding="ascii") as f:
        line = f.read()
    if line not in ("flowscope-archive 2\n", "flowscope-archive 3\n", "flowscope-archive 4\n"):
        die("%s: FORMAT says %r, this reader knows 2 to 4" % (archive, line))


def open_index(archive):
    env = lmdb.open(os.path.join(archive, "index"), readonly=True, max_dbs=len(DB_NAMES),
                    subdir=True, create=False)
    txn = env.begin()
    dbs = {name.decode(): env.open_db(name, txn=txn, create=False) for name in DB_NAMES}
    return env, txn, dbs


def segments(txn, db):
    """{segment id: record dict} of the `segments` database."""
    out = {}
    for key, val in txn.cursor(db):
        if len(key) != 8 or len(val) != 96:
            die("segments: key of %d bytes, value of %d" % (len(key), len(val)))
        seg = struct.unpack(">Q", key)[0]
        (version, state, flags, linktype, snaplen, frames, tmin, tmax, packets, wire, pcap_bytes,
         comp_bytes, nflows, run, created, reserved) = struct.unpack("<IIIIIIQQQQQQIIQQ", val)
        if version != 1 or state not in (SEG_OPEN, SEG_CLOSED):
            die("segment %d: record version %d state %d" % (seg, version, state))
        out[seg] = dict(state=state, flags=flags, linktype=linktype, snaplen=snaplen,
                        frames=frames, run=run)
    return out


def frame_records(txn, db, seg):
    """{frame number: frame record} of one segment (the frames that have a record)."""
    out = {}
    cur = txn.cursor(db)
    prefix = struct.pack(">Q", seg)
    if not cur.set_range(prefix):
        return out
    for key, val in cur:
        if not key.startswith(prefix):
            break
        if len(key) != 12 or len(val) != 48:
            die("frames: key of %d bytes, value of %d" % (len(key), len(val)))
        num = struct.unpack(">I", key[8:])[0]
        offset, size, dsize, tmin, tmax, packets, flags, chunk = struct.unpack("<QIIQQIIQ", val)
        out[num] = dict(offset=offset, size=size, dsize=dsize, packets=packets, flags=flags,
                        chunk=chunk)
    return out


def varint(buf, pos):
    val, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, pos


def postings(buf):
    """The frame numbers of a posting list (runs of consecutive frames)."""
    frames, end, pos = [], 0, 0
    while pos < len(buf):
        item, pos = varint(buf, pos)
        length = 1
        if item & 1:
            extra, pos = varint(buf, pos)
            length = extra + 2
        first = end + (item >> 1)
        frames.extend(range(first, first + length))
        end = first + length
    return set(frames)


def term_frames(txn, db, ttype, term, last_segment):
    """{segment id: set of frame numbers} that hold the term, over every partition."""
    out = {}
    cur = txn.cursor(db)
    for part in range(last_segment // PARTITION + 1):
        prefix = struct.pack(">I", part) + ttype + term
        if not cur.set_range(prefix):
            continue
        for key, val in cur:
            if not key.startswith(prefix):
                break
            if len(key) != len(prefix) + 8:
                die("terms: key of %d bytes for a %r term" % (len(key), ttype))
            seg = struct.unpack(">Q", key[len(prefix):])[0]
            out.setdefault(seg, set()).update(postings(val))
    return out


def host_term(addr):
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        ip = ipaddress.IPv6Address("::ffff:" + addr)
    return ip.packed


# -- the packets: libpcap's semantics for `[vlan and]... host A` and a 5-tuple --
class Short(Exception):
    """A load past the captured length: libpcap's filter rejects the packet there."""


def load(pkt, off, n):
    if off + n > len(pkt):
        raise Short()
    return pkt[off:off + n]


def u16(pkt, off):
    return struct.unpack(">H", load(pkt, off, 2))[0]


def network(pkt, vlans):
    """(ethertype, offset of the network header) after exactly `vlans` tags, or None."""
    off = 12
    for _ in range(vlans):
        if u16(pkt, off) not in VLAN_TPIDS:
            return None
        off += 4
    return u16(pkt, off), off + 2


def match_host(pkt, vlans, ip):
    net = network(pkt, vlans)
    if net is None:
        return False
    etype, off = net
    if ip.version == 4:
        if etype == 0x0800:
            return load(pkt, off + 12, 4) == ip.packed or load(pkt, off + 16, 4) == ip.packed
        if etype in (0x0806, 0x8035):  # ARP/RARP sender and target protocol addresses
            return load(pkt, off + 14, 4) == ip.packed or load(pkt, off + 24, 4) == ip.packed
        return False
    if etype == 0x86DD:
        return load(pkt, off + 8, 16) == ip.packed or load(pkt, off + 24, 16) == ip.packed
    return False


def match_tuple(pkt, vlans, proto, a, pa, b, pb):
    net = network(pkt, vlans)
    if net is None:
        return False
    etype, off = net
    if a.version == 4 and etype == 0x0800:
        if load(pkt, off + 9, 1)[0] != proto:
            return False
        src, dst = load(pkt, off + 12, 4), load(pkt, off + 16, 4)
        if u16(pkt, off + 6) & 0x1FFF:
            return False  # a later fragment has no ports
        l4 = off + (load(pkt, off, 1)[0] & 0x0F) * 4
    elif a.version == 6 and etype == 0x86DD:
        if load(pkt, off + 6, 1)[0] != proto:
            return False
        src, dst = load(pkt, off + 8, 16), load(pkt, off + 24, 16)
        l4 = off + 40
    else:
        return False
    for (sa, sp, da, dp) in ((a, pa, b, pb), (b, pb, a, pa)):
        if src == sa.packed and dst == da.packed:
            if u16(pkt, l4) == sp and u16(pkt, l4 + 2) == dp:
                return True
    return False


def accepts(flt, pkt):
    try:
        return flt(pkt)
    except Short:
        return False


# -- the segments (docs/archive-format.md, "Segments") --
TAG = struct.Struct("<IIIIQ")
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")


def segment_path(archive, seg):
    name = os.path.join(archive, "segments", "%012d.pcap.zst" % seg)
    return name if os.path.exists(name) else name + ".open"


def read_frame(f, seg, num, rec):
    f.seek(rec["offset"])
    raw = f.read(rec["size"])
    if len(raw) != rec["size"]:
        die("segment %d frame %d: file cut short" % (seg, num))
    magic, size, run, reserved, chunk = TAG.unpack_from(raw)
    if magic != 0x184D2A53 or size != 16 or chunk != rec["chunk"]:
        die("segment %d frame %d: tag %x size %d chunk %d" % (seg, num, magic, size, chunk))
    data = zstandard.ZstdDecompressor().decompress(raw[TAG.size:])
    if len(data) != rec["dsize"]:
        die("segment %d frame %d: %d bytes decompressed, %d recorded"
            % (seg, num, len(data), rec["dsize"]))
    return run, data


def packets(data, frame0):
    """(timestamp ns, record bytes) of the pcap records of one frame."""
    pos = PCAP_HEADER.size if frame0 else 0
    if frame0 and PCAP_HEADER.unpack_from(data)[0] != 0xA1B23C4D:
        die("frame 0 without the nanosecond pcap magic")
    while pos < len(data):
        sec, nsec, caplen, wirelen = RECORD.unpack_from(data, pos)
        end = pos + RECORD.size + caplen
        yield sec * 1000000000 + nsec, data[pos:end], data[pos + RECORD.size:end]
        pos = end


def candidates(archive, txn, dbs, segs, wanted):
    """{segment: set of frames} to read: `wanted(seg)` gives the frames the terms name."""
    u_frames = term_frames(txn, dbs["terms"], b"U", b"\x00", max(segs, default=0))
    out = {}
    for seg, rec in segs.items():
        if rec["flags"] & SEG_UNINDEXED:
            out[seg] = set(range(rec["frames"]))
            continue
        # UNINDEXED frames are always read: the `U` term lists them, so do their records
        flagged = {num for num, f in frame_records(txn, dbs["frames"], seg).items()
                   if f["flags"] & FRAME_UNINDEXED}
        if flagged != u_frames.get(seg, set()):
            die("segment %d: UNINDEXED frames %s, the U term lists %s"
                % (seg, sorted(flagged), sorted(u_frames.get(seg, set()))))
        out[seg] = wanted(seg) | flagged
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("archive")
    ap.add_argument("--vlan", type=int, default=0, help="tags before the IP header")
    ap.add_argument("--host")
    ap.add_argument("--tuple", nargs=5, metavar=("PROTO", "A", "PORTA", "B", "PORTB"))
    ap.add_argument("-w", dest="out", required=True)
    ap.add_argument("--print-filter", action="store_true", help="the tcpdump filter, then exit")
    ap.add_argument("--candidates", action="store_true",
                    help="print the frames to read per segment (as query --explain), then exit")
    args = ap.parse_args()
    vl = "vlan and " * args.vlan
    if args.host:
        ip = ipaddress.ip_address(args.host)
        text = vl + "host " + args.host
        flt = lambda p: match_host(p, args.vlan, ip)  # noqa: E731
    elif args.tuple:
        proto_name, a, pa, b, pb = args.tuple
        proto = {"tcp": 6, "udp": 17}[proto_name]
        a, b, pa, pb = ipaddress.ip_address(a), ipaddress.ip_address(b), int(pa), int(pb)
        text = ("%s%s and ((src host %s and src port %d and dst host %s and dst port %d) or "
                "(src host %s and src port %d and dst host %s and dst port %d))"
                % (vl, proto_name, a, pa, b, pb, b, pb, a, pa))
        flt = lambda p: match_tuple(p, args.vlan, proto, a, pa, b, pb)  # noqa: E731
    else:
        ap.error("--host or --tuple")
    if args.print_filter:
        print(text)
        return

    read_format(args.archive)
    env, txn, dbs = open_index(args.archive)
    segs = segments(txn, dbs["segments"])
    last = max(segs, default=0)
    if args.host:
        hits = term_frames(txn, dbs["terms"], b"H", host_term(args.host), last)
        wanted = lambda s: hits.get(s, set())  # noqa: E731
    else:
        lists = [term_frames(txn, dbs["terms"], b"H", host_term(str(a)), last),
                 term_frames(txn, dbs["terms"], b"H", host_term(str(b)), last),
                 term_frames(txn, dbs["terms"], b"P", struct.pack(">H", pa), last),
                 term_frames(txn, dbs["terms"], b"P", struct.pack(">H", pb), last)]
        wanted = lambda s: set.intersection(*(l.get(s, set()) for l in lists))  # noqa: E731,E741
    cands = candidates(args.archive, txn, dbs, segs, wanted)
    if args.candidates:
        for seg in sorted(cands):
            recs = frame_records(txn, dbs["frames"], seg)
            n = len([f for f in cands[seg] if f in recs])
            if n:
                print("  segment %d: %d frames" % (seg, n))
        return

    # Per recording: its frames in chunk order (then segment id, then frame number).
    runs = {}
    snaplen = linktype = None
    for seg in sorted(cands):
        if not cands[seg]:
            continue
        recs = frame_records(txn, dbs["frames"], seg)
        rec = segs[seg]
        if linktype is None:
            snaplen, linktype = rec["snaplen"], rec["linktype"]
        if rec["linktype"] != 1:
            die("segment %d: link type %d, this reader parses Ethernet only" % (seg, rec["linktype"]))
        snaplen = max(snaplen, rec["snaplen"])
        for num in sorted(cands[seg]):
            if num in recs:
                # a recording is one stream; a segment of run 0 (unknown) is one of its own
                stream = (rec["run"], 0 if rec["run"] else seg)
                runs.setdefault(stream, []).append((recs[num]["chunk"], seg, num, recs[num]))
    streams = []
    for run in sorted(runs):  # ranked by run, then (run 0) segment
        streams.append(run_packets(args.archive, sorted(runs[run], key=lambda t: t[:3]), flt))
    # Recordings merged by timestamp; a tie goes to the earlier recording.
    merged = heapq.merge(*(keyed(i, s) for i, s in enumerate(streams)))
    with open(args.out, "wb") as out:
        out.write(PCAP_HEADER.pack(0xA1B23C4D, 2, 4, 0, 0, snaplen or 262144, linktype or 1))
        for _, rec in merged:
            out.write(rec)
    txn.abort()
    env.close()


def keyed(i, stream):
    for ts, rec in stream:
        yield (ts, i), rec


def run_packets(archive, frames, flt):
    files = {}
    for chunk, seg, num, rec in frames:
        if seg not in files:
            files[seg] = open(segment_path(archive, seg), "rb")
        _, data = read_frame(files[seg], seg, num, rec)
        for ts, record, pkt in packets(data, num == 0):
            if accepts(flt, pkt):
                yield ts, record
    for f in files.values():
        f.close()


if __name__ == "__main__":
    main()
