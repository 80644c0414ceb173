"""`manage.py runs_export`: the list's filters as options, stdout or a file, clear errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tests import factories
from workflows.inspector.export import COLUMNS


@pytest.fixture
def runs(live, flaky_workflow, flaky, alice):
    """Two failed runs, then one succeeded run, of "Ledger sync"."""
    made = [
        factories.run_executed(flaky_workflow, customer=factories.customer(live), user=alice)
        for _ in range(2)
    ]
    flaky["fail"] = False
    made.append(
        factories.run_executed(flaky_workflow, customer=factories.customer(live), user=alice)
    )
    flaky["fail"] = True
    return made


def export(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("runs_export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_writes_the_filtered_runs_as_csv_to_stdout(runs, flaky_workflow):
    out, err = export("--status", "failed", "--workflow", str(flaky_workflow.pk))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["run_id"]) for r in rows] == [runs[1].pk, runs[0].pk]
    assert {r["failed_step"] for r in rows} == {"sync"}
    assert err == ""  # no progress when the data itself goes to stdout


def test_it_writes_exactly_what_the_lists_export_link_downloads(runs, vic):
    out, _ = export("--status", "failed")
    client = Client()
    client.force_login(vic)
    response = client.get(reverse("runs:export_csv"), {"status": "failed"})
    assert out == b"".join(response.streaming_content).decode()


def test_it_takes_a_workflow_by_name(runs):
    out, _ = export("--format", "json", "--workflow", "Ledger sync", "--status", "succeeded")
    assert [r["run_id"] for r in json.loads(out)] == [runs[2].pk]


def test_it_writes_json_to_a_file_with_a_progress_counter(runs, tmp_path):
    target = tmp_path / "runs.json"
    out, err = export("--format", "json", "--output", str(target))
    rows = json.loads(target.read_text())
    assert [r["run_id"] for r in rows] == [r.pk for r in reversed(runs)]
    assert set(rows[0]) == set(COLUMNS)
    assert "\rExported 3 / 3 runs (100%)" in err
    assert f"Exported 3 runs (all runs) to {target}." in err
    assert out == ""
    assert not (tmp_path / "runs.json.part").exists()


def test_it_exports_another_environment_when_asked(runs, sandbox, flaky, alice):
    wf = factories.workflow_active(sandbox, factories.flaky_definition("Sandbox sync"), alice)
    other = factories.run_executed(wf, customer=factories.customer(sandbox), user=alice)
    out, _ = export("--environment", "sandbox")
    assert [int(r["run_id"]) for r in csv.DictReader(io.StringIO(out))] == [other.pk]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--status", "broken"], "--status: Unknown status 'broken'."),
        (["--since", "last week"], "--since: Use a date (2026-01-31)"),
        (["--until", "31/01/2026"], "--until: Use a date"),
        (["--since", "2026-13-45"], "--since: Use a date"),  # well formed, no such day
        (["--workflow", "No such workflow"], "--workflow: no workflow named 'No such workflow'"),
        (["--environment", "staging"], "--environment: no environment 'staging'"),
    ],
)
def test_a_bad_option_is_refused_naming_it(runs, args, message):
    with pytest.raises(CommandError) as raised:
        export(*args)
    assert message in str(raised.value)


def test_an_unknown_format_is_refused_naming_the_option(runs):
    with pytest.raises(CommandError, match="--format"):
        export("--format", "xml")
