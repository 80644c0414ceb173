"""Make the operator's guide's screenshots: `.venv/bin/python docs/guide/screenshots.py`.

From the repository's root, after `python3 dev.py test --co -q` (or `dev.py start`) made
`.venv`. It

1. makes a fresh database: the SQLite file `var/guide-screenshots.sqlite3` (removed first), or
   the database `DATABASE_URL` names, which must be empty (on PostgreSQL the History panels
   and `/api/v1/history` have something to show; SQLite records no history),
2. migrates it and loads the demo data (`seed_demo`: demo users, customers, invoices),
3. starts the web server and one worker cluster on it (as `dev.py start` does), and a small
   stand-in for a ledger partner that the "Ledger sync" workflow posts to,
4. drives headless Chromium (Playwright) through the guide's tasks as the demo users, and
5. writes each screenshot, cut to the element or region it shows, 1280 pixels wide at most,
   into `docs/guide/images/`.

Options: `--port` (default 8137; the partner listens on the next port), `--only` to make the
images of some pages only (`--only region history`), `--images DIR` to write them elsewhere (to
compare), `CHROMIUM=/path` for another Chromium.
The run takes about two minutes; its server and worker log is `var/guide-screenshots.log`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent / "images"
PYTHON = sys.executable
SQLITE_FILE = ROOT / "var" / "guide-screenshots.sqlite3"
LOG_FILE = ROOT / "var" / "guide-screenshots.log"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH = 1280
PAGES = ("region", "history", "handoff", "recover")

# The customer the ledger partner has no account for (a failure no restart can fix).
UNKNOWN_TO_LEDGER = "Rita Moreau"
HANDOFF_NOTE = (
    "Ledger team says their maintenance ended at 09:40; the failures since then are ours. "
    "Ticket DEV-482."
)
RESOLVE_NOTE = "No ledger account for Rita Moreau: finance books this invoice by hand (FIN-231)."


# ---------------------------------------------------------------------------------------------
# The ledger partner: answers 503 while it is "down", 200 once it is back, and always 422 for
# invoices of customers it has no ledger account for (a failure no restart can fix).


class Partner:
    def __init__(self, port: int) -> None:
        self.port = port
        self.down = True
        self.unknown_customers: set[str] = set()
        self.accepted: list[dict] = []
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if partner.down:
                    self._answer(503, {"error": "Ledger is down for maintenance; try later."})
                elif body.get("customer") in partner.unknown_customers:
                    self._answer(
                        422, {"error": f"No ledger account for customer {body.get('customer')}."}
                    )
                else:
                    partner.accepted.append(body)
                    self._answer(200, {"entry": f"led_{len(partner.accepted):04d}"})

            def _answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ledger/invoices"


def ledger_definition(url: str) -> dict:
    return {
        "name": "Ledger sync",
        "trigger": {"type": "event", "event": "invoice.paid", "accounts": "platform"},
        "steps": [
            {
                "id": "fetch_customer",
                "type": "action",
                "action": "customers.retrieve",
                "params": {"customer": "{{ trigger.data.object.customer }}"},
            },
            {
                "id": "mark_sending",
                "type": "action",
                "action": "invoices.update",
                "params": {
                    "invoice": "{{ trigger.data.object.id }}",
                    "metadata": {"ledger": "sending"},
                },
            },
            {
                "id": "post_ledger",
                "type": "action",
                "action": "http.post",
                "params": {
                    "url": url,
                    "body": {
                        "invoice": "{{ trigger.data.object.id }}",
                        "customer": "{{ trigger.data.object.customer }}",
                        "email": "{{ steps.fetch_customer.output.email }}",
                        "amount_paid": "{{ trigger.data.object.amount_paid }}",
                        "currency": "{{ trigger.data.object.currency }}",
                    },
                },
            },
            {
                "id": "mark_synced",
                "type": "action",
                "action": "invoices.update",
                "params": {
                    "invoice": "{{ trigger.data.object.id }}",
                    "metadata": {"ledger": "synced"},
                },
            },
        ],
    }


# ---------------------------------------------------------------------------------------------
# Database, server and worker


def prepare_environment(port: int) -> None:
    """Settings for this process and the server and worker it starts (they inherit them)."""
    if not os.environ.get("DATABASE_URL"):
        SQLITE_FILE.parent.mkdir(exist_ok=True)
        SQLITE_FILE.unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{SQLITE_FILE}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",  # Playwright's loop runs in this thread
            "DEBUG": "true",
            "PORT": str(port),
            "SITE_URL": f"http://127.0.0.1:{port}",
            "EMAIL_URL": "console://",
            "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
            # Quick retries, so a burst of failures takes seconds, not minutes.
            "BILLFLOW_STEP_MAX_ATTEMPTS": "3",
            "BILLFLOW_RETRY_BASE_SECONDS": "0.5",
            "BILLFLOW_RETRY_MAX_SECONDS": "1",
            "BILLFLOW_OUTAGE_RETRY_SECONDS": "1",
        }
    )


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    if connection.introspection.table_names():
        sys.exit(
            f"{os.environ['DATABASE_URL']} is not empty: give the screenshots a fresh database "
            "(they load demo data and change it)."
        )


def manage(*args: str) -> None:
    with LOG_FILE.open("a") as log:
        subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True, stdout=log, stderr=log)


@contextmanager
def server_and_worker(port: int) -> Iterator[None]:
    log = LOG_FILE.open("a")
    procs = [
        subprocess.Popen(
            [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=ROOT, stdout=log, stderr=log),
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise RuntimeError(f"The server did not start; see {LOG_FILE}.") from None
                time.sleep(0.25)
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def wait_for(what: str, done: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Gave up waiting for {what}; see {LOG_FILE}.")
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# Screenshots


class Camera:
    """Saves a locator, or the region around several, as docs/guide/images/<name>.png."""

    def __init__(self, folder: Path = IMAGES) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.made: list[str] = []

    def element(self, locator, name: str) -> None:
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(self.folder / f"{name}.png"), animations="disabled")
        self._made(name)

    def region(self, page, locators: list, name: str, *, pad: int = 8, max_height=900) -> None:
        """The smallest box around `locators` (plus `pad`), the page's full width at most."""
        boxes = []
        for locator in locators:
            locator.scroll_into_view_if_needed()
            boxes.append(locator.bounding_box())
        scroll_y = page.evaluate("window.scrollY")
        top = max(0, min(b["y"] for b in boxes) - pad)
        left = max(0, min(b["x"] for b in boxes) - pad)
        right = min(WIDTH, max(b["x"] + b["width"] for b in boxes) + pad)
        bottom = max(b["y"] + b["height"] for b in boxes) + pad
        clip = {
            "x": left,
            "y": top + scroll_y,
            "width": right - left,
            "height": min(max_height, bottom - top),
        }
        page.screenshot(
            path=str(self.folder / f"{name}.png"), clip=clip, full_page=True, animations="disabled"
        )
        self._made(name)

    def _made(self, name: str) -> None:
        self.made.append(f"{name}.png")
        print(f"  {self.folder / name}.png", flush=True)


