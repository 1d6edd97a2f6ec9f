#!/usr/bin/env python3
"""The wallboard in headless Chromium (plain W3C WebDriver, as
qc_pages.py): a supervisor opens /qc/wallboard and the page goes live
(Server-Sent Events). The test that runs this (tests/qc_web.rs,
browser_wallboard_*) reads this script's output and acts on three lines:
"waiting for a caller" (it calls the queue, nobody logged in), "hang up
now" (the caller hangs up) and "stop the daemon now". The page must show
each change without being reloaded (a marker set in the page survives).

  python3 tests/browser/qc_wallboard.py --base http://127.0.0.1:PORT \
      --queue 12345 --password PW
"""

from qc_pages import Browser, check, login, parse_args, step, wait_for


def main():
    a = parse_args("queue")
    base = a.base.rstrip("/")

    def cell(queue, f):
        return (f"document.querySelector('tr[data-queue=\"{queue}\"] "
                f"td[data-f=\"{f}\"]').textContent")

    b = Browser(a.chromium, a.chromedriver)
    try:
        step("sup logs in and opens the wallboard")
        login(b, base, "sup", a.password)
        b.click('nav a[href="/qc/wallboard"]')
        wait_for(b, "return document.getElementById('wallboard') !== null", "the wallboard")
        check(b.js(f"return {cell(a.queue, 'waiting')}") == "0", "nobody waits yet", b)
        wait_for(b, "return document.getElementById('wb-status').dataset.state === 'live'",
                 "the page follows the stream")
        b.js("window.wallboardMarker = 'not reloaded'")
        updated = b.text("#wb-at")

        step("waiting for a caller")
        wait_for(b, f"return {cell(a.queue, 'waiting')} === '1'",
                 "the caller shows as waiting", timeout=30)
        check(b.js("return window.wallboardMarker") == "not reloaded",
              "the page was updated in place, not reloaded", b)
        check(b.js(f"return {cell('', 'waiting')}") == "1", "the total shows the caller", b)
        wait_for(b, f"return {cell(a.queue, 'longest_wait')} >= '00:02'", "the wait grows")
        check(b.text("#wb-at") != updated, "the time of the last update moves on", b)

        step("the caller waits: hang up now")
        wait_for(b, f"return {cell(a.queue, 'waiting')} === '0'",
                 "the caller is gone from the board", timeout=20)
        check(b.js("return window.wallboardMarker") == "not reloaded", "still not reloaded", b)
        wait_for(b, f"return {cell(a.queue, 'offered')} === '1'",
                 "today's figures count the call", timeout=20)

        step("stop the daemon now")
        wait_for(b, "return document.getElementById('wb-status').dataset.state === 'lost'",
                 "the page says the connection is lost", timeout=40)
        check("reconnecting" in b.text("#wb-conn"), f"it says it reconnects: {b.text('#wb-conn')}", b)
        step("all steps passed")
    finally:
        b.quit()


if __name__ == "__main__":
    main()
