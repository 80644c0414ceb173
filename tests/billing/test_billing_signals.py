"""Billing writes go through the ORM's `save()`: model signals see every one of them."""

from __future__ import annotations

from django.db.models.signals import post_save

from billing import services
from billing.models import Customer, Event
from tests import factories


class _Saves:
    def __init__(self) -> None:
        self.seen: list[tuple[type, str, bool, frozenset | None]] = []

    def __call__(self, sender, instance, created, update_fields=None, **kwargs) -> None:
        self.seen.append((sender, instance.pk, created, update_fields))


def _listening(*models):
    saves = _Saves()
    for model in models:
        post_save.connect(saves, sender=model, weak=False)
    return saves


def _stop(saves: _Saves, *models) -> None:
    for model in models:
        post_save.disconnect(saves, sender=model)


def test_a_post_save_receiver_sees_a_service_s_update_and_its_event(live):
    customer = factories.customer(live)
    saves = _listening(Customer, Event)
    try:
        services.customer_update(customer=customer, changes={"name": "Ada"})
    finally:
        _stop(saves, Customer, Event)
    event = Event.objects.get(object_id=customer.pk, type="customer.updated")
    assert (Customer, customer.pk, False, frozenset({"name"})) in saves.seen
    assert (Event, event.pk, True, None) in saves.seen


def test_a_post_save_receiver_sees_a_service_s_create(live):
    saves = _listening(Customer, Event)
    try:
        customer = services.customer_create(environment=live, email="new@example.com")
    finally:
        _stop(saves, Customer, Event)
    created = [(sender, pk) for sender, pk, is_new, _ in saves.seen if is_new]
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    assert created == [(Customer, customer.pk), (Event, event.pk)]
