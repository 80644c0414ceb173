"""What a backtest asks for, checked: the range and the version. Each refusal names its field
(`since`, `until`, `version`), for the API's error envelope and the builder's form alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from workflows.definition.rows import version_definition
from workflows.definition.validation import validate_definition
from workflows.engine.delays import parse_timestamp
from workflows.models import Workflow, WorkflowVersion

DEFAULT_DAYS = 30


class BacktestRequestError(Exception):
    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class BacktestRequest:
    definition: dict
    version_number: int | None  # None: the draft
    since: datetime
    until: datetime


def _timestamp(value: object, param: str) -> datetime:
    """Unix seconds (as the API's times are) or an ISO 8601 timestamp with a time zone."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            pass
    else:
        parsed = parse_timestamp(value)
        if parsed is not None:
            return parsed
    raise BacktestRequestError(
        f"`{param}` must be a Unix time in seconds or an ISO 8601 timestamp with a time zone; "
        f"got {value!r}.",
        param=param,
    )


def retention_start(now: datetime) -> datetime | None:
    """The oldest moment whose events are still kept, or None when events are kept forever."""
    days = int(settings.BILLFLOW.get("EVENT_RETENTION_DAYS", 0))
    return now - timedelta(days=days) if days else None


def check_range(since: object = None, until: object = None) -> tuple[datetime, datetime]:
    """[since, until): `until` defaults to now (a later one is cut to now: no event is stored
    after it), `since` to `DEFAULT_DAYS` before `until`, and may not reach past the events'
    retention window."""
    now = timezone.now()
    end = now if until is None else min(_timestamp(until, "until"), now)
    start = end - timedelta(days=DEFAULT_DAYS) if since is None else _timestamp(since, "since")
    if start >= now:
        raise BacktestRequestError(
            f"`since` ({start.isoformat()}) is in the future: no events are stored yet.",
            param="since",
        )
    if start >= end:
        raise BacktestRequestError(
            f"`until` ({end.isoformat()}) must be after `since` ({start.isoformat()}).",
            param="until" if until is not None else "since",
        )
    kept_from = retention_start(now)
    if kept_from is not None and start < kept_from:
        raise BacktestRequestError(
            f"`since` ({start.isoformat()}) is before the events' retention window: events "
            f"are kept {settings.BILLFLOW['EVENT_RETENTION_DAYS']} days, so since "
            f"{kept_from.isoformat()}.",
            param="since",
        )
    return start, end


def _version(workflow: Workflow, version: object) -> WorkflowVersion:
    if version is None:
        chosen = workflow.draft_version or workflow.published_version
    elif version == "draft":
        chosen = workflow.draft_version
        if chosen is None:
            raise BacktestRequestError("This workflow has no draft.", param="version")
    elif version == "published":
        chosen = workflow.published_version
        if chosen is None:
            raise BacktestRequestError("This workflow was never published.", param="version")
    else:
        number = version if isinstance(version, int) and not isinstance(version, bool) else None
        if isinstance(version, str) and version.isdigit():
            number = int(version)
        if number is None:
            raise BacktestRequestError(
                f'`version` must be "draft", "published" or a version number; got {version!r}.',
                param="version",
            )
        chosen = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
        if chosen is None:
            raise BacktestRequestError(f"No such version: {number}.", param="version")
    if chosen is None:
        raise BacktestRequestError("This workflow has no version.", param="version")
    return chosen


def check_request(
    workflow: Workflow, *, since: object = None, until: object = None, version: object = None
) -> BacktestRequest:
    """The backtest asked for: `version` "draft", "published" or a number (default: the
    draft if there is one, else the published version); an event-triggered definition that
    validates."""
    chosen = _version(workflow, version)
    definition = version_definition(chosen)
    trigger = definition.get("trigger") or {}
    if trigger.get("type") != "event":
        raise BacktestRequestError(
            f"A backtest replays stored events; this version's trigger is "
            f"{trigger.get('type')!r}, not an event.",
            param="version",
        )
    errors = validate_definition(definition, environment=workflow.environment)
    if errors:
        raise BacktestRequestError(
            f"The {'draft' if chosen.number is None else f'version {chosen.number}'} has "
            f"problems to fix first: {errors[0]}",
            param="version",
        )
    start, end = check_range(since, until)
    return BacktestRequest(
        definition=definition, version_number=chosen.number, since=start, until=end
    )
