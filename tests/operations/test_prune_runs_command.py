"""`python manage.py prune_runs`: --dry-run counts per table and deletes nothing, --days
replaces the window (a positive whole number, else an error naming it), a progress bar on
stderr, and a last line with the rate achieved."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests import factories
from workflows.engine.store.forcing import force_rows
from workflows.models import Delivery, Run, RunNote, StepRun


def days_ago(n: float):
    return timezone.now() - timedelta(days=n)


@pytest.fixture
def history(region_workflow):
    """Two runs past the default window (3 steps each, one e-mail, one note), one 40 days
    old, and a failed run nobody resolved."""
    old = [
        factories.run_row(region_workflow, status="succeeded", created=days_ago(120), steps=3),
        factories.run_row(region_workflow, status="canceled", created=days_ago(95), steps=3),
    ]
    force_rows(Delivery).create(kind="email", idempotency_key=f"{old[0].pk}/step0/", status="sent")
    RunNote.objects.create(run=old[1], body="seen")
    factories.run_row(region_workflow, status="succeeded", created=days_ago(40), steps=3)
    factories.run_row(region_workflow, status="failed", created=days_ago(400), steps=3)
    return old


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("prune_runs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_dry_run_counts_per_table_and_deletes_nothing(history):
    out, _ = run("--dry-run")

    assert Run.objects.count() == 4
    assert StepRun.objects.count() == 12
    assert Delivery.objects.count() == 1
    assert RunNote.objects.count() == 1
    assert "Retention 90 days, dry run: nothing deleted. Would delete:" in out
    counts = dict(line.split() for line in out.splitlines()[1:])
    assert counts["workflows_run"] == "2"
    assert counts["workflows_steprun"] == "6"
    assert counts["workflows_delivery"] == "1"
    assert counts["workflows_runnote"] == "1"
    assert counts["workflows_runaudit"] == "0"


def test_dry_run_with_days_counts_the_shorter_window(history):
    out, _ = run("--dry-run", "--days", "30")

    assert "Retention 30 days, dry run" in out
    counts = dict(line.split() for line in out.splitlines()[1:])
    assert (counts["workflows_run"], counts["workflows_steprun"]) == ("3", "9")
    assert Run.objects.count() == 4


def test_it_prunes_with_a_progress_bar_and_reports_the_rate(history):
    out, err = run("--days", "30")

    assert Run.objects.count() == 1  # the failed run
    assert StepRun.objects.count() == 3
    assert (Delivery.objects.count(), RunNote.objects.count()) == (0, 0)
    assert "[------------------------------] 0 / 3 runs (0%)" in err
    assert "[##############################] 3 / 3 runs (100%)" in err
    assert "Retention 30 days: deleted runs 3, step runs 9," in out
    assert "Rate: " in out and " runs/s, " in out and " step records/s." in out


@pytest.mark.parametrize("days", ["0", "-3", "1.5", "ten"])
def test_days_must_be_a_positive_whole_number(history, days):
    with pytest.raises(CommandError) as error:
        run("--days", days)

    assert str(error.value) == f"--days: must be a positive whole number of days, not {days!r}."
    assert Run.objects.count() == 4


def test_days_given_as_a_keyword_is_checked_too(history):
    with pytest.raises(CommandError, match=r"^--days: must be a positive whole number"):
        call_command("prune_runs", days=0, stdout=StringIO())


def test_budget_must_be_a_positive_number_of_seconds(history):
    with pytest.raises(CommandError, match=r"^--budget: must be a positive number of seconds"):
        run("--budget", "0")
