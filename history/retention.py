"""Run history goes with its run: retention's `runs_pruned` deletes a pruned run's status
changes in the batch's transaction, so the history table stays as flat as the run tables.

The rows of billing objects, workflows, keys and people are the audit trail and are kept.
"""

from __future__ import annotations

from history.models import RunEvent


def run_events_delete(sender, *, run_ids: list[int], **kwargs) -> dict[str, int]:
    deleted = RunEvent.objects.filter(pgh_obj_id__in=run_ids).delete()[0]
    return {RunEvent._meta.label: deleted} if deleted else {}
