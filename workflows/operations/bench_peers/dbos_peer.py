"""DBOS Transact: one durable workflow per event, started through a DBOS queue.

The workflow evaluates the condition in its own code (DBOS replays workflow code, so a
deterministic check needs no record), runs the three updates as datasource transactions
(`@datasource.transaction`, DBOS's transactions: the step's checkpoint is written in the
transaction on the application database) and the e-mail as a `@DBOS.step` (its checkpoint in the
system database). The billing services run on Django's connection: DBOS cannot put them in its
own SQLAlchemy transaction, so an update commits and then its checkpoint commits, the order DBOS
gives any step, and the idempotency key keeps a replay from repeating the update.

The system database is `<database>_dbos` on the same server, dropped and created again before
each round; the checkpoints of the transactions live in the benchmark database's `dbos` schema.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import datetime

from billing.models import Environment
from workflows.operations.bench import database_url
from workflows.operations.bench_peers.processes import WorkerProcesses
from workflows.operations.bench_peers.work import System, chain_step, emails_sent

APP = "billflow-bench"
QUEUE = "billflow_bench"
WORKFLOW = "billflow_bench_onboard"


def _urls() -> tuple[str, str]:
    """The application database (the benchmark's) and DBOS's system database beside it."""
    url = database_url().replace("postgres://", "postgresql://", 1)
    return url, f"{url}_dbos"


class DbosSystem(System):
    name = "dbos"
    requires = ("dbos",)
    workers: WorkerProcesses | None = None
    client = None

    def start(self, workers: int, prefix: str) -> None:
        from dbos import DBOS, DBOSClient, SQLAlchemyDatasource

        logging.getLogger("dbos").setLevel(logging.WARNING)  # a line per migration otherwise
        self.prefix = prefix
        app_url, system_url = _urls()
        # A fresh state: the system database dropped and made again.
        DBOS.reset_system_database(system_database_url=system_url)
        DBOS.migrate(system_url)
        SQLAlchemyDatasource.migrate(app_url)
        self.client = DBOSClient(system_database_url=system_url, application_name=APP)
        self.workers = WorkerProcesses("dbos", workers)

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.stop()
            self.workers.close()
            self.workers = None
        if self.client is not None:
            self.client.destroy()
            self.client = None

    def begin(self, environment: Environment, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self.client.enqueue(
                {"queue_name": QUEUE, "workflow_name": WORKFLOW, "workflow_id": event_id},
                environment.pk,
                event_id,
                self.prefix,
            )

    def finished(self, event_ids: list[str]) -> dict[str, datetime]:
        sent = emails_sent(self.prefix)
        return {event_id: sent[event_id] for event_id in event_ids if event_id in sent}

    def log_tail(self) -> str:
        return self.workers.tail() if self.workers else ""


# --- the worker process ------------------------------------------------------------------------


def run_worker() -> None:
    from dbos import DBOS, SQLAlchemyDatasource

    app_url, system_url = _urls()
    DBOS(
        config={
            "name": APP,
            "system_database_url": system_url,
            "application_version": "bench",
            "executor_id": f"bench-{os.getpid()}",
            "run_migrations": False,
            "log_level": "WARNING",
        }
    )
    datasource = SQLAlchemyDatasource.create(app_url, run_migrations=False)

    @datasource.transaction(isolation_level="READ COMMITTED")
    def update(index: int, environment_id: int, event_id: str, prefix: str) -> None:
        chain_step(index, environment_id, event_id, prefix)

    @DBOS.step()
    def notify(environment_id: int, event_id: str, prefix: str) -> None:
        chain_step(4, environment_id, event_id, prefix)

    @DBOS.workflow(name=WORKFLOW)
    def onboard(environment_id: int, event_id: str, prefix: str) -> None:
        chain_step(0, environment_id, event_id, prefix)  # the condition
        for index in (1, 2, 3):
            update(index, environment_id, event_id, prefix)
        notify(environment_id, event_id, prefix)

    # Polled as often as the benchmark's django-q workers poll their queue (Q_POLL).
    poll = float(os.environ.get("Q_POLL", "0.02"))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=1, polling_interval_sec=poll)
    stopping.wait()
    DBOS.destroy(workflow_completion_timeout_sec=5)
