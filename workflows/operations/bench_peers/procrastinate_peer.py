"""Procrastinate: one job per step; each job does its step and defers the next step's job in the
same transaction (the defer goes through Procrastinate's Django connector, so it is written on
Django's connection, inside `transaction.atomic()`, with the billing service's writes).

The benchmark applies Procrastinate's schema to the database once, empties the benchmark's queue
before each round, and starts the workers as `python -m` of this module: Procrastinate's own
worker (psycopg connector, LISTEN/NOTIFY), one job at a time per process.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction

from billing.models import Environment
from workflows.operations.bench import database_url
from workflows.operations.bench_peers.processes import WorkerProcesses
from workflows.operations.bench_peers.work import STEPS_PER_RUN, System, chain_step, emails_sent

QUEUE = "billflow_bench"
TASK = "billflow_bench.step"


def _django_app():
    """An app whose defers run on Django's connection: they join the caller's transaction."""
    import procrastinate
    from procrastinate.contrib.django.django_connector import DjangoConnector

    return procrastinate.App(connector=DjangoConnector())


def _defer(app, **arguments) -> None:
    app.configure_task(TASK, queue=QUEUE).defer(**arguments)


class ProcrastinateSystem(System):
    name = "procrastinate"
    requires = ("procrastinate",)
    workers: WorkerProcesses | None = None

    def start(self, workers: int, prefix: str) -> None:
        import asyncio

        logging.getLogger("procrastinate").setLevel(logging.WARNING)  # a line per job otherwise
        self.prefix = prefix
        self.app = _django_app()
        if "procrastinate_jobs" not in connection.introspection.table_names():
            self.app.schema_manager.apply_schema()
        # A fresh state: the previous rounds' finished jobs gone.
        asyncio.run(
            self.app.job_manager.delete_old_jobs(nb_hours=0, queue=QUEUE, include_failed=True)
        )
        self.workers = WorkerProcesses("procrastinate", workers)

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.stop()
            self.workers.close()
            self.workers = None

    def begin(self, environment: Environment, event_ids: list[str]) -> None:
        for event_id in event_ids:
            _defer(
                self.app,
                index=0,
                environment_id=environment.pk,
                event_id=event_id,
                prefix=self.prefix,
            )

    def finished(self, event_ids: list[str]) -> dict[str, datetime]:
        sent = emails_sent(self.prefix)
        return {event_id: sent[event_id] for event_id in event_ids if event_id in sent}

    def log_tail(self) -> str:
        return self.workers.tail() if self.workers else ""


# --- the worker process ------------------------------------------------------------------------


def run_worker() -> None:
    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.WARNING)

    defers = _django_app()
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=database_url(), min_size=1, max_size=2)
    )

    @app.task(name=TASK, queue=QUEUE)
    def step(index: int, environment_id: int, event_id: str, prefix: str) -> None:
        arguments = {"environment_id": environment_id, "event_id": event_id, "prefix": prefix}
        if index == STEPS_PER_RUN - 1:
            chain_step(index, **arguments)  # the e-mail: its own transactions, as in Billflow
            return
        with transaction.atomic():
            chain_step(index, **arguments)
            _defer(defers, index=index + 1, **arguments)

    app.run_worker(queues=[QUEUE], concurrency=1, wait=True, delete_jobs="never")
