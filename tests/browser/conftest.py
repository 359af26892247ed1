"""Headless Chromium (Debian's, installed by scripts/test.sh) signed in as the test user."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def signed_in(live_server, user, monkeypatch) -> Iterator[Callable[[str], Any]]:
    """``open(path)`` -> the page at ``path``, after the login form when it asks for one."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the live server's ORM calls
    # happen in its own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert os.path.exists(CHROMIUM), "Debian chromium is installed by scripts/test.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def open_page(path: str) -> Any:
            page.goto(f"{live_server.url}{path}")
            if page.locator("#id_username").count():
                page.fill("#id_username", "alice")
                page.fill("#id_password", "pw-alice-123")
                page.click("main button[type=submit]")
            return page

        yield open_page
        browser.close()
