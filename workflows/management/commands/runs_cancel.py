"""`python manage.py runs_cancel`: cancel the pending and running runs matching the runs list's
filters, as a run batch applied in this process (see `runs_restart`).

    python manage.py runs_cancel --workflow 12 --status pending
"""

from __future__ import annotations

from workflows.management.commands.runs_restart import BatchCommand
from workflows.models import RunBatch


class Command(BatchCommand):
    help = "Cancel the pending and running runs matching the runs list's filters (a run batch)."
    action = RunBatch.Action.CANCEL
    verb = "Canceled"
