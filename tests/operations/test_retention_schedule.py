"""The schedules `setup_schedules` installs, executed by a real `qcluster` on PostgreSQL.

django-q's scheduler runs inside a cluster about every 30 seconds; the wait is bounded.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule, Task

from tests import factories
from tests.workers import qclusters, wait_for
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]


def schedule_succeeded(name: str):
    def check() -> bool:
        task_id = Schedule.objects.get(name=name).task
        return bool(task_id) and Task.objects.filter(id=task_id, success=True).exists()

    return check


def test_a_cluster_prunes_old_runs_and_runs_the_stall_check_on_schedule(
    transactional_db, live, alice
):
    workflow = factories.workflow_active(live, factories.region_workflow_definition(), alice)
    now = timezone.now()
    for _ in range(3):
        factories.run_row(workflow, status="succeeded", created=now - timedelta(days=120))
    failed = factories.run_row(workflow, status="failed", created=now - timedelta(days=120))
    recent = factories.run_row(workflow, status="succeeded", created=now - timedelta(days=1))
    call_command("setup_schedules", stdout=StringIO())

    with qclusters(count=1, workers=1) as (cluster,):
        try:
            wait_for(schedule_succeeded("billflow.retention"), timeout=90, every=1)
            wait_for(schedule_succeeded("billflow.stall_check"), timeout=30, every=1)
        except AssertionError:
            raise AssertionError(cluster.log()) from None

    assert set(Run.objects.values_list("pk", flat=True)) == {failed.pk, recent.pk}
    assert StepRun.objects.count() == 4
