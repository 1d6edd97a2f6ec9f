#!/usr/bin/env python3
"""Delay the daemon adds to bridged RTP, and packets it loses (stdlib only).

usage: bridge_delay.py CAPTURE.pcap RTP_LOW RTP_HIGH AGENT_MEDIA_PORT

CAPTURE is `tcpdump -i lo --time-stamp-precision=nano -w` of the RTP on lo
during a window of bench/bridged.sh (snaplen >= 58). Packets to a daemon
port (RTP_LOW..RTP_HIGH) from elsewhere come in; packets from a daemon port
go out. Direction "c2a": in from a caller, out to the agents' SIPp (its one
media port AGENT_MEDIA_PORT); "a2c": the agents' echo in, out to a caller.

The bridge rewrites SSRC, sequence and timestamp, so a packet is known by
its payload: the bench callers send frames whose first 4 payload bytes are
a frame counter (unique within a 60 s file; the agents echo it back). An
out-stream (daemon source port) is paired with the in-stream (daemon
destination port) whose packet with the same counter arrived last before
it within 10 ms (less than a frame), by a vote over its first packets, one
in-stream per out-stream, the most votes and then the least delay first.
Streams whose callers send the same counter within the same microseconds
cannot be told apart: they may be swapped, which moves a delay by their
offset (a frame seen out before it came in is left out of the delays)
and changes no loss count. Per pair: delay = out time - in time for each counter seen on
both (kernel time stamps on lo); lost = counters that came in at least
0.5 s before the window's end and never went out.

Prints one line of key=value per direction.
"""

import struct
import sys
from collections import Counter, defaultdict

VOTE = 30          # out-packets per stream used to find its in-stream
MAX_NS = 10_000_000


def packets(path):
    """(time_ns, sport, dport, counter) per UDP/IPv4 packet with >= 4 payload bytes."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack_from("<I", data, 0)[0]
    endian, scale = {0xA1B23C4D: ("<", 1), 0xA1B2C3D4: ("<", 1000),
                     0x4D3CB2A1: (">", 1), 0xD4C3B2A1: (">", 1000)}.get(magic, (None, 0))
    if endian is None:
        sys.exit(f"bridge_delay: {path}: not a pcap file")
    l2 = {1: 14, 113: 16, 276: 20}.get(struct.unpack_from(endian + "I", data, 20)[0])
    if l2 is None:
        sys.exit("bridge_delay: link type not supported")
    off = 24
    rec = struct.Struct(endian + "IIII")
    while off + 16 <= len(data):
        sec, frac, incl, _ = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        if len(pkt) < l2 + 20 or pkt[l2] >> 4 != 4 or pkt[l2 + 9] != 17:
            continue
        udp = l2 + (pkt[l2] & 0x0F) * 4
        rtp = udp + 8
        if len(pkt) < rtp + 16:
            continue
        sport, dport = struct.unpack_from(">HH", pkt, udp)
        counter = struct.unpack_from(">I", pkt, rtp + 12)[0]
        yield sec * 1_000_000_000 + frac * scale, sport, dport, counter


def pct(vals, p):
    if not vals:
        return float("nan")
    return vals[min(len(vals) - 1, max(0, int(round(p / 100 * (len(vals) - 1)))))]


def analyse(ins, outs, end_ns):
    """ins/outs: port -> [(t, counter)]. Returns the key=value text."""
    by_counter = defaultdict(list)          # counter -> [(t_in, in_port)]
    for port, pkts in ins.items():
        for t, c in pkts:
            by_counter[c].append((t, port))
    votes = []
    for oport, pkts in outs.items():
        v, delay = Counter(), Counter()
        for t, c in pkts[:VOTE]:
            for ti, iport in by_counter.get(c, ()):
                d = t - ti
                if 0 <= d <= MAX_NS:
                    v[iport] += 1
                    delay[iport] += d
        for iport, n in v.items():
            votes.append((-n, delay[iport] / n, oport, iport))
    votes.sort()
    pair, taken = {}, set()
    for n, _, oport, iport in votes:
        n = -n
        if oport not in pair and iport not in taken and n >= 5:
            pair[oport] = iport
            taken.add(iport)
    delays, lost, sent = [], 0, 0
    for oport, iport in pair.items():
        out_t = {}
        for t, c in outs[oport]:
            out_t.setdefault(c, t)
        for t, c in ins[iport]:
            if t > end_ns - 500_000_000:
                continue
            sent += 1
            to = out_t.get(c)
            if to is None:
                lost += 1
            elif to >= t:   # else a swapped twin stream's frame (see above)
                delays.append(to - t)
    delays.sort()
    us = lambda ns: f"{ns / 1000:.0f}" if ns == ns else "nan"
    return (f"streams_in={len(ins)} streams_out={len(outs)} pairs={len(pair)} "
            f"packets={sent} p50_us={us(pct(delays, 50))} p99_us={us(pct(delays, 99))} "
            f"max_us={us(delays[-1] if delays else float('nan'))} lost={lost} "
            f"lost_pct={(100 * lost / sent if sent else float('nan')):.3f}")


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    path = sys.argv[1]
    lo, hi, agent = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    flows = {d: (defaultdict(list), defaultdict(list)) for d in ("c2a", "a2c")}
    end = 0
    for t, sp, dp, c in packets(path):
        end = max(end, t)
        ours_s, ours_d = lo <= sp <= hi, lo <= dp <= hi
        if ours_d and not ours_s:
            flows["a2c" if sp == agent else "c2a"][0][dp].append((t, c))
        elif ours_s and not ours_d:
            flows["c2a" if dp == agent else "a2c"][1][sp].append((t, c))
    for d, (ins, outs) in flows.items():
        print(f"dir={d} " + analyse(ins, outs, end))


if __name__ == "__main__":
    main()
