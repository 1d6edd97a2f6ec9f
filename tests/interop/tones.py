#!/usr/bin/env python3
"""Audio checks for the agent-queue interop tests (stdlib only).

usage:
  tones.py check RECORDING.wav FROM TO [+FREQ | -FREQ]...
      In 100 ms windows of RECORDING (8 kHz 16-bit mono) from FROM to TO
      seconds (TO <= 0 counts from the end), the share of windows a
      tone dominates: a window belongs to FREQ when the Goertzel power at
      FREQ holds at least half the window's energy (a pure tone gives 1.0,
      speech, music and silence far less).  +FREQ must dominate at least
      80 % of the windows, -FREQ at most 5 %; ~FREQ must be present (at
      least 20 % of the window's energy: one of two mixed tones) in at
      least 80 %.  Prints one line per tone and exits 1 on a miss (or if
      the span holds under 1 s of audio).
  tones.py pcap2wav CAPTURE.pcap OUT.wav
      The RTP payloads of a classic pcap of G.711 A-law (payload type 8)
      packets, decoded to an 8 kHz 16-bit mono WAV: what SIPp's
      play_pcap_audio sends, to look for it in a recording with heard.py.
"""

import array
import math
import struct
import sys
import wave

RATE = 8000
WIN = 800  # 100 ms
DOMINANT = 0.5
PRESENT = 0.2
MIN_SHARE = 0.8
MAX_SHARE = 0.05


def read_wav(path):
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            sys.exit(f"{path}: need 8 kHz 16-bit mono")
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return a


def share(samples, freq, least=DOMINANT):
    """Share of WIN-sample windows where FREQ holds at least LEAST of the
    energy, and the window count."""
    k = 2.0 * math.cos(2.0 * math.pi * freq / RATE)
    hits = n = 0
    for i in range(0, len(samples) - WIN + 1, WIN):
        s1 = s2 = 0.0
        energy = 0.0
        for x in samples[i : i + WIN]:
            s0 = x + k * s1 - s2
            s2, s1 = s1, s0
            energy += x * x
        power = s1 * s1 + s2 * s2 - k * s1 * s2
        n += 1
        if energy > 0 and 2.0 * power / (WIN * energy) >= least:
            hits += 1
    return (hits / n if n else 0.0), n


def check(path, start, end, tones):
    rec = read_wav(path)
    total = len(rec) / RATE
    if end <= 0:
        end = total + end
    lo, hi = int(max(start, 0) * RATE), int(min(end, total) * RATE)
    seg = rec[lo:hi] if hi > lo else array.array("h")
    print(f"tones: {path}: {total:.1f} s, checking {lo / RATE:.1f}-{hi / RATE:.1f} s")
    if len(seg) < RATE:
        print("tones:   under 1 s of audio in that span")
        return 1
    ok = True
    for t in tones:
        want = t[0] in "+~"
        freq = float(t[1:])
        got, n = share(seg, freq, PRESENT if t[0] == "~" else DOMINANT)
        good = got >= MIN_SHARE if want else got <= MAX_SHARE
        rule = f">= {MIN_SHARE:.0%}" if want else f"<= {MAX_SHARE:.0%}"
        if t[0] == "~":
            rule += " present"
        print(f"tones:   {freq:6.0f} Hz in {got:6.1%} of {n} windows (want {rule}) "
              f"{'ok' if good else 'MISS'}")
        ok = ok and good
    return 0 if ok else 1


def alaw_to_linear(b):
    b ^= 0x55
    seg = (b & 0x70) >> 4
    t = (b & 0x0F) << 4
    if seg == 0:
        t += 8
    else:
        t = (t + 0x108) << (seg - 1)
    return t if b & 0x80 else -t


def pcap2wav(cap, out):
    with open(cap, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    table = [alaw_to_linear(b) for b in range(256)]
    pcm = array.array("h")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        if link == 1:  # Ethernet
            pkt = pkt[14:]
        elif link == 113:  # Linux cooked
            pkt = pkt[16:]
        if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 17:
            continue
        udp = pkt[(pkt[0] & 0x0F) * 4 :]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 8:
            continue
        hdr = 12 + 4 * (rtp[0] & 0x0F)
        pcm.extend(table[b] for b in rtp[hdr:])
    if sys.byteorder == "big":
        pcm.byteswap()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    print(f"tones: {cap}: {len(pcm) / RATE:.2f} s of A-law audio -> {out}")
    return 0 if pcm else 1


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "check":
        sys.exit(check(a[1], float(a[2]), float(a[3]), a[4:]))
    if len(a) == 3 and a[0] == "pcap2wav":
        sys.exit(pcap2wav(a[1], a[2]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
