"""Runs, step records and deliveries are written only by the store.

The default managers of `Run`, `StepRun` and `Delivery` read as usual (filter, get, values,
exists, count, related managers) and refuse every write (`update`, `delete`, `create`,
`bulk_create`, …), as does an instance's `save()` and `delete()`: a write from elsewhere
raises `StoreWriteRefused`, naming the store's module. The store's own ORM writes (restart,
cancel, prune: none on the hot path) run inside `store_writes()`; its hot-path statements are
its own SQL. Cascading deletes (a run's step records) go through Django's base manager, which
is not guarded: they follow the store's delete of the run.

This module imports no model, so `workflows.models` can use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import models

_writing: ContextVar[bool] = ContextVar("engine_store_writing", default=False)

STORE = "workflows.engine.store"


class StoreWriteRefused(RuntimeError):
    """A write of an engine-owned model outside the engine's store."""

    def __init__(self, model: type[models.Model], operation: str) -> None:
        super().__init__(
            f"{model.__name__} rows are written only by the engine's store ({STORE}): "
            f"{operation} was refused. Call the store's operation for this change "
            f"({STORE}.runs, .steps, .deliveries), or {STORE}.forcing in a test."
        )


@contextlib.contextmanager
def store_writes() -> Iterator[None]:
    """The store's ORM writes of its own models happen inside this block."""
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


def _check(model: type[models.Model], operation: str) -> None:
    if not _writing.get():
        raise StoreWriteRefused(model, operation)


class StoreOnlyQuerySet(models.QuerySet):
    """Reads as usual; writes only inside `store_writes()`."""

    def update(self, **kwargs):
        _check(self.model, "QuerySet.update()")
        return super().update(**kwargs)

    def delete(self):
        _check(self.model, "QuerySet.delete()")
        return super().delete()

    def create(self, **kwargs):
        _check(self.model, "QuerySet.create()")
        return super().create(**kwargs)

    def bulk_create(self, objs, *args, **kwargs):
        _check(self.model, "QuerySet.bulk_create()")
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        _check(self.model, "QuerySet.bulk_update()")
        return super().bulk_update(objs, fields, *args, **kwargs)

    def get_or_create(self, defaults=None, **kwargs):
        _check(self.model, "QuerySet.get_or_create()")
        return super().get_or_create(defaults=defaults, **kwargs)

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        _check(self.model, "QuerySet.update_or_create()")
        return super().update_or_create(
            defaults=defaults, create_defaults=create_defaults, **kwargs
        )


StoreOnlyManager = models.Manager.from_queryset(StoreOnlyQuerySet)


class StoreOnlyModel:
    """Mixed into an engine-owned model: `save()` and `delete()` refuse outside the store."""

    def save(self, *args, **kwargs):
        _check(type(self), f"{type(self).__name__}.save()")
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        _check(type(self), f"{type(self).__name__}.delete()")
        return super().delete(*args, **kwargs)
