"""Each builder interaction costs a fixed number of queries, whatever the size of the workflow:
the counts below are the same on a 3-step and a 12-step workflow (the two of bench_builder)."""

from __future__ import annotations

import pytest
from django.db import connection

from workflows import services
from workflows.management.commands.bench_builder import (
    three_step_definition,
    twelve_step_definition,
)

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def workflows(live, mona, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_STEPS_PER_WORKFLOW": 13}
    return [
        services.workflow_create(environment=live, definition=definition(), created_by=mona)
        for definition in (three_step_definition, twelve_step_definition)
    ]


@pytest.fixture
def manager(client, mona):
    client.force_login(mona)
    return client


def _each(workflows, django_assert_num_queries, count, call) -> None:
    for workflow in workflows:
        with django_assert_num_queries(count):
            response = call(f"/admin/workflows/{workflow.pk}")
        assert response.status_code == 200


def test_opening_the_canvas_costs_nine_queries(workflows, manager, django_assert_num_queries):
    # session, user (with its role), the environments (the session's one and the header's
    # switcher), workflow, the draft's steps, paths and conditions, the permissions (for the
    # admin sidebar), the workflow's latest history entries (one query on PostgreSQL; SQLite
    # records none and asks nothing, so it stays at eight there).
    expected = 9 if connection.vendor == "postgresql" else 8
    _each(workflows, django_assert_num_queries, expected, lambda base: manager.get(f"{base}/"))


def test_adding_a_step_costs_fourteen_queries(workflows, manager, django_assert_num_queries):
    # The 7 of reading the workflow and its draft (as above, without the page's layout), then
    # in a savepoint: lock (and touch), the draft's steps (ids in use, siblings), make room
    # after the new step's position, insert, step count.
    _each(
        workflows,
        django_assert_num_queries,
        14,
        lambda base: manager.post(
            f"{base}/steps/add/",
            {"kind": "action", "action": "customers.update", "position": 1},
            **HX,
        ),
    )


def test_saving_a_step_costs_twelve_queries(workflows, manager, django_assert_num_queries):
    # The 7 of reading, then in a savepoint: lock (and touch), the step with its draft, update.
    _each(
        workflows,
        django_assert_num_queries,
        12,
        lambda base: manager.post(
            f"{base}/steps/tag_three/",
            {"p_customer": "{{ trigger.data.object.id }}", "p_metadata": "three = yes"},
            **HX,
        ),
    )


def test_opening_the_picker_costs_seven_queries(workflows, manager, django_assert_num_queries):
    # The 7 of reading the workflow and its draft; the fields come from the JSON form.
    _each(
        workflows,
        django_assert_num_queries,
        7,
        lambda base: manager.get(f"{base}/picker/?step=tag_three&target=id_p_customer", **HX),
    )
