"""`partial_instance`: a model instance built from values a hot path already read.

The engine reads a run with its version and environment in one statement, and the dispatcher
keeps its candidate workflows per process; both build instances from those columns instead
of asking the ORM for each object again. Fields not given are deferred, as with `.only()`:
read from the database when first used.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def partial_instance(model: type[M], **values: Any) -> M:
    """An instance of `model` with these field values (by attname) loaded; values are taken
    as the database returned them."""
    return model.from_db(
        connection.alias,
        list(values),
        [values.get(f.attname, models.DEFERRED) for f in model._meta.concrete_fields],
    )
