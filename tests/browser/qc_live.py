#!/usr/bin/env python3
"""The QC live-monitoring page in headless Chromium (plain W3C WebDriver,
as qc_pages.py): a QC user logs in, finds the agent's call on /qc/live and
presses "Whisper"; the page says the user's softphone is ringing. The test
that runs this (tests/qc_web.rs, browser_*) answers that softphone and
checks what the agent and the caller hear.

  python3 tests/browser/qc_live.py --base http://127.0.0.1:PORT \
      --agent 1001 --password PW
"""

from qc_pages import Browser, check, login, parse_args, step, wait_for


def main():
    a = parse_args("agent")
    base = a.base.rstrip("/")
    row = f'tr[data-agent="{a.agent}"]'
    b = Browser(a.chromium, a.chromedriver)
    try:
        step("qc1 logs in and opens the live calls")
        login(b, base, "qc1", a.password)
        b.click('nav a[href="/qc/live"]')
        wait_for(b, f"return document.querySelector('{row}') !== null", f"agent {a.agent}'s call is listed")
        buttons = b.js(f"return [...document.querySelectorAll('{row} button')].map(x => x.className)")
        check(buttons == ["listen", "whisper", "barge"], f"a button per mode: {buttons}", b)
        check("2001" in b.source(), "the page names the softphone it rings", b)

        step("qc1 presses Whisper: the softphone rings")
        b.click(f"{row} button.whisper")
        wait_for(b, "return document.getElementById('notice') !== null", "the ringing notice")
        check("ringing" in b.text("#notice"), f"the notice says it rings: {b.text('#notice')}", b)
        check("/qc/live" in b.url(), "back on the live page", b)
        step("all steps passed")
    finally:
        b.quit()


if __name__ == "__main__":
    main()
