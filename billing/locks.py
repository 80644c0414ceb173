"""Rows a caller already holds under a lock, so a service need not read them again.

A service re-reads the object it changes with `SELECT … FOR UPDATE` (`services._locked`), so
that concurrent changes queue behind each other and it acts on the latest state. A caller that
has just read that very instance under a lock, in the same transaction (a workflow step's
billing action), says so with `already_locked(obj)`: the service then uses the instance as it
is, one round trip fewer. Only the instances given, only for the calls inside the block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import models

_HELD: ContextVar[tuple[models.Model, ...]] = ContextVar("billing_locked_rows", default=())


@contextlib.contextmanager
def already_locked(*objects: models.Model) -> Iterator[None]:
    """The caller read these instances with `SELECT … FOR UPDATE` in the open transaction."""
    token = _HELD.set((*_HELD.get(), *objects))
    try:
        yield
    finally:
        _HELD.reset(token)


def is_locked(obj: models.Model) -> bool:
    """Is this very instance (not merely its row) one that `already_locked` named?"""
    return any(held is obj for held in _HELD.get())