def sign_in(browser, base_url: str, username: str, *, height: int = 900):
    context = browser.new_context(base_url=base_url, viewport={"width": WIDTH, "height": height})
    context.set_default_timeout(20_000)
    # The admin's navigation sidebar folded away (its own toggle's setting): more room for the
    # canvas and the tables.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-demo")
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: "/admin/login/" not in url)
    return page


# ---------------------------------------------------------------------------------------------
# (1) Build the region workflow


def _add_step(page, *, parent="", path="", position=0, kind="action", action="") -> None:
    page.click(f'.wf-add[data-parent="{parent}"][data-path="{path}"][data-position="{position}"]')
    page.wait_for_selector("#wf-add-form")
    page.check(f'input[name=kind][value="{kind}"]')
    if action:
        page.select_option("#id_action", action)
    page.click("#wf-add-submit")
    page.wait_for_selector("#wf-step-form")


def _path_condition(page, prefix: str, field: str, op: str, value: str) -> None:
    page.fill(f'input[name="{prefix}-g0-r0-field"]', field)
    page.select_option(f'select[name="{prefix}-g0-r0-op"]', op)
    page.fill(f'input[name="{prefix}-g0-r0-value"]', value)


def _save_step(page) -> None:
    page.click("#wf-save")
    page.wait_for_selector("#wf-panel .wf-saved:has-text('Saved')")


REGIONS = [("North America", "US, CA"), ("Europe", "FR, DE, IT, ES, NL")]


