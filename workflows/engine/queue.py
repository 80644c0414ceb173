"""Telling the workers "look at run N".

With the ORM broker on the default database the enqueue joins the caller's transaction: the
task row commits (or vanishes) with the run it names, a transactional outbox for free. With
Redis the enqueue waits for the commit; a lost message is recovered by the sweep, because the
database, not the queue, says which runs still need work.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.tasks import async_task

EXECUTE_TASK = "workflows.tasks.run_execute"

_broker = None


def _get_broker():
    global _broker
    if _broker is None:
        _broker = get_broker()
    return _broker


def _uses_orm_broker() -> bool:
    return settings.Q_CLUSTER.get("orm") == "default"


def run_enqueue(run_id: int) -> None:
    """Queue the execution of a run; call it inside the transaction that made the run ready."""
    if _uses_orm_broker():
        _send(run_id)
    else:
        transaction.on_commit(lambda: _send(run_id))


def task_enqueue(func: str, *args, task_name: str) -> None:
    """Queue task `func` (a path in workflows/tasks.py) as `run_enqueue` queues a run: inside
    the caller's transaction, so it is sent exactly when (and if) that transaction commits."""

    def send() -> None:
        async_task(func, *args, task_name=task_name)

    if _uses_orm_broker():
        send()
    else:
        transaction.on_commit(send)


def _send(run_id: int) -> None:
    async_task(
        EXECUTE_TASK,
        run_id,
        q_options={
            "broker": _get_broker(),
            "task_name": f"run-{run_id}-{uuid.uuid4().hex[:8]}",
            # The run row is the result; storing a success row per run only costs an INSERT.
            # Failures (a crashed task) are still stored by django-q.
            "save": False,
        },
    )
