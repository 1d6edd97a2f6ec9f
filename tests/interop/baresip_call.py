#!/usr/bin/env python3
"""Drive a running baresip over its ctrl_tcp module (stdlib only).

usage: baresip_call.py CTRL_PORT URI SCHEDULE...

  SCHEDULE  steps "SECONDS:KEYS": wait SECONDS, then press KEYS one by one
            (KEYS may be empty: just wait).  The first wait starts when the
            call is established.

Dials URI, follows the schedule, hangs up, asks baresip to quit.  Prints
"call-id: ID" (the SIP Call-ID, to find the call record) and exits 0, or
exits 1 if the call was not established or ended before the schedule did.

baresip 1.0 ctrl_tcp protocol (from the module's source; no docs shipped):
netstrings ("LEN:JSON,") over TCP both ways.  Commands are
{"command": NAME, "params": STR, "token": STR}; responses carry
"response": true and the token; events carry "event": true, "type"
(CALL_ESTABLISHED, CALL_CLOSED, ...) and "id" (the Call-ID).  Commands used
here come from the menu module: dial, sndcode (send DTMF: RFC 4733 when the
peer accepted telephone-event), hangup, quit.
"""

import json
import socket
import sys
import threading
import time

KEY_GAP = 0.3  # seconds between key presses (each press is a new event)



_print_lock = threading.Lock()


def say(text):
    """One whole line, never interleaved with the reader thread's lines
    (print() writes the text and its newline separately)."""
    with _print_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

class Ctrl:
    def __init__(self, port):
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.settimeout(None)
        self.events = []
        self.cond = threading.Condition()
        self.token = 0
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.events.append({"event": True, "type": "CTRL_CLOSED"})
                    self.cond.notify_all()
                return
            buf += data
            while b":" in buf:
                head, rest = buf.split(b":", 1)
                n = int(head)
                if len(rest) < n + 1:
                    break
                msg = json.loads(rest[:n])
                buf = rest[n + 1 :]
                with self.cond:
                    self.events.append(msg)
                    self.cond.notify_all()
                if msg.get("event"):
                    say(f"baresip: event {msg.get('type')} {msg.get('param', '')}")

    def send(self, command, params=None):
        self.token += 1
        msg = {"command": command, "token": str(self.token)}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def wait_event(self, types, timeout):
        deadline = time.time() + timeout
        with self.cond:
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if ev.get("event") and ev.get("type") in types:
                        return ev
                seen = len(self.events)
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def closed(self):
        with self.cond:
            return any(e.get("type") in ("CALL_CLOSED", "CTRL_CLOSED") for e in self.events)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    port, uri, schedule = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    ctrl = Ctrl(port)
    ctrl.send("dial", uri)
    ev = ctrl.wait_event({"CALL_ESTABLISHED", "CALL_CLOSED"}, 15)
    if not ev or ev["type"] != "CALL_ESTABLISHED":
        say(f"baresip: call not established: {ev}")
        ctrl.send("quit")
        sys.exit(1)
    say(f"call-id: {ev.get('id')}")
    ok = True
    for step in schedule:
        secs, _, keys = step.partition(":")
        end = time.time() + float(secs)
        while time.time() < end:
            if ctrl.closed():
                break
            time.sleep(0.05)
        if ctrl.closed():
            say(f"baresip: call ended early, before step {step!r}")
            ok = False
            break
        if keys:
            say(f"baresip: pressing {len(keys)} key(s)")
        for k in keys:
            ctrl.send("sndcode", k)
            time.sleep(KEY_GAP)
    if not ctrl.closed():
        ctrl.send("hangup")
        ctrl.wait_event({"CALL_CLOSED"}, 10)
    ctrl.send("quit")
    time.sleep(0.5)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
