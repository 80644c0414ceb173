"""The active workflows of an environment, as the dispatcher matches events against them.

Every billing step records an event, and each event is matched against the active workflows
of its environment: a query per step, although that set changes only when someone activates,
deactivates, publishes or deletes a workflow. On PostgreSQL a worker keeps the event-triggered
candidates of an environment instead, valid while the environment's *signature* is unchanged:
the ids, published versions and names of its active workflows, which is everything the
candidates are made of (a published version never changes).

The executor reads the signature in the statement that starts a step (`store/steps.py`), and
the sweep's dispatch in the statement that takes an event for dispatch (`store/events.py`);
each makes it current for what follows (`seen`). An event the step records is then matched
against the candidates of exactly that signature, loaded with the signature in one statement
when first needed. The match therefore sees the workflows active when the step started, a
moment before its transaction; a workflow activated or deactivated while a step runs counts
from the next step on. Everywhere else (the API, the admin, SQLite) `candidates_for` is None
and the dispatcher asks the database for every event, inside the event's transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from workflows.engine.store import active_workflows
from workflows.engine.store.statements import partial_instance
from workflows.models import Workflow, WorkflowVersion

# What the current step saw: (environment id, signature).
_seen: ContextVar[tuple[int, str] | None] = ContextVar("active_workflows_seen", default=None)
# environment id -> (signature, {event type: [Workflow with its published_version]})
_cache: dict[int, tuple[str, dict[str, list[Workflow]]]] = {}


def candidate(version: WorkflowVersion, *, environment_id: int, name: str) -> Workflow:
    """The workflow of a candidate `version`, holding only what the dispatcher reads (the
    other fields are deferred) and the version as its `published_version`."""
    workflow = partial_instance(
        Workflow,
        id=version.workflow_id,
        environment_id=environment_id,
        name=name,
        published_version_id=version.pk,
    )
    workflow.published_version = version
    return workflow


@contextlib.contextmanager
def seen(environment_id: int, signature: str | None) -> Iterator[None]:
    """Events recorded inside are matched against the workflows of this signature."""
    token = _seen.set((environment_id, signature) if signature is not None else None)
    try:
        yield
    finally:
        _seen.reset(token)


def candidates_for(environment_id: int, event_type: str) -> list[Workflow] | None:
    """The cached candidates for an event of this environment and type, if the current step
    saw a signature for the environment; None when the dispatcher must ask the database."""
    view = _seen.get()
    if view is None or view[0] != environment_id:
        return None
    signature = view[1]
    cached = _cache.get(environment_id)
    if cached is None or cached[0] != signature:
        loaded = _load(environment_id)
        if loaded[0] != signature:
            return None  # changed since the step started: this event asks the database
        cached = _cache[environment_id] = loaded
    return cached[1].get(event_type, [])


def _load(environment_id: int) -> tuple[str, dict[str, list[Workflow]]]:
    rows = active_workflows.signature_and_candidates(environment_id)
    by_type: dict[str, list[Workflow]] = {}
    signature = rows[0][0] if rows else ""
    for _, pk, workflow_id, number, published_at, accounts, event_type, name in rows:
        if pk is None:
            continue
        version = partial_instance(
            WorkflowVersion,
            id=pk,
            workflow_id=workflow_id,
            number=number,
            published_at=published_at,
            trigger_accounts=accounts,
        )
        workflow = candidate(version, environment_id=environment_id, name=name)
        by_type.setdefault(event_type, []).append(workflow)
    return signature, by_type
