"""The active workflows of an environment, as the dispatcher matches events against them.

Every billing step records an event, and each event is matched against the active workflows
of its environment: a query per step, although that set changes only when someone activates,
deactivates, publishes or deletes a workflow. On PostgreSQL a worker keeps the event-triggered
candidates of an environment instead, valid while the environment's *signature* is unchanged:
the ids, published versions and names of its active workflows, which is everything the
candidates are made of (a published version never changes).

The executor reads the signature in the statement that starts a step (`records.py`), and the
sweep's dispatch in the statement that takes an event for dispatch (`dispatch.py`); each makes
it current for what follows (`seen`). An event the step records is then matched against the
candidates of exactly that signature, loaded with the signature in one statement when first
needed. The match therefore sees the workflows active when the step started, a moment before
its transaction; a workflow activated or deactivated while a step runs counts from the next
step on. Everywhere else (the API, the admin, SQLite) `candidates_for` is None and the
dispatcher asks the database for every event, inside the event's transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import connection

from backoffice.partial import partial_instance
from workflows.models import Workflow, WorkflowVersion


# A scalar sub-select: the environment's active workflows, each as
# id:version:publication time:md5(name) (md5 keeps a name from looking like a separator; the
# publication time tells apart two databases that handed out the same ids, as after a
# restore). Parameters: the environment id (unless given as a column), the status.
def signature_sql(environment: str = "%s") -> str:
    return f"""(
    SELECT COALESCE(string_agg(
        w.id || ':' || COALESCE(v.id::text, '-') || ':'
            || COALESCE(extract(epoch FROM v.published_at)::text, '-') || ':' || md5(w.name),
        ',' ORDER BY w.id), '')
    FROM workflows_workflow w
    LEFT JOIN workflows_workflowversion v ON v.id = w.published_version_id
    WHERE w.environment_id = {environment} AND w.status = %s AND w.deleted_at IS NULL
)"""


SIGNATURE_SQL = signature_sql()

# What makes a workflow a candidate for an environment's events: active, not deleted, and
# its published version triggered by events (`w` the workflow, `v` that version). Parameters:
# `candidate_params`. The dispatcher's own query adds the event type (dispatch.py).
CANDIDATES_FROM = """
    FROM workflows_workflow w
    JOIN workflows_workflowversion v ON v.id = w.published_version_id
    WHERE w.environment_id = %s AND w.status = %s AND w.deleted_at IS NULL
      AND v.trigger_type = %s"""

# The signature and the candidates it stands for, read by one statement (one snapshot). The
# LEFT JOIN keeps the signature row when no workflow is triggered by events.
_CANDIDATES_SQL = f"""
    SELECT s.signature, c.id, c.workflow_id, c.number, c.published_at, c.trigger_accounts,
           c.trigger_event, c.workflow_name
    FROM (SELECT {SIGNATURE_SQL} AS signature) s
    LEFT JOIN (
        SELECT v.id, v.workflow_id, v.number, v.published_at, v.trigger_accounts,
               v.trigger_event, w.name AS workflow_name, w.id AS position
        {CANDIDATES_FROM}
    ) c ON TRUE
    ORDER BY c.position
"""

# What the current step saw: (environment id, signature).
_seen: ContextVar[tuple[int, str] | None] = ContextVar("active_workflows_seen", default=None)
# environment id -> (signature, {event type: [Workflow with its published_version]})
_cache: dict[int, tuple[str, dict[str, list[Workflow]]]] = {}


def signature_params() -> list:
    return [Workflow.Status.ACTIVE]


def candidate_params(environment_id: int) -> list:
    return [environment_id, Workflow.Status.ACTIVE, WorkflowVersion.TriggerType.EVENT]


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
    params = [environment_id, *signature_params(), *candidate_params(environment_id)]
    with connection.cursor() as cursor:
        cursor.execute(_CANDIDATES_SQL, params)
        rows = cursor.fetchall()
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
