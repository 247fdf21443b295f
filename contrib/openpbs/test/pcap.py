"""Reads libpcap captures (tcpdump -w) of Ethernet frames: the frames, and
the TCP byte streams reassembled by sequence number. Shared by the
harness's tools (tpp_replay.py, link_scan.py)."""
import socket
import struct


def frames(path):
    """Yields the link-layer frames of a classic libpcap file."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            raise ValueError("not a pcap file: short header")
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            endian = ">"
        else:
            raise ValueError("not a pcap file: magic %#x" % magic)
        if struct.unpack(endian + "I", head[20:24])[0] != 1:
            raise ValueError("pcap link type is not Ethernet")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            incl = struct.unpack(endian + "IIII", rec)[2]
            data = f.read(incl)
            if len(data) < incl:
                return
            yield data


def segments(path):
    """Yields (src_ip, sport, dst_ip, dport, seq, flags, payload) of every
    IPv4 TCP segment."""
    for fr in frames(path):
        off, etype = 14, struct.unpack("!H", fr[12:14])[0]
        if etype == 0x8100:  # VLAN tag
            off, etype = 18, struct.unpack("!H", fr[16:18])[0]
        if etype != 0x0800 or len(fr) < off + 20:
            continue
        ip = fr[off:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            continue
        tlen = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:tlen]
        if len(tcp) < 20:
            continue
        sp, dp, seq = struct.unpack("!HHI", tcp[:8])
        yield (socket.inet_ntoa(ip[12:16]), sp, socket.inet_ntoa(ip[16:20]), dp, seq, tcp[13],
               tcp[(tcp[12] >> 4) * 4:])


def streams(path):
    """Returns {(src_ip, sport, dst_ip, dport): bytes}: each direction of
    each TCP connection in the capture, in sequence order, retransmissions
    counted once. A connection that was open before the capture started
    (no SYN) starts at its first captured segment."""
    isn, segs = {}, {}
    for src, sp, dst, dp, seq, flags, payload in segments(path):
        key = (src, sp, dst, dp)
        if flags & 0x02:  # SYN: this direction starts
            isn[key] = seq
            segs[key] = {}
            continue
        if not payload:
            continue
        if key not in isn:
            isn[key] = (seq - 1) & 0xFFFFFFFF
            segs[key] = {}
        segs[key].setdefault((seq - isn[key] - 1) & 0xFFFFFFFF, payload)
    out = {}
    for key, parts in segs.items():
        stream, pos = b"", 0
        for at in sorted(parts):
            seg = parts[at]
            if at + len(seg) <= pos:
                continue
            stream += seg[pos - at:] if at < pos else seg
            pos = len(stream)
        out[key] = stream
    return out
