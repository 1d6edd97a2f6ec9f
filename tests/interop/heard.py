#!/usr/bin/env python3
"""Find prompts in a recording of what a caller heard (stdlib only).

usage: heard.py RECORDING.wav PROMPTS_DIR EXPECT [--absent NAME ...]

  EXPECT   comma-separated prompt names (e.g. zh/welcome_12333,zh/enter_id)
           that must all be found, in this order.
  --absent prompt names that must NOT be found (negative controls: they
           show the detector tells prompts apart).

The recording must be 8 kHz 16-bit mono (run.sh converts with sox first).
Each prompt is located in two steps:

 1. Coarse: the 10 ms RMS envelope of the prompt is slid over the envelope of
    the recording; the offset with the highest normalized (Pearson)
    correlation is the candidate.  Cheap enough for pure Python.
 2. Fine: around the candidate (+-20 ms), the normalized correlation of the
    samples themselves (the first 2 s of the prompt).  The daemon sends the
    prompt's samples G.711-encoded, so the decoded audio matches the file
    sample for sample (G.711 quantization alone keeps this near 0.999);
    a merely similar-sounding prompt does not.

A prompt is "found" when both scores pass their thresholds.  Prints one line
per prompt and exits 1 if an expected prompt is missing, out of order, or an
absent one is found.
"""

import array
import math
import operator
import sys
import wave

RATE = 8000
FRAME = 80  # 10 ms
ENV_MIN = 0.85
SAMPLE_MIN = 0.80
FINE_SECS = 2.0
FINE_SLACK = 160  # samples either side of the coarse offset


def read_wav(path):
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            sys.exit(
                f"{path}: need 8 kHz 16-bit mono, got {w.getframerate()} Hz "
                f"{8 * w.getsampwidth()}-bit {w.getnchannels()} ch"
            )
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return a


def envelope(a):
    out = []
    for i in range(0, len(a) - FRAME + 1, FRAME):
        seg = a[i : i + FRAME]
        out.append(math.sqrt(sum(map(operator.mul, seg, seg)) / FRAME))
    return out


def best_ncc(hay, needle, lo, hi):
    """Best normalized correlation of needle against hay[k:k+len(needle)] for
    k in [lo, hi]; returns (score, k)."""
    m = len(needle)
    if m == 0 or len(hay) < m:
        return (0.0, -1)
    lo = max(lo, 0)
    hi = min(hi, len(hay) - m)
    if hi < lo:
        return (0.0, -1)
    mean_n = sum(needle) / m
    nz = [x - mean_n for x in needle]
    norm_n = math.sqrt(sum(x * x for x in nz))
    if norm_n == 0:
        return (0.0, -1)
    # Running sums for the windows of hay.
    s = sum(hay[lo : lo + m])
    s2 = sum(x * x for x in hay[lo : lo + m])
    best = (-2.0, -1)
    for k in range(lo, hi + 1):
        if k > lo:
            old, new = hay[k - 1], hay[k + m - 1]
            s += new - old
            s2 += new * new - old * old
        var = s2 - s * s / m
        if var <= 1e-9:
            continue
        # sum((h - mean_h) * nz) == sum(h * nz) because sum(nz) == 0
        dot = sum(map(operator.mul, hay[k : k + m], nz))
        score = dot / (math.sqrt(var) * norm_n)
        if score > best[0]:
            best = (score, k)
    return best


def locate(rec, rec_env, prompt):
    env = envelope(prompt)
    env_score, kf = best_ncc(rec_env, env, 0, len(rec_env))
    if kf < 0:
        return (env_score, 0.0, -1)
    n = min(len(prompt), int(FINE_SECS * RATE))
    # Skip the prompt's leading silence for the fine match.
    start = 0
    while start < len(prompt) - n and abs(prompt[start]) < 64:
        start += 1
    needle = prompt[start : start + n]
    centre = kf * FRAME + start
    smp_score, ks = best_ncc(rec, needle, centre - FINE_SLACK, centre + FINE_SLACK)
    return (env_score, smp_score, (ks - start) if ks >= 0 else kf * FRAME)


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        sys.exit(__doc__)
    rec_path, prompts_dir, expect = args[0], args[1], args[2]
    absent = []
    if len(args) > 3:
        if args[3] != "--absent":
            sys.exit(__doc__)
        absent = args[4:]
    rec = read_wav(rec_path)
    rec_env = envelope(rec)
    print(f"heard: {rec_path}: {len(rec) / RATE:.1f} s")
    ok = True
    last_pos, last_name = -1, None
    for name in [n for n in expect.split(",") if n]:
        env_s, smp_s, pos = locate(rec, rec_env, read_wav(f"{prompts_dir}/{name}.wav"))
        found = env_s >= ENV_MIN and smp_s >= SAMPLE_MIN
        order_ok = pos > last_pos
        verdict = "found" if found else "MISSING"
        if found and not order_ok:
            verdict = f"OUT OF ORDER (before {last_name})"
        print(
            f"heard:   {name:28} {verdict:10} at {pos / RATE:6.2f} s  "
            f"envelope {env_s:.3f}  samples {smp_s:.3f}"
        )
        if not (found and order_ok):
            ok = False
        if found:
            last_pos, last_name = pos, name
    for name in absent:
        env_s, smp_s, pos = locate(rec, rec_env, read_wav(f"{prompts_dir}/{name}.wav"))
        found = env_s >= ENV_MIN and smp_s >= SAMPLE_MIN
        print(
            f"heard:   {name:28} {'FOUND (must be absent)' if found else 'absent':10} "
            f"best {pos / RATE:6.2f} s  envelope {env_s:.3f}  samples {smp_s:.3f}"
        )
        if found:
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
