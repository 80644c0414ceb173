"""The reads an event is matched with: an environment's active workflows (`active_set.py`).

Every billing write asks for them, so they are plain SQL built once (the ORM built the join
in about 1 ms; PostgreSQL answers in 0.2 ms). The *signature* is a scalar sub-select that a
step's start (`steps.py`) and an event's take (`events.py`) return with their own row.
"""

from __future__ import annotations

import functools

from workflows.engine.store.statements import default_db, table
from workflows.models import Workflow, WorkflowVersion


def _tables() -> tuple[str, str]:
    return table(Workflow), table(WorkflowVersion)


# The environment's active workflows, each as id:version:publication time:md5(name) (md5
# keeps a name from looking like a separator; the publication time tells apart two databases
# that handed out the same ids, as after a restore). Parameters: the environment id (unless
# given as a column), then `signature_params()`. PostgreSQL only.
@functools.cache
def signature_sql(environment: str = "%s") -> str:
    workflows, versions = _tables()
    return f"""(
    SELECT COALESCE(string_agg(
        w.id || ':' || COALESCE(v.id::text, '-') || ':'
            || COALESCE(extract(epoch FROM v.published_at)::text, '-') || ':' || md5(w.name),
        ',' ORDER BY w.id), '')
    FROM {workflows} w
    LEFT JOIN {versions} v ON v.id = w.published_version_id
    WHERE w.environment_id = {environment} AND w.status = %s AND w.deleted_at IS NULL
)"""


def signature_params() -> list:
    return [Workflow.Status.ACTIVE]


# What makes a workflow a candidate for an environment's events: active, not deleted, and its
# published version triggered by events (`w` the workflow, `v` that version).
@functools.cache
def _candidates_from() -> str:
    workflows, versions = _tables()
    return f"""
    FROM {workflows} w
    JOIN {versions} v ON v.id = w.published_version_id
    WHERE w.environment_id = %s AND w.status = %s AND w.deleted_at IS NULL
      AND v.trigger_type = %s"""


def _candidate_params(environment_id: int) -> list:
    return [environment_id, Workflow.Status.ACTIVE, WorkflowVersion.TriggerType.EVENT]


@functools.cache
def _candidates_of_type_sql() -> str:
    return f"""
    SELECT v.id, v.workflow_id, v.number, v.published_at, v.trigger_accounts,
           w.name AS workflow_name
    {_candidates_from()} AND v.trigger_event = %s
    ORDER BY w.id
"""


def candidates_of_type(environment_id: int, event_type: str) -> list[WorkflowVersion]:
    """The published versions of the active workflows triggered by `event_type`, holding only
    what the dispatcher reads (`raw()` defers the rest) and `workflow_name`."""
    params = [*_candidate_params(environment_id), event_type]
    return list(WorkflowVersion.objects.raw(_candidates_of_type_sql(), params))


# The signature and the candidates it stands for, read by one statement (one snapshot). The
# LEFT JOIN keeps the signature row when no workflow is triggered by events.
@functools.cache
def _signature_and_candidates_sql() -> str:
    return f"""
    SELECT s.signature, c.id, c.workflow_id, c.number, c.published_at, c.trigger_accounts,
           c.trigger_event, c.workflow_name
    FROM (SELECT {signature_sql()} AS signature) s
    LEFT JOIN (
        SELECT v.id, v.workflow_id, v.number, v.published_at, v.trigger_accounts,
               v.trigger_event, w.name AS workflow_name, w.id AS position
        {_candidates_from()}
    ) c ON TRUE
    ORDER BY c.position
"""


def signature_and_candidates(environment_id: int) -> list[tuple]:
    """Rows of (signature, version id, workflow id, number, published_at, trigger_accounts,
    trigger_event, workflow name); one row with empty candidate columns when there are none."""
    params = [environment_id, *signature_params(), *_candidate_params(environment_id)]
    with default_db().cursor() as cursor:
        cursor.execute(_signature_and_candidates_sql(), params)
        return cursor.fetchall()