def shoot_region(browser, base_url: str, camera: Camera) -> None:
    from billing.models import Customer

    page = sign_in(browser, base_url, "manager", height=1400)
    page.goto("/admin/workflows/")
    page.fill("#id_name", "Tag customer region")
    page.select_option("#id_event", "customer.created")
    camera.region(page, [page.locator("#wf-create-form")], "region-new-workflow")
    page.click("#wf-create")
    page.wait_for_url("**/admin/workflows/*/")

    # The branch: North America, Europe, and the else path "Rest of world".
    _add_step(page, kind="branch")
    page.fill('input[name="path0-name"]', REGIONS[0][0])
    _path_condition(page, "path0", "trigger.data.object.address.country", "in", REGIONS[0][1])
    page.fill('input[name="path1-name"]', "Rest of world")
    page.click('button[name="_editor"][value="path:add"]')
    page.wait_for_selector('input[name="path2-name"]')
    page.fill('input[name="path2-name"]', REGIONS[1][0])
    _path_condition(page, "path2", "trigger.data.object.address.country", "in", REGIONS[1][1])
    _save_step(page)
    camera.element(page.locator("#wf-panel"), "region-branch-paths")

    # One "Update a customer" per path; the customer comes from the field picker.
    for index, location in enumerate(["North America", "Europe", "Rest of world"]):
        _add_step(page, parent="branch", path=str(index), action="customers.update")
        if index == 1:
            page.click("#wf-field-p_customer .wf-picker-open")
            page.wait_for_selector("#wf-slot-id_p_customer .wf-picker")
            page.fill("#wf-slot-id_p_customer input[name=q]", "object.id")
            pick = '#wf-slot-id_p_customer .wf-pick[data-insert="{{ trigger.data.object.id }}"]'
            page.wait_for_selector(pick)
            camera.element(page.locator("#wf-panel"), "region-field-picker")
            page.click(pick)
        else:
            page.fill("#id_p_customer", "{{ trigger.data.object.id }}")
        page.fill("#id_p_metadata", f"Location = {location}")
        _save_step(page)
        if index == 1:
            camera.element(page.locator("#wf-panel"), "region-update-step")
    camera.element(page.locator("#wf-canvas"), "region-canvas")

    # A test run against Louise Martin's customer.created event (Lyon, FR).
    louise = Customer.objects.get(email="louise.martin@example.fr", environment__slug="live")
    page.click("#wf-test-link")
    page.wait_for_selector("#wf-test-form")
    option = page.locator(f"#wf-test-event option:has-text('{louise.id}')")
    page.select_option("#wf-test-event", option.get_attribute("value"))
    page.click("#wf-test-submit")
    page.wait_for_selector("#wf-test-result")
    params = page.locator("#wf-canvas details.wf-run-detail", has_text="Params")
    params.evaluate_all("details => details.forEach(d => d.open = true)")
    camera.element(page.locator("#wf-panel"), "region-test-result")
    camera.element(page.locator("#wf-canvas"), "region-test-canvas")

    page.click("#wf-publish")
    page.wait_for_selector(".messagelist:has-text('Published')")
    page.click("#wf-activate")
    page.wait_for_selector("#wf-header .wf-status:has-text('Active')")
    camera.element(page.locator("#wf-header"), "region-active")
    page.context.close()


# ---------------------------------------------------------------------------------------------
# (2) Find why a customer was changed


def shoot_history(browser, base_url: str, camera: Camera) -> None:
    import httpx

    from billing.api_keys import api_key_create
    from billing.models import Customer, Environment
    from workflows.models import Run, Workflow

    # The manager adds a customer in Madrid; the region workflow tags it.
    page = sign_in(browser, base_url, "manager")
    page.goto("/admin/billing/customer/add/")
    page.fill("#id_email", "lucia.garcia@example.es")
    page.fill("#id_name", "Lucia Garcia")
    page.fill("#id_address", json.dumps({"city": "Madrid", "country": "ES"}))
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/billing/customer/")
    page.context.close()
    lucia = Customer.objects.get(email="lucia.garcia@example.es")
    region = Workflow.objects.get(name="Tag customer region")
    wait_for(
        "the region workflow's run",
        lambda: Run.objects.filter(workflow=region, status="succeeded").exists(),
    )
    run = Run.objects.filter(workflow=region).latest("pk")

    # Support corrects the name's accents.
    page = sign_in(browser, base_url, "support")
    page.goto(f"/admin/billing/customer/{lucia.pk}/change/")
    page.fill("#id_name", "Lucía García")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/billing/customer/")
    page.context.close()

    page = sign_in(browser, base_url, "viewer")
    page.goto(f"/admin/billing/customer/{lucia.pk}/change/")
    camera.element(page.locator("#history-panel"), "history-customer-panel")
    camera.element(page.locator("#runs-touching"), "history-runs-touching")
    page.goto(f"/admin/runs/{run.pk}/")
    changed = page.locator(".bf-step:has(.bf-changes)")
    camera.element(changed.first, "history-run-changed-objects")
    page.context.close()

    # The same answer from the API, for the page's example.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    live = Environment.objects.get(slug="live")
    _, raw = api_key_create(environment=live, name="Guide", role="viewer")
    answer = httpx.get(
        f"{base_url}/api/v1/history",
        params={"object": lucia.id},
        headers={"Authorization": f"Bearer {raw}"},
    )
    print(f"  GET /api/v1/history?object={lucia.id} (the changes of updates):")
    for entry in answer.json()["data"]:
        changes = entry["changes"] if entry["action"] == "updated" else "…"
        print(f"    {entry['id']} {entry['actor']} {entry['action']} {changes}")


