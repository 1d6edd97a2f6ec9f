#!/usr/bin/env python3
"""Recorded bridged calls: every recording against its call (bench/bridged.sh recorded).

    recording_gaps.py DATA_DIR CALL_ID_PREFIX [DAEMON_LOG]

For each call whose Call-ID starts with the prefix: its recording row and
file. Prints one line of key=value:

  calls        call records with a talk time (bridged)
  recordings   recording rows of those calls, complete
  files        files that open as stereo 8 kHz 16-bit WAV
  len_diff_max the largest |file length - bridged time (talk_ms)|, ms
  len_over_60  calls whose file length differs from the bridged time by > 60 ms
  missing      frames of the call absent from its recording, both channels,
               from 300 ms after the start to 300 ms before the end. The
               bench's audio numbers its frames (the first 4 A-law bytes of
               each 20 ms frame count up, and the agents echo them), so each
               frame is looked for by its number in the recording (A-law
               again: G.711 decode/encode is exact).
  lost_in      of those, frames that never reached the daemon: the sequence
               gaps the bridge saw on that side (its "bridge ended" log line,
               DAEMON_LOG), per call and channel
  gaps         missing - lost_in, per call and channel (never below 0):
               frames the daemon received and the recording lacks
  gap_calls    calls with a gap
  silent       20 ms windows of pure digital silence inside a call (the
               recorder's fill; SIPp's audio never decodes to 0)
  mb           megabytes of WAV written
"""
import audioop  # Python <= 3.12; bookworm has 3.11
import re
import sqlite3
import struct
import sys
import wave

data, prefix = sys.argv[1], sys.argv[2]
log = sys.argv[3] if len(sys.argv) > 3 else None
db = sqlite3.connect(f"file:{data}/hotline.db?mode=ro", uri=True, timeout=10)
calls = dict(db.execute(
    "SELECT call_id, talk_ms FROM call_records WHERE call_id LIKE ? AND talk_ms IS NOT NULL",
    (prefix + "%",)))
rows = db.execute(
    "SELECT call_id, path, duration_ms, status FROM recordings WHERE call_id LIKE ? AND kind = 'call'",
    (prefix + "%",)).fetchall()
complete = [r for r in rows if r[3] == "complete" and r[0] in calls]

# call_id -> (caller_lost, agent_lost), from the daemon's "bridge ended" lines.
lost = {}
if log:
    pat = re.compile(r"bridge ended.*?call_id=(\S+).*?caller_lost=(\d+).*?agent_lost=(\d+)")
    with open(log, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if m:
                c = lost.get(m.group(1), (0, 0))
                lost[m.group(1)] = (c[0] + int(m.group(2)), c[1] + int(m.group(3)))

SILENCE = b"\xd5\xd5\xd5\xd5"


def counter(a, o):
    return int.from_bytes(a[o:o + 4], "big")


def first_frame(a, lo, hi):
    """(offset, number) of the first numbered frame in a[lo:hi]: 3 frames in
    a row counting up."""
    for o in range(lo, min(hi, len(a) - 3 * 160 - 4)):
        c = counter(a, o)
        if a[o:o + 4] != SILENCE and counter(a, o + 160) == c + 1 and counter(a, o + 320) == c + 2:
            return o, c
    return None


def missing_frames(chan_bytes, n):
    """Frames absent between 300 ms in and 300 ms before the end."""
    a = audioop.lin2alaw(chan_bytes, 2)
    lo, hi = 2400, n - 2400
    start = first_frame(a, lo, lo + 2000)
    if start is None:
        return max(0, (hi - lo) // 160)
    # The last numbered frame: search backwards from the end.
    end = None
    for o in range(hi - 160, max(lo, hi - 2400), -1):
        c = counter(a, o)
        if a[o:o + 4] != SILENCE and counter(a, o - 160) == c - 1:
            end = (o, c)
            break
    # A numbering that does not fit the file (a false match) counts the
    # whole span as missing rather than looping over a wrong range.
    if end is None or end[1] < start[1] or end[1] - start[1] > (hi - lo) // 160 + 50:
        return max(0, (hi - lo) // 160)
    missing = 0
    o, c = start
    while c <= end[1]:
        pat = c.to_bytes(4, "big")
        found = a.find(pat, max(0, o - 200), o + 400)
        if found < 0:
            # Re-placed by arrival (a stream that drifted or stalled moves
            # by up to a few seconds): look further before calling it lost.
            found = a.find(pat, max(0, o - 8000), o + 40000)
        if found < 0:
            missing += 1
            o += 160
        else:
            o = found + 160
        c += 1
    return missing


files = diff_max = over = missing_all = lost_all = gaps_all = gap_calls = silent_all = size = 0
for call_id, path, dur, _ in complete:
    try:
        w = wave.open(f"{data}/{path}", "rb")
    except (OSError, wave.Error):
        continue
    if w.getnchannels() != 2 or w.getframerate() != 8000 or w.getsampwidth() != 2:
        continue
    files += 1
    n = w.getnframes()
    raw = w.readframes(n)
    size += 44 + len(raw)
    d = abs(n / 8 - calls[call_id])
    diff_max = max(diff_max, d)
    over += d > 60
    gaps = 0
    for ch in (0, 1):
        chan = audioop.tomono(raw, 2, 1, 0) if ch == 0 else audioop.tomono(raw, 2, 0, 1)
        miss = missing_frames(chan, n)
        side_lost = lost.get(call_id, (0, 0))[ch]
        missing_all += miss
        lost_all += min(miss, side_lost)
        gaps += max(0, miss - side_lost)
        samples = struct.unpack(f"<{n}h", chan)
        silent_all += sum(1 for s in range(2400, n - 2400 - 160, 160) if not any(samples[s:s + 160]))
    gaps_all += gaps
    gap_calls += gaps > 0
print(f"calls={len(calls)} recordings={len(complete)} rows={len(rows)} files={files} "
      f"len_diff_max={diff_max:.1f} len_over_60={over} missing={missing_all} lost_in={lost_all} "
      f"gaps={gaps_all} gap_calls={gap_calls} silent={silent_all} mb={size / 1e6:.1f}")
