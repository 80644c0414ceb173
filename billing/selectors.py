"""Reads, always scoped to one environment: nothing crosses environments."""

from __future__ import annotations

import re
from typing import TypeVar

from django.db.models import QuerySet

from backoffice.selects import select_row
from billing.errors import NotFoundError
from billing.models import Environment, Event, StripeObject

M = TypeVar("M", bound=StripeObject)
ID_SHAPE = re.compile(r"[A-Za-z0-9_]{1,40}")


def objects_in(model: type[M], environment: Environment) -> QuerySet[M]:
    return model.objects.filter(environment=environment)


def _could_be_an_id(id: str) -> bool:
    # Our ids are `prefix_` + base62; anything else (e.g. a NUL byte, which PostgreSQL refuses
    # in a query) cannot name an object, so it is missing without asking the database.
    return ID_SHAPE.fullmatch(id) is not None


def get_object(
    model: type[M],
    environment: Environment,
    id: str,
    *,
    param: str = "id",
    for_update: bool = False,
) -> M:
    """The object with this id in this environment; another environment's object is missing.

    `for_update`: read it under a row lock (`SELECT … FOR UPDATE`), inside a transaction."""
    # The hottest read there is (every API call and workflow step): see backoffice/selects.py.
    obj = None
    if _could_be_an_id(id):
        obj = select_row(model, for_update=for_update, pk=id, environment=environment.pk)
    if obj is None:
        raise NotFoundError(
            f"No such {model.OBJECT.replace('.', ' ').replace('_', ' ')}: '{id}'", param=param
        )
    obj.environment = environment  # it was filtered on: spare the query when it is read
    return obj


def events_in(environment: Environment) -> QuerySet[Event]:
    return Event.objects.filter(environment=environment)


def get_event(environment: Environment, id: str) -> Event:
    try:
        if not _could_be_an_id(id):
            raise Event.DoesNotExist
        return events_in(environment).get(pk=id)
    except Event.DoesNotExist:
        raise NotFoundError(f"No such event: '{id}'", param="id") from None
