"""The Content-Security-Policy holds and the pages still work under it (headless Chromium).

Each page is loaded as a signed-in Admin; the browser's console must show no CSP violation and
htmx must have loaded (it is a file, so `script-src 'self'` allows it).
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.admin.utils import quote
from django.db import connections
from django.test import Client

from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(monkeypatch):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        message = f"needs Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM=...)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # in CI a missing browser is a failure, never a skip
        pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # plain synchronous code around it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            # Connections are kept (DATABASE_CONN_MAX_AGE): the one the test's database work
            # opened under Playwright would outlive the session and keep the test database
            # from being dropped at the end.
            connections.close_all()
            b.close()


def _signed_in_context(browser, live_server, user):
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context


def _violations(page, url: str) -> list[str]:
    messages: list[str] = []
    page.on(
        "console",
        lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None,
    )
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, (url, response and response.status)
    assert "Content-Security-Policy" in response.headers or "content-security-policy" in {
        k.lower() for k in response.headers
    }
    return messages


def test_it_loads_admin_builder_and_run_pages_without_csp_violations(browser, live_server):
    live = factories.environment("live")
    alice = factories.user("alice", "Admin")
    customer = factories.customer(live, email="csp@example.com")
    workflow = factories.workflow_active(live, factories.region_workflow_definition())
    from workflows.actions import registry

    state: dict = {}
    factories.flaky_action(state)
    try:
        flaky = factories.workflow_active(live, factories.flaky_definition())
        run = factories.run_executed(flaky, customer=customer)
    finally:
        registry.unregister("tests.flaky")

    pages = [
        "/admin/",
        "/admin/billing/customer/",
        f"/admin/billing/customer/{quote(customer.pk)}/change/",
        "/admin/workflows/",
        f"/admin/workflows/{workflow.pk}/",
        "/admin/runs/",
        f"/admin/runs/{run.pk}/",
    ]
    context = _signed_in_context(browser, live_server, alice)
    try:
        for path in pages:
            page = context.new_page()
            found = _violations(page, live_server.url + path)
            assert found == [], (path, found)
            if path.startswith(("/admin/workflows/", "/admin/runs/")):
                assert page.evaluate("typeof window.htmx") == "object", path
            page.close()
    finally:
        context.close()


def test_it_loads_the_login_page_and_the_api_docs_without_csp_violations(browser, live_server):
    context = browser.new_context()
    try:
        page = context.new_page()
        assert _violations(page, live_server.url + "/admin/login/") == []
        page = context.new_page()
        assert _violations(page, live_server.url + "/api/v1/docs") == []
        # Swagger UI (served from our static files) rendered the operations.
        page.wait_for_selector(".opblock", timeout=10_000)
    finally:
        context.close()


def test_the_builder_opens_a_step_panel_through_htmx_under_the_policy(browser, live_server):
    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, factories.region_workflow_definition())
    context = _signed_in_context(browser, live_server, mona)
    try:
        page = context.new_page()
        found = _violations(page, f"{live_server.url}/admin/workflows/{workflow.pk}/")
        page.click('a.wf-title[href*="/steps/tag_eu/"]')
        page.wait_for_selector("#wf-panel form", timeout=10_000)
        page.wait_for_load_state("networkidle")
        assert "tag_eu" in page.inner_text("#wf-panel")
        assert page.url.endswith("/steps/tag_eu/")  # hx-push-url ran
        assert found == []
    finally:
        context.close()
