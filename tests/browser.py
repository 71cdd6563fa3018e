"""Browser-test helpers: Debian's Chromium under Playwright, a web server, signing in."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import REQUIRE_ALL, LiveServer, TestClock, free_port, settings_for

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # the dev extra is not installed: reported by `browser_missing`
    sync_playwright = None

CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
# No internet here: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if sync_playwright is None:
        return "the `playwright` package is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def launch_browser() -> Iterator[Browser]:
    """Chromium for a test module; without it: fail under SWITCHBOARD_REQUIRE_ALL=1, else skip."""
    missing = browser_missing()
    if missing:
        if REQUIRE_ALL:
            pytest.fail(f"browser tests need Chromium and Playwright: {missing}", pytrace=False)
        pytest.skip(f"!!! BROWSER TESTS LEFT OUT: {missing}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=10_000)
        try:
            yield browser
        finally:
            browser.close()


def web_server(data_dir: Path) -> LiveServer:
    """A server whose PUBLIC_URL is its real address, so the browser's Origin is allowed."""
    port = free_port()
    settings = settings_for(
        f"sqlite:///{data_dir / 'web.db'}", data_dir, PUBLIC_URL=f"http://127.0.0.1:{port}"
    )
    return LiveServer(settings, TestClock(), port=port)


@dataclass
class Watched:
    """A page with what it did that it should not: uncaught errors and JavaScript dialogs."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def watch(page: Page) -> Watched:
    watched = Watched(page)
    page.on("pageerror", lambda error: watched.errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return watched


def sign_in(context: BrowserContext, base_url: str, email: str, path: str = "/") -> Watched:
    """Open the app and sign in through the form; returns once the inbox is shown."""
    watched = watch(context.new_page())
    page = watched.page
    page.goto(base_url + path)
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".topbar")).to_be_visible()
    return watched


def section(page: Page, key: str) -> Any:
    return page.locator(f'.section-link[data-section="{key}"]')


def screenshot(page: Page, name: str, *also: Path) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    for extra in also:
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_bytes(path.read_bytes())
    return path


class HeldRequests:
    """The page's requests to `url` are held, unanswered, until the test answers them: a way to
    make something happen while a response is on its way (`route.fetch()` reads the server's
    answer at that moment, `route.fulfill(response=...)` delivers it later)."""

    def __init__(self, page: Page, url: str | re.Pattern[str]) -> None:
        self.page = page
        self.url = url
        self.routes: list[Any] = []
        page.route(url, self._hold)

    def _hold(self, route: Any) -> None:
        self.routes.append(route)

    def first(self, timeout: float = 10.0) -> Any:
        """The oldest held request's route, waiting for one to come."""
        deadline = time.monotonic() + timeout
        while not self.routes:
            assert time.monotonic() < deadline, "the page sent no such request"
            self.page.wait_for_timeout(20)  # lets Playwright hand the route to us
        return self.routes[0]

    def release(self, response: Any) -> None:
        """Stop holding, and answer every request held so far with `response`: all of them were
        sent before it was read (a slow start may have sent one more than the test expects)."""
        for route in self.routes:
            route.fulfill(response=response)
        self.routes.clear()
        self.page.unroute(self.url, self._hold)  # it would let requests still held through