# ---------------------------------------------------------------------------------------------
# (3) and (4): a burst of failed runs at the ledger partner


def make_burst(partner: Partner) -> list:
    """Activate Ledger sync and pay an invoice of each card-paying customer while the partner
    is down: every run fails at `post_ledger`."""
    from billing import services
    from billing.models import Customer, Environment
    from workflows import services as workflow_services
    from workflows.models import Run

    live = Environment.objects.get(slug="live")
    workflow = workflow_services.workflow_create(
        environment=live, definition=ledger_definition(partner.url)
    )
    workflow_services.workflow_publish(workflow=workflow)
    workflow_services.workflow_activate(workflow=workflow)
    rita = services.customer_create(
        environment=live,
        email="rita.moreau@example.fr",
        name=UNKNOWN_TO_LEDGER,
        address={"city": "Nantes", "country": "FR"},
        default_payment_method="pm_card_visa",
        idempotency_key="guide:customer:rita",
    )
    partner.unknown_customers.add(rita.id)
    payers = list(
        Customer.objects.filter(
            environment=live, account=None, default_payment_method="pm_card_visa"
        )
        .exclude(pk=rita.pk)
        .order_by("pk")
    ) + [rita]
    for n, customer in enumerate(payers):
        currency = (customer.metadata or {}).get("preferred_currency", "usd")
        invoice = services.invoice_create(
            customer=customer,
            lines=[
                {
                    "amount": 4900 + 100 * n,
                    "currency": currency,
                    "description": "Consulting hours",
                    "quantity": 1,
                }
            ],
            description="Consulting hours",
            idempotency_key=f"guide:invoice:{n}",
        )
        invoice = services.invoice_finalize(invoice=invoice, idempotency_key=f"guide:fin:{n}")
        services.invoice_pay(
            invoice=invoice,
            payment_method=customer.default_payment_method,
            idempotency_key=f"guide:pay:{n}",
        )
    wait_for(
        f"{len(payers)} failed Ledger sync runs",
        lambda: Run.objects.filter(workflow=workflow, status="failed").count() == len(payers),
        timeout=240,
    )
    return [workflow, rita]


def shoot_handoff(browser, base_url: str, camera: Camera, workflow) -> None:
    from workflows.models import Run

    run = Run.objects.filter(workflow=workflow, status="failed").latest("pk")
    page = sign_in(browser, base_url, "manager")
    page.goto(f"/admin/runs/{run.pk}/")
    camera.element(page.locator(".bf-run-summary"), "handoff-run-summary")
    camera.element(page.locator("#step-post_ledger"), "handoff-step-attempts")
    if page.locator("#note-body").count():
        page.fill("#note-body", HANDOFF_NOTE)
        page.click("#add-note")
        page.wait_for_selector(f"#run-notes li:has-text('{HANDOFF_NOTE[:20]}')")
        camera.element(page.locator("#run-notes"), "handoff-note")
    page.goto(f"/admin/runs/?workflow={workflow.pk}&status=failed")
    camera.region(
        page, [page.locator("#run-filters"), page.locator(".bf-export")], "handoff-export"
    )
    page.context.close()


