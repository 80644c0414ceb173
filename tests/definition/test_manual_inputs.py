"""Manual input: one checker (`validate_manual_input`) for the API, the service, the builder's
run form and its test form, so each refuses the same input with the same words."""

from __future__ import annotations

import pytest

from tests import factories
from tests.api_client import api_for, error_of
from workflows.builder.forms import ManualInputForm
from workflows.definition.validation import validate_manual_input
from workflows.models import Run

HX = {"HTTP_HX_REQUEST": "true"}
DECLARED = [
    {"name": "customer", "type": "string", "required": True},
    {"name": "amount", "type": "integer"},
    {"name": "reason", "type": "string", "choices": ["duplicate", "fraudulent"]},
]
REFUND = {
    "name": "Note a refund",
    "trigger": {"type": "manual", "input": DECLARED},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.input.customer }}",
                "metadata": {"Refund": "{{ trigger.input.reason }}"},
            },
        }
    ],
}


@pytest.fixture
def refund(live):
    return factories.workflow_active(live, REFUND)


def test_it_refuses_a_required_field_sent_empty_through_the_api(live, refund):
    response = api_for(live, "account_manager").post(
        f"/workflows/{refund.pk}/invoke", {"input": {"customer": ""}}
    )

    assert response.status_code == 400
    error = error_of(response)
    assert (error["param"], error["message"]) == (
        "input.customer",
        "Input field 'customer' is required.",
    )
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("posted", "sent", "field", "message"),
    [
        (
            {"customer": "cus_1", "amount": "ten"},
            {"customer": "cus_1", "amount": "ten"},
            "amount",
            "Input field 'amount' must be an integer, not string",
        ),
        (
            {"customer": "cus_1", "amount": "1.5"},
            {"customer": "cus_1", "amount": 1.5},
            "amount",
            "Input field 'amount' must be an integer, not number",
        ),
        ({"amount": "3"}, {"amount": 3}, "customer", "Input field 'customer' is required"),
    ],
)
def test_it_gives_the_run_form_the_api_s_error_under_the_field(
    client, live, mona, refund, posted, sent, field, message
):
    api = api_for(live, "account_manager")
    api_error = error_of(api.post(f"/workflows/{refund.pk}/invoke", {"input": sent}))
    client.force_login(mona)

    page = client.post(f"/admin/workflows/{refund.pk}/run/", posted, **HX).content.decode()

    assert (api_error["param"], api_error["message"]) == (f"input.{field}", f"{message}.")
    form = ManualInputForm(DECLARED, posted)
    assert not form.is_valid()
    assert form.errors[field] == [message]
    assert message.replace("'", "&#x27;") in page
    assert not Run.objects.exists()


def test_it_type_checks_a_test_run_s_manual_input_like_a_real_run(client, live, mona, refund):
    client.force_login(mona)

    page = client.post(
        f"/admin/workflows/{refund.pk}/test/", {"customer": "cus_1", "amount": "1.5"}, **HX
    ).content.decode()

    assert "Input field &#x27;amount&#x27; must be an integer, not number" in page
    assert "Correct the input fields below." in page
    assert not Run.objects.exists()


def test_it_reads_each_box_as_its_declared_type():
    form = ManualInputForm(
        DECLARED, {"customer": "cus_1", "amount": "12", "reason": '"fraudulent"'}
    )

    assert form.is_valid(), form.errors
    assert form.values == {"customer": "cus_1", "amount": 12, "reason": "fraudulent"}


def test_it_lets_an_optional_field_be_absent_or_null_but_not_of_another_type():
    assert validate_manual_input(DECLARED, {"customer": "cus_1", "amount": None}) == []
    assert [
        e.message for e in validate_manual_input(DECLARED, {"customer": "c", "amount": ""})
    ] == ["Input field 'amount' must be an integer, not string"]
