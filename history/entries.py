"""History entries: event rows read newest first, as the API and the History panel show them.

An entry is `{"id", "created", "actor": {"type", "id", "name"}, "action", "object": {"type",
"id"}, "changes": {field: [before, after]}, "request_id"}`. An object's history may come from
several event tables (history.objects.Subject.sources); they are merged by time, then table,
then row, and a cursor (an entry id, `<type>.<row>`) continues from any entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import CharField, Q, QuerySet, Value
from django.db.models.functions import Cast

from backoffice.actors import SYSTEM
from history.objects import BILLING_KINDS, KIND_BY_EVENT_MODEL, KIND_BY_NAME, Kind, Subject

COLUMNS = (
    "pgh_kind",
    "pgh_id",
    "pgh_created_at",
    "pgh_label",
    "pgh_context",
    "pgh_changes",
    "pgh_object_id",
)
ACTIONS = {"create": "created", "update": "updated", "delete": "deleted", "status": "updated"}


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    """One event row: its `pgh_…` columns, `pgh_kind` and `pgh_object_id` (the id as text)."""

    kind: Kind
    row: dict

    @property
    def id(self) -> str:
        return f"{self.kind.name}.{self.row['pgh_id']}"

    @property
    def created(self) -> datetime:
        return self.row["pgh_created_at"]

    @property
    def actor(self) -> dict:
        context = self.row["pgh_context"] or {}
        return context.get("actor") or SYSTEM.as_dict()

    @property
    def request_id(self) -> str:
        return (self.row["pgh_context"] or {}).get("request_id") or ""

    @property
    def action(self) -> str:
        if self.kind.name == "role_membership":
            return "role_added" if self.row["pgh_label"] == "create" else "role_removed"
        return ACTIONS.get(self.row["pgh_label"], self.row["pgh_label"])

    @property
    def object(self) -> dict:
        pk = self.row["pgh_object_id"]
        return {"type": self.kind.name, "id": pk if self.kind in BILLING_KINDS else int(pk)}

    @property
    def changes(self) -> dict:
        return self.row["pgh_changes"] or {}

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "created": int(self.created.timestamp()),
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "changes": self.changes,
            "request_id": self.request_id,
        }


def _cursor(entry_id: str) -> tuple[Kind, int]:
    name, dot, raw = (entry_id or "").rpartition(".")
    kind = KIND_BY_NAME.get(name)
    if not dot or kind is None or not raw.isdigit():
        raise BadCursor(f"{entry_id!r} is not a history entry id.")
    return kind, int(raw)


def _after(kind: Kind, created: datetime, cursor_kind: Kind, cursor_id: int, older: bool) -> Q:
    """Rows of `kind`'s table past the cursor, in the direction asked."""
    past_time = Q(pgh_created_at__lt=created) if older else Q(pgh_created_at__gt=created)
    same_time = Q(pgh_created_at=created)
    if kind.name == cursor_kind.name:
        tie = Q(pgh_id__lt=cursor_id) if older else Q(pgh_id__gt=cursor_id)
        return past_time | (same_time & tie)
    if (kind.name < cursor_kind.name) == older:
        return past_time | same_time
    return past_time


def history_page(
    subject: Subject,
    *,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
    narrow: Callable[[QuerySet], QuerySet] | None = None,
) -> tuple[list[Entry], bool]:
    """Up to `limit` entries, newest first, and whether more are past them; `narrow` filters
    each event table's rows (the API's `created` filters)."""
    older = ending_before is None
    cursor = starting_after or ending_before
    position = None
    if cursor:
        cursor_kind, cursor_id = _cursor(cursor)
        cursor_row = (
            cursor_kind.event_model.objects.filter(pk=cursor_id).only("pgh_created_at").first()
        )
        if cursor_row is None or not any(
            model is cursor_kind.event_model and model.objects.filter(q, pk=cursor_id).exists()
            for model, q in subject.sources()
        ):
            raise BadCursor(f"{cursor!r} is not an entry of {subject.reference}'s history.")
        position = (cursor_row.pgh_created_at, cursor_kind, cursor_id)

    # One query: each source's rows past the cursor, as the same columns, in one UNION ALL.
    parts = []
    for model, q in subject.sources():
        kind = KIND_BY_EVENT_MODEL[model]
        rows = model.objects.filter(q)
        if narrow is not None:
            rows = narrow(rows)
        if position is not None:
            rows = rows.filter(_after(kind, *position, older=older))
        parts.append(
            rows.annotate(
                pgh_kind=Value(kind.name, output_field=CharField()),
                pgh_object_id=Cast("pgh_obj_id", output_field=CharField()),
            ).values(*COLUMNS)
        )
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    direction = "-" if older else ""
    ordered = union.order_by(
        *(direction + name for name in ("pgh_created_at", "pgh_kind", "pgh_id"))
    )
    rows = list(ordered[: limit + 1])
    has_more = len(rows) > limit
    page = [Entry(KIND_BY_NAME[row["pgh_kind"]], row) for row in rows[:limit]]
    return (page if older else list(reversed(page))), has_more


def recent(subject: Subject, limit: int = 10) -> list[Entry]:
    return history_page(subject, limit=limit)[0]
