"""Every URL, for every role, answers what docs/permissions.md says.

The table there has one row per (URL pattern, method): GET and POST for every pattern. The test
resolves the live URL list (admin model URLs with a sample object of each model, the builder,
the inspector, system workflows, the API) and fails on a URL without a row, a row without a URL,
and any status that differs. POSTs carry no data and run inside a transaction that is rolled
back, so no request changes what the next one sees.

After a deliberate change, regenerate the table with
`UPDATE_PERMISSION_MATRIX=1 python -m pytest tests/security/test_permission_matrix.py` and
review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client

from tests import factories
from tests.security_urls import ROLES, concrete, sample_world, url_routes

pytestmark = pytest.mark.django_db
DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
METHODS = ("GET", "POST")
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
ROW = re.compile(r"^\| `(?P<pattern>[^`]+)` \| (?P<method>GET|POST) \|(?P<cells>.*)\|\s*$")
LOGIN_PATH = "/admin/login/"


def _documented() -> dict[tuple[str, str], list[str]]:
    text = DOC.read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows: dict[tuple[str, str], list[str]] = {}
    for line in table.splitlines():
        match = ROW.match(line)
        if match:
            cells = [cell.strip() for cell in match["cells"].split("|")]
            rows[(match["pattern"].replace("\\|", "|"), match["method"])] = cells
    return rows


def _cell(response) -> str:
    if response.status_code in (301, 302) and response["Location"].startswith(LOGIN_PATH):
        return "login"
    return str(response.status_code)


def _clients() -> dict[str, Client]:
    clients = {}
    for column, username, group in ROLES:
        client = Client()
        if username is not None:
            client.force_login(factories.user(username, group))
        clients[column] = client
    return clients


def _request(client: Client, method: str, path: str) -> str:
    session = client.cookies.get(settings.SESSION_COOKIE_NAME)
    with transaction.atomic():
        response = client.get(path) if method == "GET" else client.post(path, {})
        transaction.set_rollback(True)
    if session is not None:  # a logout or a session change was rolled back with the rest
        client.cookies[settings.SESSION_COOKIE_NAME] = session.value
    return _cell(response)


def _observed() -> dict[tuple[str, str], list[str]]:
    clients = _clients()
    world = sample_world()
    observed = {}
    for route in url_routes():
        path = concrete(route, world)
        for method in METHODS:
            observed[("/" + route.pattern, method)] = [
                _request(clients[column], method, path) for column, _, _ in ROLES
            ]
    return observed


def _write(observed: dict[tuple[str, str], list[str]]) -> None:
    header = "| URL | method | " + " | ".join(column for column, _, _ in ROLES) + " |"
    lines = [header, "| --- | --- |" + " :-: |" * len(ROLES)]
    for (pattern, method), cells in observed.items():
        shown = pattern.replace("|", "\\|")
        lines.append(f"| `{shown}` | {method} | " + " | ".join(cells) + " |")
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


def test_every_url_answers_every_role_as_documented() -> None:
    observed = _observed()
    if os.environ.get("UPDATE_PERMISSION_MATRIX"):
        _write(observed)
    documented = _documented()

    missing = sorted(set(observed) - set(documented))
    stale = sorted(set(documented) - set(observed))
    assert not missing, f"URLs without a row in docs/permissions.md: {missing}"
    assert not stale, f"Rows in docs/permissions.md for URLs that no longer exist: {stale}"
    columns = [column for column, _, _ in ROLES]
    differences = [
        f"{method} {pattern} as {column}: documented {want}, got {got}"
        for (pattern, method), cells in observed.items()
        for column, want, got in zip(columns, documented[(pattern, method)], cells, strict=True)
        if want != got
    ]
    assert not differences, "\n".join(differences)
