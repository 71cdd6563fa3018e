"""`python -m tests.demo_screenshot`: docs/screenshot-demo.png, the demo inbox as Maya sees it.

A fresh demo workspace (in a temporary directory) under a real server, Debian's Chromium under
Playwright (see tests/browser.py), signed in as the demo admin, with Grace Okoye's WhatsApp
conversation open: its delivery ticks, its linked deal and person, and their notes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from server.demo import content
from server.demo.seed import ensure_demo
from tests import support
from tests.browser import CHROMIUM, CHROMIUM_ARGS, ROOT, browser_missing, expect, sync_playwright
from tests.support import LiveServer, free_port, settings_for

SHOT = ROOT / "docs" / "screenshot-demo.png"


def main() -> None:
    missing = browser_missing()
    if missing:
        raise SystemExit(f"cannot take the screenshot: {missing}")
    with tempfile.TemporaryDirectory(prefix="switchboard-shot-") as tmp:
        port = free_port()
        settings = settings_for(
            f"sqlite:///{Path(tmp) / 'demo.db'}", Path(tmp), PUBLIC_URL=f"http://127.0.0.1:{port}"
        )
        ensure_demo(settings)
        live = LiveServer(settings, support.TestClock(), port=port)
        live.start()
        try:
            _shoot(live.url)
        finally:
            live.stop()
    print(f"wrote {SHOT.relative_to(ROOT)}")


def _shoot(url: str) -> None:
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(url + "/")
            page.get_by_label("Work email").fill(content.ADMIN.email)
            page.get_by_label("Password").fill(content.PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.locator('.section-link[data-section="mine"]').click()
            page.locator(".conv-item", has_text="Grace Okoye").click()
            expect(page.locator(".msg-text").last).to_contain_text("okoye-studio", timeout=10_000)
            expect(page.locator(".note")).to_have_count(2, timeout=10_000)
            page.mouse.move(0, 0)
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT))
        finally:
            browser.close()


if __name__ == "__main__":
    main()
