"""Reads, always scoped to one environment: nothing crosses environments."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from django.db.models import QuerySet

from billing.errors import InvalidRequestError, NotFoundError
from billing.models import (
    Charge,
    Customer,
    Environment,
    Event,
    Invoice,
    PaymentIntent,
    Price,
    Product,
    StripeObject,
    Subscription,
)
from billing.snapshots import snapshot

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
    rows = model.objects.select_for_update() if for_update else model.objects.all()
    try:
        if not _could_be_an_id(id):
            raise model.DoesNotExist
        obj = rows.get(pk=id, environment=environment)
    except model.DoesNotExist:
        raise NotFoundError(
            f"No such {model.OBJECT.replace('.', ' ').replace('_', ' ')}: '{id}'", param=param
        ) from None
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


# --- expand -------------------------------------------------------------------------------------

# Fields that name another object, by the field's name, as Stripe's `expand` reads them.
EXPANDABLE: dict[str, type[StripeObject]] = {
    "customer": Customer,
    "payment_intent": PaymentIntent,
    "latest_charge": Charge,
    "charge": Charge,
    "invoice": Invoice,
    "latest_invoice": Invoice,
    "subscription": Subscription,
    "price": Price,
    "product": Product,
}
# Payment methods are the simulator's names (`pm_card_visa`), not stored objects; expanded,
# they are Stripe's payment-method shape with what the name tells.
PAYMENT_METHOD_FIELDS = {"default_payment_method", "payment_method"}


def expand(data: dict, paths: list[str], *, environment: Environment) -> dict:
    """`data` (an object's or a list's JSON) with the ids at `paths` replaced by their objects:
    `customer`, `latest_charge.customer`, `data.customer` on a list. A path that names no
    expandable field is a 400 naming it, as Stripe answers; each lookup stays in `environment`.
    """
    for path in paths:
        _expand(data, path.split("."), path, environment)
    return data


def _expand(node: Any, parts: list[str], path: str, environment: Environment) -> None:
    if isinstance(node, list):  # a list's `data`: every item
        for item in node:
            _expand(item, parts, path, environment)
        return
    head, rest = parts[0], parts[1:]
    if not isinstance(node, dict) or head not in node:
        raise _not_expandable(path)
    value = node[head]
    if isinstance(value, str):
        value = node[head] = _expanded(head, value, path, environment)
    elif value is not None and not rest and not isinstance(value, dict):
        raise _not_expandable(path)
    if rest and value is not None:
        _expand(value, rest, path, environment)


def _expanded(field: str, id: str, path: str, environment: Environment) -> dict:
    if field in PAYMENT_METHOD_FIELDS:
        return payment_method_object(id)
    model = EXPANDABLE.get(field)
    if model is None:
        raise _not_expandable(path)
    return snapshot(get_object(model, environment, id, param="expand"))


def payment_method_object(id: str) -> dict:
    """A simulator payment method (`pm_card_visa`) in Stripe's `payment_method` shape."""
    brand = id.removeprefix("pm_card_").split("_")[0] if id.startswith("pm_card_") else ""
    return {
        "id": id,
        "object": "payment_method",
        "type": "card",
        "card": {"brand": brand.lower() or None},
    }


def _not_expandable(path: str) -> InvalidRequestError:
    return InvalidRequestError(f"This property cannot be expanded ({path}).", param="expand")
