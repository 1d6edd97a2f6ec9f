#!/usr/bin/env python3
"""A long-lived ctrl_tcp connection to one baresip (stdlib only).

usage:
  baresip_ctl.py run CTRL_PORT EVENTS_LOG
      connect (retrying for 10 s), then append every event baresip sends to
      EVENTS_LOG, one JSON object a line with "t" (wall-clock seconds) added;
      read commands from standard input, one a line: "NAME [PARAMS]" (e.g.
      "dial sip:12345@127.0.0.1:5060", "transfer 1002", "hangup", "quit"),
      each logged as {"t", "sent": NAME, "params"}.  Ends on end of input
      (after sending nothing more) or when baresip closes the connection.
  baresip_ctl.py wait EVENTS_LOG TYPE N SECONDS
      wait until EVENTS_LOG holds N events of TYPE (e.g. CALL_ESTABLISHED,
      REGISTER_OK); print the N-th one's "t" and "id" and exit 0, or exit 1
      after SECONDS.

baresip 1.0's ctrl_tcp keeps one connection at a time (a new one replaces
the old), so one process per baresip holds it for the whole test and the
shell drives it through a FIFO.  Protocol as in baresip_call.py: netstrings
of JSON both ways; commands are the menu module's (dial, transfer, hangup,
quit, ...).
"""

import json
import socket
import sys
import threading
import time


def run(port, log_path):
    deadline = time.time() + 10
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                print(f"baresip_ctl: no ctrl_tcp on port {port}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    sock.settimeout(None)
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def write(obj):
        obj["t"] = round(time.time(), 3)
        with lock:
            log.write(json.dumps(obj) + "\n")

    def reader():
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                write({"event": True, "type": "CTRL_CLOSED"})
                return
            buf += data
            while b":" in buf:
                head, rest = buf.split(b":", 1)
                try:
                    n = int(head)
                except ValueError:
                    write({"event": True, "type": "CTRL_GARBLED"})
                    return
                if len(rest) < n + 1:
                    break
                try:
                    msg = json.loads(rest[:n])
                except ValueError:
                    msg = {"garbled": rest[:n].decode(errors="replace")}
                buf = rest[n + 1 :]
                write(msg)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    token = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        name, _, params = line.partition(" ")
        token += 1
        msg = {"command": name, "token": str(token)}
        if params:
            msg["params"] = params
        body = json.dumps(msg).encode()
        write({"sent": name, "params": params})
        try:
            sock.sendall(str(len(body)).encode() + b":" + body + b",")
        except OSError:
            break
        if name == "quit":
            break
    t.join(2)
    return 0


def wait(log_path, kind, n, secs):
    deadline = time.time() + secs
    while True:
        seen = []
        try:
            with open(log_path) as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("event") and ev.get("type") == kind:
                        seen.append(ev)
        except OSError:
            pass
        if len(seen) >= n:
            ev = seen[n - 1]
            print(f"{ev['t']} {ev.get('id', '')}")
            return 0
        if time.time() > deadline:
            print(f"baresip_ctl: {len(seen)} {kind} event(s) in {log_path}, wanted {n}",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "run":
        sys.exit(run(int(a[1]), a[2]))
    if len(a) == 5 and a[0] == "wait":
        sys.exit(wait(a[1], a[2], int(a[3]), float(a[4])))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
