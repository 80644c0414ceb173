"""For tests only: put engine-owned rows into a state no operation of the store makes.

An expired lease, a run made weeks ago, a record a crash left half written: tests of recovery,
retention and history need such rows, and writing them is still the store's business. Each
call is plainly named for what it does; nothing in the product calls this module.

    force_rows(Run.objects.filter(pk=run.pk)).update(lease_expires_at=past)
    force_rows(Delivery).create(kind="email", idempotency_key="1/mail/")
"""

from __future__ import annotations

from django.db import models

from workflows.engine.store.guard import store_writes


class force_rows:  # noqa: N801 - reads as the function it stands for
    """The writes of a queryset (or of a model's default manager), allowed."""

    def __init__(self, rows: type[models.Model] | models.QuerySet) -> None:
        self.rows = rows._default_manager.all() if isinstance(rows, type) else rows

    def update(self, **values) -> int:
        with store_writes():
            return self.rows.update(**values)

    def delete(self) -> int:
        with store_writes():
            return self.rows.delete()[0]

    def create(self, **values) -> models.Model:
        with store_writes():
            return self.rows.create(**values)

    def bulk_create(self, objs, **options) -> list:
        with store_writes():
            return self.rows.bulk_create(objs, **options)

    def save(self, obj: models.Model, **options) -> None:
        with store_writes():
            obj.save(**options)
