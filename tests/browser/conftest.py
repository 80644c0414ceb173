"""Browser tests: headless Chromium from Debian's packages, driven by Playwright.

Fixtures (generic, for every browser test in this folder):

* `chromium` — the launched browser (one per test module). Without Chromium the test fails when
  `CI=true` and is skipped with the reason otherwise; `CHROMIUM=/path` points elsewhere.
* `new_page(user=None)` — a page in a fresh context on pytest-django's `live_server`, signed in
  as `user` when given (a session made by the test client, no login form).
* `login(page, username)` — signs in through the admin's login form.
* `screenshot(page, name)` — saves `docs/screenshots/<name>.png`.

`live_server` makes every test transactional: workers and the server see what a test writes.
Playwright's sync API runs an event loop in the test thread, so the test's own ORM calls need
DJANGO_ALLOW_ASYNC_UNSAFE (they are plain synchronous code around it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 20_000


def pytest_collection_modifyitems(items) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.browser)


# One browser per test module: Playwright's sync API allows one running instance per thread,
# so a module that starts its own (or another folder's tests) is never blocked by this one.
@pytest.fixture(scope="module")
def chromium() -> Iterator:
    if not Path(CHROMIUM).exists():
        message = f"needs Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM=…)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            # Connections are kept (DATABASE_CONN_MAX_AGE): one the tests' database work left
            # open under Playwright would outlive the session and keep the test database from
            # being dropped at the end.
            from django.db import connections

            connections.close_all()
            browser.close()


@pytest.fixture
def new_page(chromium, live_server) -> Iterator[Callable]:
    contexts: list = []

    def make(user=None, *, width: int = 1440, height: int = 1000):
        context = chromium.new_context(
            base_url=live_server.url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(TIMEOUT_MS)
        if user is not None:
            from django.test import Client

            client = Client()
            client.force_login(user)
            context.add_cookies(
                [
                    {
                        "name": "sessionid",
                        "value": client.cookies["sessionid"].value,
                        "url": live_server.url,
                    }
                ]
            )
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def login() -> Callable:
    def sign_in(page, username: str, password: str = "password") -> None:
        page.goto("/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(lambda url: "/admin/login/" not in url)

    return sign_in


@pytest.fixture
def screenshot() -> Callable:
    def save(page, name: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save