def shoot_recover(browser, base_url: str, camera: Camera, workflow, partner: Partner) -> None:
    from workflows.models import Run

    page = sign_in(browser, base_url, "manager")
    page.goto("/admin/runs/")
    page.select_option("select[name=workflow]", str(workflow.pk))
    page.wait_for_url(f"**workflow={workflow.pk}**")
    page.select_option("select[name=status]", "failed")
    page.wait_for_url("**status=failed**")
    rows = page.locator("#run-table tbody tr")
    camera.region(page, [page.locator("#run-filters"), rows.nth(4)], "recover-failed-runs")
    if page.locator("#bulk-bar").count():
        # Two rows ticked: the bar restarts (or cancels) the selection.
        rows.nth(0).locator(".bf-row-select").check()
        rows.nth(1).locator(".bf-row-select").check()
        camera.region(page, [page.locator("#bulk-bar"), rows.nth(2)], "recover-select-rows")
        rows.nth(0).locator(".bf-row-select").uncheck()
        rows.nth(1).locator(".bf-row-select").uncheck()

    # One run's preview, in the default mode and from the start.
    one = Run.objects.filter(workflow=workflow, status="failed").latest("pk")
    page.goto(f"/admin/runs/{one.pk}/restart/")
    camera.element(page.locator("#restart-preview"), "recover-restart-preview")
    if page.locator("#mode-from_start").count():
        page.check("#mode-from_start")
        page.wait_for_selector("#repeats-warning")
        camera.element(page.locator("#restart-preview"), "recover-restart-from-start")

    # The whole filter, restarted from the failed step once the partner is back.
    page.goto(f"/admin/runs/?workflow={workflow.pk}&status=failed")
    page.click("#bulk-restart-link")
    panel = "#batch-panel" if page.locator("#bulk-bar").count() else "#bulk-preview"
    page.wait_for_selector(f"{panel} #bulk-total")
    camera.element(page.locator(panel), "recover-bulk-preview")
    partner.down = False  # the ledger is back
    page.click("#confirm-bulk-restart")
    if panel == "#batch-panel":
        page.wait_for_selector("#batch-panel.bf-batch-succeeded", timeout=120_000)
    else:
        page.wait_for_selector("#bulk-result")
    camera.element(page.locator(panel), "recover-bulk-result")
    wait_for(
        "the restarted runs to finish",
        lambda: (
            not Run.objects.filter(workflow=workflow, status__in=["pending", "running"]).exists()
        ),
    )
    page.goto(f"/admin/runs/?workflow={workflow.pk}")
    rows = page.locator("#run-table tbody tr")
    camera.region(page, [page.locator("#run-table thead"), rows.nth(4)], "recover-after-restart")

    # The one no restart can fix: resolved with a note.
    left = Run.objects.filter(workflow=workflow, status="failed").latest("pk")
    page.goto(f"/admin/runs/{left.pk}/")
    camera.element(page.locator(".bf-run-summary"), "recover-unfixable-run")
    if page.locator("#resolve-link").count():
        page.click("#resolve-link")
        page.fill("#resolve-note", RESOLVE_NOTE)
        camera.element(page.locator("#resolve-form"), "recover-resolve-form")
        page.click("#confirm-resolve")
        page.get_by_text(f"Run {left.pk} resolved.").wait_for()
        page.goto(f"/admin/runs/{left.pk}/")
        page.wait_for_selector("#run-status:has-text('resolved')")
        camera.element(page.locator(".bf-run-summary"), "recover-resolved")
        camera.element(page.locator("#run-notes"), "recover-resolution-note")
    page.context.close()


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8137)
    parser.add_argument("--only", nargs="*", choices=PAGES, default=list(PAGES))
    parser.add_argument("--images", type=Path, default=IMAGES, help="where the PNGs go")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"Needs Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM=…).")
    os.chdir(ROOT)
    LOG_FILE.parent.mkdir(exist_ok=True)
    LOG_FILE.write_text("")
    prepare_environment(args.port)
    django_setup()
    print("Migrating and loading the demo data …", flush=True)
    manage("migrate", "--no-input")
    manage("seed_demo")
    partner = Partner(args.port + 1)
    base_url = f"http://127.0.0.1:{args.port}"
    camera = Camera(args.images.resolve())

    from playwright.sync_api import sync_playwright

    with server_and_worker(args.port), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        wanted = set(args.only)
        if wanted & {"region", "history"}:
            print("(1) Build the region workflow", flush=True)
            shoot_region(browser, base_url, camera)
        if "history" in wanted:
            print("(2) Find why a customer was changed", flush=True)
            shoot_history(browser, base_url, camera)
        if wanted & {"handoff", "recover"}:
            print("A burst of failed runs at the ledger partner …", flush=True)
            workflow, _ = make_burst(partner)
            print("(4) Hand a failure to a developer", flush=True)
            shoot_handoff(browser, base_url, camera, workflow)
            if "recover" in wanted:
                print("(3) Recover a burst of failed runs", flush=True)
                shoot_recover(browser, base_url, camera, workflow, partner)
        browser.close()
    print(f"{len(camera.made)} images in {camera.folder}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
