#!/usr/bin/env python3
"""Recorded bridged calls: every recording against its call (bench/bridged.sh recorded).

    recording_gaps.py DATA_DIR CALL_ID_PREFIX

For each call whose Call-ID starts with the prefix: its recording row and
file. Prints one line of key=value:

  calls        call records with a talk time (bridged)
  recordings   recording rows of those calls, complete
  files        files that open as stereo 8 kHz 16-bit WAV
  len_diff_max the largest |file length - bridged time (talk_ms)|, ms
  len_over_60  calls whose file length differs from the bridged time by > 60 ms
  gap_frames   20 ms frames inside the call (from 300 ms after the start to
               300 ms before the end) that are pure digital silence (all
               samples 0) in a channel: the recorder's gap fill. SIPp's audio
               never decodes to 0 (A-law 0xd5 is +8), so each such frame is
               audio the recording lost.
  gap_calls    calls with at least one gap frame
  mb           megabytes of WAV written
"""
import sqlite3
import struct
import sys
import wave

data, prefix = sys.argv[1], sys.argv[2]
db = sqlite3.connect(f"file:{data}/hotline.db?mode=ro", uri=True, timeout=10)
calls = dict(db.execute(
    "SELECT call_id, talk_ms FROM call_records WHERE call_id LIKE ? AND talk_ms IS NOT NULL",
    (prefix + "%",)))
rows = db.execute(
    "SELECT call_id, path, duration_ms, status FROM recordings WHERE call_id LIKE ? AND kind = 'call'",
    (prefix + "%",)).fetchall()
complete = [r for r in rows if r[3] == "complete" and r[0] in calls]
files = 0
diff_max = 0
over = 0
gap_frames = 0
gap_calls = 0
size = 0
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
    file_ms = n / 8
    d = abs(file_ms - calls[call_id])
    diff_max = max(diff_max, d)
    over += d > 60
    samples = struct.unpack(f"<{n * 2}h", raw)
    gaps = 0
    for ch in (0, 1):
        chan = samples[ch::2]
        for start in range(2400, n - 2400 - 160, 160):
            if not any(chan[start:start + 160]):
                gaps += 1
    gap_frames += gaps
    gap_calls += gaps > 0
print(f"calls={len(calls)} recordings={len(complete)} rows={len(rows)} files={files} "
      f"len_diff_max={diff_max:.1f} len_over_60={over} gap_frames={gap_frames} "
      f"gap_calls={gap_calls} mb={size / 1e6:.1f}")
