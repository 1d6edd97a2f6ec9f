#!/usr/bin/env python3
"""Inter-arrival spacing of the daemon's RTP streams in a tcpdump capture (stdlib only).

usage: rtp_spacing.py CAPTURE.pcap FROM_S TO_S

CAPTURE is `tcpdump -i lo --time-stamp-precision=nano -w` of the packets the
daemon sends (UDP from its RTP ports; a small snaplen is enough). A stream is
one daemon source port. For every packet whose capture time lies in
[first packet + FROM_S, first packet + TO_S], its gap to the previous packet
of the same stream is taken (the first packet of a stream in the window has
none). On loopback the capture time is when the daemon's sendto() put the
packet on the interface, i.e. when the caller's socket receives it: these
are the caller's received spacings.

Prints one line of key=value: streams, packets, p50/p99/max gap in ms, the
share of gaps outside 20 +- 2 ms, and the packets the capture saw per second.
"""

import struct
import sys


def packets(path):
    """(time_ns, src_port) for each UDP/IPv4 packet in a pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic == 0xA1B23C4D:
        endian, scale = "<", 1
    elif magic == 0xA1B2C3D4:
        endian, scale = "<", 1000
    elif magic == 0x4D3CB2A1:
        endian, scale = ">", 1
    elif magic == 0xD4C3B2A1:
        endian, scale = ">", 1000
    else:
        sys.exit(f"rtp_spacing: {path}: not a pcap file")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    # 1: Ethernet (lo on Linux), 113: Linux cooked (-i any), 276: cooked v2.
    l2 = {1: 14, 113: 16, 276: 20}.get(linktype)
    if l2 is None:
        sys.exit(f"rtp_spacing: link type {linktype} not supported")
    off = 24
    rec = struct.Struct(endian + "IIII")
    while off + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        if len(pkt) < l2 + 24:
            continue
        ip = l2
        if pkt[ip] >> 4 != 4 or pkt[ip + 9] != 17:
            continue
        udp = ip + (pkt[ip] & 0x0F) * 4
        if len(pkt) < udp + 2:
            continue
        sport = (pkt[udp] << 8) | pkt[udp + 1]
        yield sec * 1_000_000_000 + frac * scale, sport


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, lo_s, hi_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    first = None
    last_seen = {}
    gaps = []
    n = 0
    for t, port in packets(path):
        if first is None:
            first = t
        rel = (t - first) / 1e9
        if rel > hi_s:
            break
        prev = last_seen.get(port)
        last_seen[port] = t
        if rel < lo_s:
            continue
        n += 1
        if prev is not None:
            gaps.append((t - prev) / 1e6)
    gaps.sort()
    streams = len(last_seen)
    outside = sum(1 for g in gaps if g < 18.0 or g > 22.0)
    span = hi_s - lo_s
    print(
        f"streams={streams} packets={n} gaps={len(gaps)} "
        f"p50_ms={pct(gaps, 50):.2f} p99_ms={pct(gaps, 99):.2f} "
        f"max_ms={(gaps[-1] if gaps else float('nan')):.2f} "
        f"outside_18_22_pct={(100 * outside / len(gaps) if gaps else float('nan')):.3f} "
        f"pps={n / span if span > 0 else 0:.0f}"
    )


if __name__ == "__main__":
    main()
