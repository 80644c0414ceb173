"""Run history goes with its run: retention's `runs_pruned` deletes a pruned run's status
changes in the batch's transaction, so the history table stays as flat as the run tables.

The rows of billing objects, workflows, keys and people are the audit trail and are kept.
"""

from __future__ import annotations

from history.models import ApprovalEvent, RunEvent


def run_events_delete(sender, *, run_ids: list[int], **kwargs) -> dict[str, int]:
    counts = {}
    for model, lookup in ((RunEvent, "pgh_obj_id__in"), (ApprovalEvent, "run_id__in")):
        deleted = model.objects.filter(**{lookup: run_ids}).delete()[0]
        if deleted:
            counts[model._meta.label] = deleted
    return counts
