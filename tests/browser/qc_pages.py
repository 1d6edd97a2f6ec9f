#!/usr/bin/env python3
"""The QC pages driven in headless Chromium, through ChromeDriver's W3C
WebDriver protocol (plain urllib: no client library to install).

A QC user logs in, opens the sampled recording from the worklist, the audio
loads (the browser's own requests answered 206), scores it with a pinned
comment; the agent's team lead disputes the score; a supervisor settles it;
the report shows it; the KPI page shows the day's figures (those the test
computed from the database) and its charts. Run by tests/qc_web.rs against a daemon it set up:

  qc_pages.py --base http://127.0.0.1:PORT --recording ID --password PW \
      --kpi-day YYYY-MM-DD --kpi-offered N --kpi-answered N

Exits non-zero with the failing step on stderr; stops ChromeDriver itself.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, chromium, chromedriver):
        self.port = free_port()
        self.driver = subprocess.Popen(
            [chromedriver, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 20
        while True:
            try:
                self._call("GET", "/status")
                break
            except Exception:
                if time.time() > deadline:
                    raise SystemExit("chromedriver did not start")
                time.sleep(0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--mute-audio",
                         "--autoplay-policy=no-user-gesture-required",
                         "--no-proxy-server"],
            },
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"webdriver {method} {path}: {e.code} {e.read()[:500]!r}")

    def s(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def url(self):
        return self.s("GET", "/url")

    def find(self, css):
        return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def text(self, css):
        return self.s("GET", f"/element/{self.find(css)}/text")

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def source(self):
        return self.s("GET", "/source")

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            self.driver.terminate()
            self.driver.wait(10)


def step(name):
    print(f"browser: {name}", flush=True)


def check(cond, what, b=None):
    if not cond:
        extra = ""
        if b is not None:
            extra = f"\nURL {b.url()}\n{b.source()[:3000]}"
        raise SystemExit(f"browser check failed: {what}{extra}")


def wait_for(b, script, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = b.js(script)
        if v:
            return v
        time.sleep(0.2)
    check(False, what, b)


def login(b, base, name, password):
    b.go(f"{base}/qc/login")
    b.type("#name", name)
    b.type("#password", password)
    b.click("#login")
    wait_for(b, "return document.getElementById('who') !== null", f"{name} is logged in")
    check(name in b.text("#who"), f"the header names {name}", b)


def logout(b):
    b.click("form.logout button")
    wait_for(b, "return location.pathname === '/qc/login'", "logged out to the log-in page")


def parse_args(*required):
    """--base, --password and `required` (all needed), --chromium and
    --chromedriver (Debian's paths by default)."""
    ap = argparse.ArgumentParser()
    for name in ("base", "password") + required:
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return ap.parse_args()


def main():
    a = parse_args("recording", "kpi-day", "kpi-offered", "kpi-answered")
    base, rec = a.base.rstrip("/"), a.recording
    b = Browser(a.chromium, a.chromedriver)
    try:
        step("a page without a session leads to the log-in form")
        b.go(f"{base}/qc/")
        check("/qc/login" in b.url(), "redirected to /qc/login", b)

        step("qc1 logs in and opens the sample from the worklist")
        login(b, base, "qc1", a.password)
        check(b.url().endswith("/qc/"), "back on the worklist", b)
        b.click(f'tr.rec[data-id="{rec}"] a')
        wait_for(b, "return document.getElementById('player') !== null", "the call page")

        step("the audio loads and plays (206 Partial Content)")
        wait_for(b, "const a = document.getElementById('player'); return a.readyState >= 1 && a.duration > 1",
                 "the audio's metadata loaded")
        b.js("const a = document.getElementById('player'); a.currentTime = 1.0; a.play();")
        statuses = wait_for(b, """
            const s = performance.getEntriesByType('resource')
              .filter(e => e.name.includes('/audio')).map(e => e.responseStatus);
            return s.length ? s : null;""", "the audio was fetched")
        check(206 in statuses, f"the browser got 206 for the audio: {statuses}")
        duration = b.js("return document.getElementById('player').duration")
        check(1.5 < duration < 10, f"the recording is as long as the call: {duration}")
        check(b.js("return document.getElementById('waveform').naturalWidth > 0"), "the waveform shows", b)
        check(b.js("return document.querySelectorAll('#timeline tr').length >= 3"), "the timeline shows", b)

        step("qc1 scores it: greeting missed, identity N/A, a pinned comment")
        b.click('input[name="item.greeting"][value="no"]')
        b.click('input[name="item.verify"][value="na"]')
        b.type("#comments", "00:01 no greeting")
        b.click("#submit-score")
        wait_for(b, "return document.querySelector('.score .total') !== null", "the score shows")
        check(b.text(".score .total") == "50.0", f"total 50.0, got {b.text('.score .total')}", b)
        check(b.js("return document.querySelector('.comments [data-at-ms=\"1000\"]') !== null"),
              "the comment is pinned at 00:01", b)
        logout(b)

        step("lead_a disputes the score")
        login(b, base, "lead_a", a.password)
        b.go(f"{base}/qc/recordings/{rec}")
        b.type("#dispute-reason", "the greeting was given at 00:00")
        b.click("#dispute")
        wait_for(b, "return document.querySelector('.dispute') !== null", "the dispute shows")
        check("lead_a" in b.text(".dispute"), "disputed by lead_a", b)
        logout(b)

        step("sup settles it: revised to 90")
        login(b, base, "sup", a.password)
        b.go(f"{base}/qc/recordings/{rec}")
        b.click('input[name="outcome"][value="revised"]')
        b.type('input[name="revised_total"]', "90")
        b.type('input[name="note"]', "greeting heard")
        b.click("#settle")
        wait_for(b, "return document.querySelector('.settled') !== null", "the settlement shows")
        check("revised" in b.text(".settled"), "settled as revised", b)

        step("the report shows the monitored recording and its revised score")
        b.click('nav a[href="/qc/report"]')
        wait_for(b, "return document.getElementById('monitored') !== null", "the report")
        check(b.text("#monitored") == "1", f"1 monitored, got {b.text('#monitored')}", b)
        check(b.text("#average") == "90.0", f"average 90.0, got {b.text('#average')}", b)
        check(b.js("return document.querySelectorAll('svg.chart rect.bar').length >= 2"), "the charts draw", b)

        step(f"the KPI page for {a.kpi_day}: the day's figures and charts")
        b.click('nav a[href="/qc/kpi"]')
        wait_for(b, "return document.getElementById('k-from') !== null", "the KPI page")
        b.js("document.getElementById('k-from').value = arguments[0];"
             "document.getElementById('k-to').value = arguments[0];", a.kpi_day)
        b.click("#show")
        wait_for(b, f"return location.search.includes('from={a.kpi_day}')", "the chosen day shown")
        check(b.text("#offered") == a.kpi_offered, f"offered {a.kpi_offered}, got {b.text('#offered')}", b)
        check(b.text("#answered") == a.kpi_answered, f"answered {a.kpi_answered}, got {b.text('#answered')}", b)
        check(b.js("return document.querySelectorAll('svg rect').length >= 1"), "the KPI charts draw", b)
        check(b.js("return document.querySelector('#kpi-agents') !== null"
                   " && document.querySelector('#kpi-agents').textContent.includes('1001')"),
              "agent 1001 in the per-agent table", b)
        step("all steps passed")
    finally:
        b.quit()


if __name__ == "__main__":
    main()
