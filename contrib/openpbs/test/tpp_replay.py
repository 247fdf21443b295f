#!/usr/bin/env python3
"""Replays a captured TPP connection to pbs_comm: the attacker's tool of the
harness's replay case.

    tpp_replay.py CAPTURE.pcap SRC_IP COMM_HOST COMM_PORT
    tpp_replay.py --count CAPTURE.pcap SRC_IP COMM_PORT

Reads the first TCP connection from SRC_IP to COMM_PORT in the capture (a
libpcap file of Ethernet frames, as tcpdump -w writes), cuts the client's
byte stream into TPP packets (each starts with its total length, 4 bytes,
big-endian), then connects to COMM_HOST:COMM_PORT and sends them as the
leaf did: the first packet, then, if pbs_comm answers, the rest. Prints what
happened; exit status 0 if pbs_comm closed the connection (refused), 1 if
it kept it open after everything was sent, 2 on bad input. --count only
prints how many TPP packets the capture holds (exit 0 if any).
"""
import socket
import struct
import sys


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


def client_stream(path, src_ip, dport):
    """The payload bytes of the first connection from src_ip to dport."""
    want = socket.inet_aton(src_ip)
    sport = isn = None
    segs = {}
    for fr in frames(path):
        off, etype = 14, struct.unpack("!H", fr[12:14])[0]
        if etype == 0x8100:  # VLAN tag
            off, etype = 18, struct.unpack("!H", fr[16:18])[0]
        if etype != 0x0800 or len(fr) < off + 20:
            continue
        ip = fr[off:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6 or ip[12:16] != want:
            continue
        tlen = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:tlen]
        if len(tcp) < 20:
            continue
        sp, dp, seq = struct.unpack("!HHI", tcp[:8])
        flags = tcp[13]
        if dp != dport:
            continue
        if flags & 0x02:  # SYN: a connection starts
            if sport is None:
                sport, isn = sp, seq
            continue
        if sp != sport:
            continue
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            segs.setdefault((seq - isn - 1) & 0xFFFFFFFF, payload)
    stream, pos = b"", 0
    for at in sorted(segs):
        seg = segs[at]
        if at + len(seg) <= pos:
            continue
        stream += seg[pos - at:] if at < pos else seg
        pos = len(stream)
    return stream


def tpp_packets(stream):
    out = []
    while len(stream) >= 4:
        n = struct.unpack("!I", stream[:4])[0]
        if n < 5 or n > len(stream):
            break
        out.append(stream[:n])
        stream = stream[n:]
    return out


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--count":
        try:
            n = len(tpp_packets(client_stream(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        except (OSError, ValueError):
            n = 0
        print(n)
        return 0 if n > 0 else 1
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path, src, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    try:
        pkts = tpp_packets(client_stream(path, src, port))
    except (OSError, ValueError) as e:
        print("replay: %s" % e, file=sys.stderr)
        return 2
    if not pkts:
        print("replay: no TPP packets from %s to port %d in %s" % (src, port, path), file=sys.stderr)
        return 2
    print("replay: %d captured TPP packets (%s bytes) from %s" % (len(pkts), "+".join(str(len(p)) for p in pkts), src))
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(pkts[0])
    got = b""
    try:
        got = s.recv(65536)
    except socket.timeout:
        pass
    except ConnectionResetError:
        pass
    if not got:
        print("replay: pbs_comm closed the connection after the first packet (step 1 refused)")
        return 0
    print("replay: pbs_comm answered the first packet (%d bytes): sending the captured rest" % len(got))
    try:
        for p in pkts[1:]:
            s.sendall(p)
        while True:
            more = s.recv(65536)
            if not more:
                print("replay: pbs_comm closed the connection after the rest (step 3 refused)")
                return 0
    except (ConnectionResetError, BrokenPipeError):
        print("replay: pbs_comm reset the connection after the rest (step 3 refused)")
        return 0
    except socket.timeout:
        print("replay: pbs_comm kept the replayed connection open")
        return 1


if __name__ == "__main__":
    sys.exit(main())
