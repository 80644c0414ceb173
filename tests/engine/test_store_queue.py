"""The store's queue (`SkipLockedORM`): django-q2's ORM broker with a one-statement claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ

from tests.concurrency import race
from workflows.engine.store.queue import SkipLockedORM


def _queue(count: int) -> tuple[SkipLockedORM, list[int]]:
    broker = get_broker("broker-test")
    assert isinstance(broker, SkipLockedORM)  # what the settings choose with the ORM broker
    return broker, [broker.enqueue(f"task-{n}") for n in range(count)]


def _claimed_ids(claimed) -> list[int]:
    return [task_id for task_id, _ in claimed or []]


@pytest.mark.django_db
def test_it_takes_up_to_bulk_tasks_oldest_first_and_hides_them_until_retry():
    broker, ids = _queue(Conf.BULK + 1)

    first = broker.dequeue()
    assert first == [(task_id, f"task-{n}") for n, task_id in enumerate(ids[: Conf.BULK])]
    assert _claimed_ids(broker.dequeue()) == ids[Conf.BULK :]
    assert broker.dequeue() is None  # every task is claimed: nothing until `retry` passes
    hidden_until = OrmQ.objects.get(pk=ids[0]).lock
    assert hidden_until > timezone.now() + timedelta(seconds=Conf.RETRY - 5)


@pytest.mark.django_db
def test_a_claim_whose_retry_passed_is_delivered_again_and_an_ack_deletes_it():
    broker, ids = _queue(2)
    assert _claimed_ids(broker.dequeue()) == ids
    OrmQ.objects.filter(pk=ids[1]).update(lock=timezone.now() - timedelta(seconds=1))

    assert _claimed_ids(broker.dequeue()) == [ids[1]]  # its worker died: redelivered
    broker.acknowledge(ids[0])
    assert list(OrmQ.objects.filter(key="broker-test").values_list("pk", flat=True)) == [ids[1]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_out_one_task_twice():
    broker, ids = _queue(120)

    def claimer() -> list[int]:
        mine: list[int] = []
        while (tasks := get_broker("broker-test").dequeue()) is not None:
            mine += _claimed_ids(tasks)
        return mine

    claimed = race(4, claimer)
    every = [task_id for mine in claimed for task_id in mine]
    assert sorted(every) == ids  # all of them, none twice
    assert sum(1 for mine in claimed if mine) > 1  # and the claimers really did share the queue


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_and_an_ack_replace_a_connection_that_died():
    from django.db import connection

    from tests.engine.test_store_reconnect import _backend, _terminate

    broker, ids = _queue(2)
    _terminate(_backend())
    assert _claimed_ids(broker.dequeue()) == ids

    _terminate(_backend())
    broker.acknowledge(ids[0])

    assert connection.is_usable()
    assert list(OrmQ.objects.filter(key="broker-test").values_list("pk", flat=True)) == [ids[1]]
