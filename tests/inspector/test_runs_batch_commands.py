"""`manage.py runs_restart` and `runs_cancel`: the export's filters, a run batch applied in the
command's process by the workers' job code, a progress bar, clear errors."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tests import factories
from workflows.engine.runs import run_start_manual
from workflows.models import Run, RunAudit, RunBatch


@pytest.fixture
def failed(live, flaky_workflow):
    return [
        factories.run_executed(flaky_workflow, customer=factories.customer(live)) for _ in range(3)
    ]


def command(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_runs_restart_restarts_the_failed_runs_of_a_workflow_named(
    failed, flaky_workflow, alice, live, mona
):
    other = factories.workflow_active(live, factories.flaky_definition("Other"), alice)
    other_run = factories.run_executed(other, customer=factories.customer(live))
    out, err = command("runs_restart", "--workflow", "Ledger sync", "--user", "mona")
    batch = RunBatch.objects.get()
    assert (batch.action, batch.mode, batch.status, batch.total, batch.done) == (
        "restart",
        "from_failed_step",
        "succeeded",
        3,
        3,
    )
    assert f"Batch {batch.pk} (workflow={flaky_workflow.pk}): restarted 3, skipped 0" in out
    assert "[" + "#" * 30 + "] 3 / 3 runs (100%)" in err
    assert Run.objects.filter(pk__in=[r.pk for r in failed], status="pending").count() == 3
    other_run.refresh_from_db()
    assert other_run.status == Run.Status.FAILED
    audits = RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART, user=mona)
    assert sorted(a.run_id for a in audits) == sorted(r.pk for r in failed)
    # Applied in the process: nothing was queued for the workers.
    from django_q.models import OrmQ

    assert not [q for q in OrmQ.objects.all() if "run_batch_apply" in q.func()]


def test_runs_cancel_cancels_pending_runs(failed, flaky_workflow, live):
    pending = run_start_manual(
        workflow=flaky_workflow, input={"customer": factories.customer(live).pk}
    )
    out, _ = command("runs_cancel", "--status", "pending")
    assert "canceled 1, skipped 0, failed 0 of 1 runs" in out
    pending.refresh_from_db()
    assert pending.status == Run.Status.CANCELED
    assert RunAudit.objects.get(action=RunAudit.Action.BULK_CANCEL).run_id == pending.pk


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "lost"], "--status: Unknown status 'lost'."),
        (["--since", "2026-13-45"], "--since: Use a date"),
        (["--workflow", "Nope"], "--workflow: no workflow named 'Nope'"),
        (["--environment", "mars"], "--environment: no environment 'mars'"),
        (["--user", "nobody"], "--user: no user 'nobody'."),
    ],
)
def test_bad_options_are_refused_naming_the_option(failed, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        command("runs_restart", *args)
    assert not RunBatch.objects.exists()


def test_runs_restart_takes_only_known_modes(failed):
    with pytest.raises(CommandError, match="--mode: invalid choice"):
        command("runs_restart", "--mode", "sideways")
    with pytest.raises(CommandError, match="unrecognized arguments: --mode"):
        command("runs_cancel", "--mode", "from_start")
