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

import pcap


def client_stream(path, src_ip, dport):
    """The payload bytes of the first connection from src_ip to dport."""
    first = None
    for src, sp, dst, dp, seq, flags, payload in pcap.segments(path):
        if src == src_ip and dp == dport and flags & 0x02:
            first = (src, sp, dst, dp)
            break
    if first is None:
        return b""
    return pcap.streams(path).get(first, b"")


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
