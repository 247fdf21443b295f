#!/usr/bin/env python3
"""Looks for a marker in every TCP byte stream of a capture: the harness's
check that PBS_ENCRYPT_METHOD=momgate leaves no job script text on the
wire (and, without encryption, that the same capture does show it).

    link_scan.py CAPTURE.pcap MARKER

Prints how many streams and bytes the capture holds and which streams
(source -> destination) carry the marker, reassembled so that a marker cut
across two segments is found too. Exit status 0 if the marker is found, 1
if it is not, 2 on bad input.
"""
import sys

import pcap


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[4].strip(), file=sys.stderr)
        return 2
    path, marker = sys.argv[1], sys.argv[2].encode()
    try:
        flows = pcap.streams(path)
    except (OSError, ValueError) as e:
        print("link_scan: %s" % e, file=sys.stderr)
        return 2
    total = sum(len(b) for b in flows.values())
    hits = sorted("%s:%d -> %s:%d" % k for k, b in flows.items() if marker in b)
    print("link: %d TCP streams, %d bytes; the marker is in %d of them%s" %
          (len(flows), total, len(hits), (": " + ", ".join(hits)) if hits else ""))
    return 0 if hits else 1


if __name__ == "__main__":
    sys.exit(main())
