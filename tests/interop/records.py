#!/usr/bin/env python3
"""Read call records back from the daemon's HTTP API and check them (stdlib only).

usage:
  records.py PORT health SECONDS
      wait until GET /healthz answers 200 (exit 1 if it does not in time)
  records.py PORT check CALL_ID_PREFIX COUNT FIELD=VALUE...
      wait (up to 20 s) until COUNT records whose call_id starts with
      CALL_ID_PREFIX are in GET /api/calls?limit=200, then check every one
      has each FIELD equal to VALUE ("null" means JSON null; "FIELD~TEXT"
      means the field, a list or a string, contains TEXT).  Prints the
      records' key fields; exits 1 on any mismatch.
  records.py PORT field CALL_ID FIELD
      print FIELD of the record whose call_id is CALL_ID ("null" for JSON
      null; exit 1 if there is no such record)
  records.py PORT search QUERY CALL_ID_PREFIX
      GET /api/calls?QUERY (the records search, e.g. agent=1001&dialed=12345)
      and print the call_id of each record found that starts with
      CALL_ID_PREFIX, one a line (exit 1 if the request fails)
"""

import json
import sys
import time
import urllib.request

SHOWN = (
    "call_id", "dialed", "caller", "disposition", "self_service_result", "hangup_by",
    "hangup_reason", "sip_status", "codec", "language", "duration_ms", "ivr_path",
    "queue", "agent", "talk_ms", "transfer_target",
)


def get(port, path, timeout=3):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def health(port, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            if get(port, "/healthz")[0] == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.2)
    print(f"records: /healthz on port {port} not up after {secs} s")
    return 1


def matches(rec, cond):
    if "~" in cond and ("=" not in cond or cond.index("~") < cond.index("=")):
        field, text = cond.split("~", 1)
        val = rec.get(field)
        if isinstance(val, list):
            return text in val, val
        return isinstance(val, str) and text in val, val
    field, want = cond.split("=", 1)
    val = rec.get(field)
    if want == "null":
        return val is None, val
    return str(val) == want, val


def check(port, prefix, count, conds):
    deadline = time.time() + 20
    recs = []
    while True:
        try:
            recs = [
                r for r in json.loads(get(port, "/api/calls?limit=200")[1])
                if str(r.get("call_id", "")).startswith(prefix)
            ]
        except (OSError, ValueError) as e:
            print(f"records: GET /api/calls failed: {e}")
        if len(recs) >= count or time.time() > deadline:
            break
        time.sleep(0.5)
    ok = True
    if len(recs) != count:
        print(f"records: {len(recs)} record(s) with call_id {prefix}*, expected {count}")
        ok = False
    for r in recs:
        print("records: " + json.dumps({k: r.get(k) for k in SHOWN}, ensure_ascii=False))
        for c in conds:
            good, val = matches(r, c)
            if not good:
                print(f"records:   {r.get('call_id')}: expected {c}, got {val!r}")
                ok = False
    return 0 if ok else 1


def field(port, call_id, name):
    try:
        recs = json.loads(get(port, "/api/calls?limit=200")[1])
    except (OSError, ValueError) as e:
        print(f"records: GET /api/calls failed: {e}", file=sys.stderr)
        return 1
    for r in recs:
        if r.get("call_id") == call_id:
            val = r.get(name)
            print("null" if val is None else val)
            return 0
    print(f"records: no record {call_id}", file=sys.stderr)
    return 1


def search(port, query, prefix):
    try:
        recs = json.loads(get(port, f"/api/calls?{query}")[1])
    except (OSError, ValueError) as e:
        print(f"records: GET /api/calls?{query} failed: {e}", file=sys.stderr)
        return 1
    for r in recs:
        if str(r.get("call_id", "")).startswith(prefix):
            print(r["call_id"])
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[1] == "health":
        sys.exit(health(int(a[0]), float(a[2])))
    if len(a) >= 4 and a[1] == "check":
        sys.exit(check(int(a[0]), a[2], int(a[3]), a[4:]))
    if len(a) == 4 and a[1] == "field":
        sys.exit(field(int(a[0]), a[2], a[3]))
    if len(a) == 4 and a[1] == "search":
        sys.exit(search(int(a[0]), a[2], a[3]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
