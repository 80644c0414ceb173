"""Structured logs: one line per record with its time, level, logger, request id and run id.

`request_id` is set by `backoffice.request_ids.RequestIdMiddleware` for the length of a web
request, `run_id` by the worker's task entry point (`workflows.tasks.run_execute`) for the
length of a run's execution. Both are context variables, so they follow the code that runs for
that request or run, thread by thread, and `ContextFilter` copies them onto every record.

Two formats (`LOG_FORMAT`): `text` (key=value, the default: readable and still parseable by
log shippers) and `json` (one object per line). gunicorn's access log goes through the same
formatters (gunicorn.conf.py), with its fields (method, path, status, …) as keys of their own.

This module imports nothing from Django: gunicorn's master process loads it from
gunicorn.conf.py before any Django setting exists.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str] = ContextVar("billflow_log_request_id", default="")
run_id_var: ContextVar[str] = ContextVar("billflow_log_run_id", default="")

# gunicorn's access-log atoms (record.args) shown as fields, under readable names.
ACCESS_FIELDS = (
    ("method", "m"),
    ("path", "U"),
    ("query", "q"),
    ("status", "s"),
    ("bytes", "B"),
    ("duration_ms", "M"),
    ("remote", "h"),
    ("user_agent", "a"),
)


@contextlib.contextmanager
def log_context(*, request_id: str | None = None, run_id: int | str | None = None) -> Iterator:
    """Records logged inside carry these ids (None leaves the current value alone)."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if run_id is not None:
        tokens.append((run_id_var, run_id_var.set(str(run_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current request id and run id onto every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            # django.request logs a 4xx/5xx after the middleware returned, with the request.
            request = getattr(record, "request", None)
            record.request_id = request_id_var.get() or getattr(request, "billflow_request_id", "")
        if not getattr(record, "run_id", ""):
            record.run_id = run_id_var.get()
        return True


def _fields(record: logging.LogRecord, message: str) -> dict[str, str]:
    """The record as ordered fields: time, level, logger, the ids, then the message."""
    created = datetime.fromtimestamp(record.created, tz=UTC)
    fields: dict[str, str] = {
        "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname,
        "logger": record.name,
    }
    args = record.args
    if record.name == "gunicorn.access" and isinstance(args, dict):
        # gunicorn passes the request's atoms as the record's arguments: keep them as fields.
        request_id = str(args.get("{request-id}o", "-"))
        fields["request_id"] = "" if request_id == "-" else request_id
        for name, atom in ACCESS_FIELDS:
            fields[name] = str(args.get(atom, "-"))
        fields["message"] = f"{fields['method']} {fields['path']} {fields['status']}"
        return fields
    fields["request_id"] = getattr(record, "request_id", "") or request_id_var.get()
    fields["run_id"] = getattr(record, "run_id", "") or run_id_var.get()
    fields["message"] = message
    return fields


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\r\t\\'):
        return value
    return json.dumps(value, ensure_ascii=False)  # quoted, with newlines as \n: one line


class _FieldsFormatter(logging.Formatter):
    """A record's fields (`_fields`) plus its traceback or stack; subclasses lay them out."""

    def record_fields(self, record: logging.LogRecord) -> dict:
        fields = _fields(record, record.getMessage() if record.name != "gunicorn.access" else "")
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return {key: value for key, value in fields.items() if value}


class KeyValueFormatter(_FieldsFormatter):
    """`time=… level=INFO logger=… request_id=req_… run_id=… message="…"` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(
            f"{key}={_quote(value)}" for key, value in self.record_fields(record).items()
        )


class JsonFormatter(_FieldsFormatter):
    """The same fields as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.record_fields(record))


FORMATTERS = {"text": KeyValueFormatter, "json": JsonFormatter}


def logging_config(*, log_format: str, level: str, extra_loggers: dict | None = None) -> dict:
    """A `dictConfig` for Django's LOGGING and for gunicorn's `logconfig_dict`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "backoffice.logs.ContextFilter"}},
        "formatters": {"structured": {"()": f"backoffice.logs.{FORMATTERS[log_format].__name__}"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["context"],
                "formatter": "structured",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": extra_loggers or {},
    }
