"""Billflow itself, and the plain django-q2 `async_chain` a team would write without it; both on
a `qcluster` of the benchmark's worker processes."""

from __future__ import annotations

from datetime import datetime

from django_q.tasks import async_chain

from billing import services as billing
from billing.models import Environment, Event
from workflows import services as workflow_services
from workflows.engine.dispatch import event_dispatch
from workflows.models import Run
from workflows.operations.bench import BenchCluster, clusters_stop
from workflows.operations.bench_peers.work import (
    DEFINITION,
    STEPS_PER_RUN,
    System,
    emails_sent,
)


class ClusterSystem(System):
    cluster: BenchCluster | None = None

    def start(self, workers: int, prefix: str) -> None:
        self.prefix = prefix
        self.cluster = BenchCluster(workers)

    def stop(self) -> None:
        if self.cluster is not None:
            clusters_stop([self.cluster])
            self.cluster = None


class BillflowSystem(ClusterSystem):
    """The engine: each event dispatched starts a run of the 5-step workflow (a step record and
    a lease per step, one transaction each)."""

    name = "billflow"

    def prepare(self, environment: Environment) -> None:
        workflow = workflow_services.workflow_create(environment=environment, definition=DEFINITION)
        workflow_services.workflow_publish(workflow=workflow)
        workflow_services.workflow_activate(workflow=workflow)
        self.workflow = workflow

    def begin(self, environment: Environment, event_ids: list[str]) -> None:
        for event_id in event_ids:
            event_dispatch(event_id=event_id)

    def paced_event(self, environment: Environment, tag: str) -> str:
        # The product's own path: the dispatcher runs in the service's transaction.
        customer = billing.customer_create(environment=environment, email=f"{tag}@example.com")
        return Event.objects.get(type="customer.created", object_id=customer.pk).pk

    def finished(self, event_ids: list[str]) -> dict[str, datetime]:
        runs = Run.objects.filter(workflow=self.workflow, event_id__in=event_ids)
        failed = runs.filter(status=Run.Status.FAILED).first()
        if failed is not None:
            raise RuntimeError(f"run {failed.pk} failed: {failed.error}")
        return dict(runs.filter(status=Run.Status.SUCCEEDED).values_list("event_id", "finished_at"))


class AsyncChainSystem(ClusterSystem):
    """django-q2's `async_chain`: one task per step, the next enqueued when one ends."""

    name = "async_chain"

    def begin(self, environment: Environment, event_ids: list[str]) -> None:
        for event_id in event_ids:
            async_chain(
                [
                    (
                        "workflows.operations.bench_peers.work.chain_step",
                        (index, environment.pk, event_id, self.prefix),
                    )
                    for index in range(STEPS_PER_RUN)
                ]
            )

    def finished(self, event_ids: list[str]) -> dict[str, datetime]:
        sent = emails_sent(self.prefix)
        return {event_id: sent[event_id] for event_id in event_ids if event_id in sent}
