"""Issue 15 (one workflow, one meaning): typed condition values in the builder and the API,
money in minor units shown as money, formatters in `{{ }}`, human event names, the picker's
search, a new branch's paths.

The builder is driven through its views with the test client (as a browser posts it); the API
through /api/v1/workflows; formatters through the engine's resolver and validator.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC

import pytest

from billing import models as billing_models
from billing import validation as billing_validation
from tests import factories
from tests.api_client import api_for, error_of
from workflows import services
from workflows.definition import event_types, money
from workflows.definition.validation import validate_definition
from workflows.engine.templating import TemplateError, resolve
from workflows.models import Workflow
from workflows.services import workflow_definition

HX = {"HTTP_HX_REQUEST": "true"}

INVOICE_PAID = {
    "name": "Large invoices",
    "trigger": {"type": "event", "event": "invoice.paid", "accounts": "platform"},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {"customer": "{{ trigger.data.object.customer }}", "description": "big"},
        }
    ],
}


def _with_conditions(conditions: dict, definition: dict = INVOICE_PAID) -> dict:
    result = copy.deepcopy(definition)
    result["trigger"]["conditions"] = conditions
    return result


def _errors(definition: dict) -> list[tuple[str, str, str]]:
    return [(e.step_id, e.field, e.message) for e in validate_definition(definition)]


# --- money: one table of currency exponents -----------------------------------------------


def test_it_formats_minor_units_as_money_in_the_currencys_exponent():
    assert money.format_money(150000, "usd") == "1,500.00 USD"
    assert money.format_money(1500, "jpy") == "1,500 JPY"
    assert money.format_money(12345, "kwd") == "12.345 KWD"
    assert money.format_money(-5, "eur") == "-0.05 EUR"


def test_it_reads_an_amount_typed_in_major_units_as_minor_units():
    assert money.parse_amount("1,000.00", "usd") == 100000
    assert money.parse_amount("1000", "usd") == 100000
    assert money.parse_amount("0.5", "eur") == 50
    assert money.parse_amount("1,000", "jpy") == 1000


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("abc", "usd", "'abc' is not an amount: write it like 1,000.00"),
        ("10.5", "jpy", "JPY has no minor unit: write whole JPY, like 1,000"),
        ("1.001", "usd", "USD amounts have at most 2 decimals"),
        ("1,00", "usd", "'1,00' is not an amount"),
    ],
)
def test_it_refuses_text_that_is_not_an_amount_of_the_currency(text, currency, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        money.parse_amount(text, currency)


def test_the_system_workflows_format_money_with_the_same_table():
    from workflows.system import catalogue as system

    assert system.ZERO_DECIMAL_CURRENCIES is money.ZERO_DECIMAL_CURRENCIES
    assert system.money(150000, "usd") == "1,500.00 USD"
    assert system.money(500, "jpy") == "500 JPY"


# --- the event catalogue: field types and names ------------------------------------------------


def test_the_catalogue_types_amounts_as_money_in_the_objects_currency():
    amount = event_types.field_type("invoice.paid", "trigger.data.object.amount_due")
    assert amount == event_types.FieldType("money", currency_field="trigger.data.object.currency")
    line = event_types.field_type("invoice.paid", "trigger.data.object.lines.data.0.amount")
    assert line.currency_field == "trigger.data.object.lines.data.0.currency"
    assert event_types.field_type("customer.created", "trigger.data.object.balance").kind == "money"


@pytest.mark.parametrize(
    ("event", "field", "kind"),
    [
        ("invoice.paid", "trigger.data.object.paid", "boolean"),
        ("invoice.paid", "trigger.data.object.attempt_count", "integer"),
        ("invoice.paid", "trigger.data.object.created", "timestamp"),
        ("invoice.paid", "trigger.data.object.due_date", "timestamp"),
        ("invoice.paid", "trigger.data.object.number", "text"),
        ("invoice.paid", "trigger.data.object.metadata.plan", "text"),
        ("invoice.paid", "trigger.data.object.lines", "list"),
        ("invoice.paid", "trigger.livemode", "boolean"),
    ],
)
def test_the_catalogue_knows_each_fields_type(event, field, kind):
    assert event_types.field_type(event, field).kind == kind


def test_the_catalogue_gives_enum_fields_their_choices():
    status = event_types.field_type("customer.subscription.updated", "trigger.data.object.status")
    assert status.kind == "enum" and "past_due" in status.choices
    interval = event_types.field_type(
        "invoice.paid", "trigger.data.object.lines.data.0.price.recurring.interval"
    )
    assert interval.choices == ("day", "week", "month", "year")
    currency = event_types.field_type("charge.succeeded", "trigger.data.object.currency")
    assert "jpy" in currency.choices


def test_the_catalogue_knows_nothing_of_free_form_or_unknown_fields():
    assert event_types.field_type("charge.failed", "trigger.data.object.outcome.type") is None
    assert event_types.field_type("invoice.paid", "trigger.data.object.nope") is None
    assert event_types.field_type("invoice.paid", "steps.a.output.total") is None


def test_the_catalogues_choices_mirror_the_billing_models():
    enums = event_types.ENUM_FIELDS
    assert enums[("subscription", "status")] == tuple(billing_models.Subscription.Status.values)
    assert enums[("invoice", "status")] == tuple(billing_models.Invoice.Status.values)
    assert enums[("payment_intent", "status")] == tuple(billing_models.PaymentIntent.Status.values)
    assert enums[("charge", "status")] == tuple(billing_models.Charge.Status.values)
    assert enums[("refund", "status")] == tuple(billing_models.Refund.Status.values)
    assert enums[("refund", "reason")] == tuple(billing_models.Refund.Reason.values)
    assert enums[("dispute", "status")] == tuple(billing_models.Dispute.Status.values)
    assert set(enums[("dispute", "reason")]) == billing_validation.DISPUTE_REASONS
    assert enums[("price", "interval")] == tuple(billing_models.Price.Interval.values)
    assert set(event_types.CURRENCIES) == billing_validation.CURRENCIES


def test_events_have_human_names_like_stripes_dashboard():
    assert event_types.event_label("customer.created") == "Customer created"
    assert event_types.event_label("invoice.payment_failed") == "Invoice payment failed"
    assert event_types.event_label("charge.dispute.created") == "Dispute created"
    assert ("customer.created", "Customer created — customer.created") in (
        event_types.event_choices()
    )


# --- the same checks on the API ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"field": "trigger.data.object.amount_due", "op": "gt", "value": "abc"},
            "amount_due must be an integer (minor units: 1,000.00 USD is 100000), got 'abc'",
        ),
        (
            {"field": "trigger.data.object.amount_due", "op": "gt", "value": 1000.5},
            "amount_due must be an integer (minor units: 1,000.00 USD is 100000), got 1000.5",
        ),
        (
            {"field": "trigger.data.object.status", "op": "eq", "value": "settled"},
            "status must be one of draft, open, paid, void, uncollectible; got 'settled'",
        ),
        (
            {"field": "trigger.data.object.paid", "op": "eq", "value": "yes" * 1000},
            "paid must be true or false, got 'yesyesyes",
        ),
        (
            {"field": "trigger.data.object.number", "op": "eq", "value": 100},
            "number must be text (a string), got 100",
        ),
        (
            {"field": "trigger.data.object.number", "op": "eq", "value": "x" * 5000},
            None,
        ),
        (
            {"field": "trigger.data.object.currency", "op": "in", "value": []},
            "'in' needs at least one value for currency",
        ),
        (
            {"field": "trigger.data.object.currency", "op": "in", "value": ["usd", "USD"]},
            "currency must be one of usd, eur, gbp",
        ),
    ],
)
def test_validation_refuses_a_literal_value_of_the_wrong_type_naming_the_field(condition, message):
    errors = _errors(_with_conditions({"all": [condition]}))
    if message is None:  # a long text is text: accepted
        assert errors == []
        return
    assert len(errors) == 1
    step_id, field, text = errors[0]
    assert (step_id, field) == ("", "trigger.conditions.all[0].value")
    assert text.startswith(message)
    assert len(text) < 200  # a hostile value is clipped in the message


def test_validation_accepts_typed_values_references_and_fields_it_cannot_type():
    conditions = {
        "all": [
            {"field": "trigger.data.object.amount_due", "op": "gte", "value": 100000},
            {"field": "trigger.data.object.status", "op": "in", "value": ["paid", "open"]},
            {"field": "trigger.data.object.paid", "op": "eq", "value": True},
            {"field": "trigger.data.object.description", "op": "eq", "value": None},
            {"field": "trigger.data.object.total", "op": "gt", "value": "{{ trigger.created }}"},
            {"field": "trigger.data.object.metadata.tier", "op": "eq", "value": "gold"},
            {"field": "trigger.data.object.number", "op": "starts_with", "value": "INV"},
        ]
    }
    assert _errors(_with_conditions(conditions)) == []


def test_validation_types_a_trigger_field_in_a_branch_path_and_names_the_step():
    definition = copy.deepcopy(INVOICE_PAID)
    definition["steps"] = [
        {
            "id": "size",
            "type": "branch",
            "paths": [
                {
                    "name": "Large",
                    "when": {
                        "all": [{"field": "trigger.data.object.total", "op": "gt", "value": "1k"}]
                    },
                    "steps": [],
                },
                {"name": "Otherwise", "when": None, "steps": []},
            ],
        }
    ]
    assert _errors(definition) == [
        (
            "size",
            "steps[0].paths[0].when.all[0].value",
            "total must be an integer (minor units: 1,000.00 USD is 100000), got '1k'",
        )
    ]


def test_the_api_refuses_a_condition_value_of_the_wrong_type(live):
    definition = _with_conditions(
        {"all": [{"field": "trigger.data.object.amount_paid", "op": "gt", "value": "abc"}]}
    )

    response = api_for(live).post("/workflows", definition)

    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "trigger.conditions.all[0].value"
    assert "amount_paid must be an integer (minor units" in error["message"]
    assert not Workflow.objects.exists()


# --- formatters ---------------------------------------------------------------------------------

CONTEXT = {
    "trigger": {
        "created": 1796638500,
        "data": {
            "object": {
                "amount_paid": 150000,
                "currency": "usd",
                "due_date": None,
                "lines": {"data": [{"amount": 1500, "currency": "jpy"}]},
            }
        },
    }
}


def test_the_money_formatter_shows_an_amount_in_its_objects_currency():
    text = (
        "Paid {{ trigger.data.object.amount_paid | money }}, "
        "line {{ trigger.data.object.lines.data.0.amount|money }}"
    )
    assert resolve(text, CONTEXT) == "Paid 1,500.00 USD, line 1,500 JPY"
    assert resolve('{{ trigger.data.object.amount_paid | money:"eur" }}', CONTEXT) == (
        "1,500.00 EUR"
    )


def test_the_date_formatter_shows_a_timestamp_in_utc_and_a_null_as_nothing():
    assert resolve("{{ trigger.created | date }}", CONTEXT) == "2026-12-07 10:15 UTC"
    assert resolve("Due: {{ trigger.data.object.due_date | date }}", CONTEXT) == "Due: "


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ trigger.created | money }}", "trigger.created has no currency beside it"),
        ("{{ trigger.data.object.currency | money }}", "is not an amount in minor units"),
        ("{{ trigger.data.object.currency | date }}", "is not a unix timestamp"),
        ("{{ trigger.created | upper }}", "Unknown formatter 'upper'"),
        ("{{ trigger.created | date:'x' }}", "write the formatter as | money"),
        ('{{ trigger.created | date:"usd" }}', "date takes no argument"),
        ('{{ trigger.created | money:"zzz" }}', "'zzz' is not a currency Billflow knows"),
    ],
)
def test_a_formatter_that_cannot_apply_raises_a_template_error(template, message):
    with pytest.raises(TemplateError, match=re.escape(message)):
        resolve(template, CONTEXT)


def test_validation_refuses_an_unknown_formatter_naming_the_step_and_field():
    definition = copy.deepcopy(INVOICE_PAID)
    definition["steps"][0]["params"]["description"] = (
        "Paid {{ trigger.data.object.amount_paid | money }} {{ trigger.created | title }}"
    )
    [(step_id, field, message)] = _errors(definition)
    assert (step_id, field) == ("tag", "steps[0].params.description")
    assert message.startswith("Unknown formatter 'title' in '{{ trigger.created | title }}'")


def test_validation_accepts_the_formatters_and_still_checks_their_paths():
    definition = copy.deepcopy(INVOICE_PAID)
    definition["steps"][0]["params"]["description"] = (
        "{{ trigger.data.object.amount_paid | money }} on {{ trigger.created | date }}"
    )
    assert _errors(definition) == []
    definition["steps"][0]["params"]["description"] = "{{ trigger.data.object.nope | money }}"
    [(_, _, message)] = _errors(definition)
    assert "'nope' is not a field of invoice" in message


# --- the builder ----------------------------------------------------------------------------------


@pytest.fixture
def invoices(live, mona):
    return services.workflow_create(environment=live, definition=INVOICE_PAID, created_by=mona)


def _trigger_post(**rows: str) -> dict:
    data = {
        "workflow_name": "Large invoices",
        "type": "event",
        "event": "invoice.paid",
        "accounts": "platform",
        "trig-match": "all",
        "trig-groups": "1",
        "trig-g0-rows": str(len({k.split("_")[0] for k in rows})),
    }
    for key, value in rows.items():
        row, part = key.split("_", 1)
        data[f"trig-g0-{row}-{part}"] = value
    return data


def _conditions(workflow) -> dict | None:
    return workflow_definition(Workflow.objects.get(pk=workflow.pk))["trigger"].get("conditions")


def test_the_builder_stores_an_amount_typed_as_money_in_minor_units(client, mona, invoices):
    client.force_login(mona)
    url = f"/admin/workflows/{invoices.pk}/trigger/"
    data = _trigger_post(
        r0_field="trigger.data.object.amount_paid", r0_op="gt", r0_value="1,000.00"
    )

    response = client.post(url, data, **HX)

    assert _conditions(invoices) == {
        "all": [{"field": "trigger.data.object.amount_paid", "op": "gt", "value": 100000}]
    }
    body = response.content.decode()
    assert 'value="1,000.00"' in body
    assert "1,000.00 USD · stored as 100000 (minor units)" in body
    # Shown back as money when the panel is opened again.
    again = client.get(url, **HX).content.decode()
    assert 'value="1,000.00"' in again and "stored as 100000" in again


def test_the_builder_reads_a_zero_decimal_amount_in_whole_units(client, mona, invoices):
    client.force_login(mona)
    data = _trigger_post(
        r0_field="trigger.data.object.currency",
        r0_op="eq",
        r0_value="JPY",  # read as Stripe's lower-case code
        r1_field="trigger.data.object.amount_paid",
        r1_op="gte",
        r1_value="1,000",
        r1_currency="jpy",
    )
    client.post(f"/admin/workflows/{invoices.pk}/trigger/", data, **HX)
    assert _conditions(invoices)["all"][1]["value"] == 1000
    assert _conditions(invoices)["all"][0]["value"] == "jpy"
    # Drawn again in yen: the editor's `currency is equal to jpy` row names the currency.
    body = client.get(f"/admin/workflows/{invoices.pk}/trigger/", **HX).content.decode()
    assert "1,000 JPY · stored as 1000 (minor units)" in body


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"r0_field": "trigger.data.object.amount_paid", "r0_op": "gt", "r0_value": "abc"},
            "amount_paid: &#x27;abc&#x27; is not an amount: write it like 1,000.00",
        ),
        (
            {"r0_field": "trigger.data.object.attempt_count", "r0_op": "gt", "r0_value": "abc"},
            "attempt_count must be an integer (a whole number), got &#x27;abc&#x27;",
        ),
        (
            {"r0_field": "trigger.data.object.status", "r0_op": "eq", "r0_value": "settled"},
            "status must be one of draft, open, paid, void, uncollectible",
        ),
        (
            {"r0_field": "trigger.data.object.status", "r0_op": "in", "r0_value": " "},
            "status needs a value for &#x27;is one of&#x27;",
        ),
        (
            {"r0_field": "", "r0_op": "eq", "r0_value": "1000"},
            "Choose a field for this condition (its value &#x27;1000&#x27; compares with nothing)",
        ),
    ],
)
def test_the_builder_refuses_a_wrong_or_empty_value_inline_and_saves_nothing(
    client, mona, invoices, rows, message
):
    client.force_login(mona)
    before = Workflow.objects.get(pk=invoices.pk).draft_version_id
    response = client.post(f"/admin/workflows/{invoices.pk}/trigger/", _trigger_post(**rows), **HX)
    body = response.content.decode()
    assert message in body
    row = re.search(r'<div class="wf-cond-row([^"]*)"', body)
    assert row and "wf-field-error" in row.group(1)
    assert _conditions(invoices) is None
    assert Workflow.objects.get(pk=invoices.pk).draft_version_id == before


def test_the_builder_types_conditions_of_a_branch_path_by_the_trigger_event(client, mona, invoices):
    client.force_login(mona)
    base = f"/admin/workflows/{invoices.pk}/steps"
    client.post(f"{base}/add/", {"kind": "branch", "position": 1})
    data = {
        "name": "",
        "paths": "2",
        "path0-name": "Large",
        "path0-match": "all",
        "path0-groups": "1",
        "path0-g0-rows": "1",
        "path0-g0-r0-field": "trigger.data.object.total",
        "path0-g0-r0-op": "gte",
        "path0-g0-r0-value": "2,500.50",
        "path1-name": "Otherwise",
        "path1-else": "on",
    }
    client.post(f"{base}/branch/", data, **HX)
    steps = workflow_definition(Workflow.objects.get(pk=invoices.pk))["steps"]
    assert steps[1]["paths"][0]["when"] == {
        "all": [{"field": "trigger.data.object.total", "op": "gte", "value": 250050}]
    }


def test_a_new_branch_starts_with_one_path_and_the_else_path(client, mona, invoices):
    client.force_login(mona)
    client.post(f"/admin/workflows/{invoices.pk}/steps/add/", {"kind": "branch", "position": 1})
    branch = workflow_definition(Workflow.objects.get(pk=invoices.pk))["steps"][1]
    assert [(p["name"], p["when"]) for p in branch["paths"]] == [
        ("Path 1", {"all": []}),
        ("Otherwise", None),
    ]


def test_the_trigger_panel_and_canvas_name_events_for_people(client, mona, invoices):
    client.force_login(mona)
    page = client.get(f"/admin/workflows/{invoices.pk}/").content.decode()
    assert "When Invoice paid" in page
    assert '<code class="wf-event-type">invoice.paid</code>' in page
    panel = client.get(f"/admin/workflows/{invoices.pk}/trigger/", **HX).content.decode()
    assert '<option value="invoice.paid" selected>Invoice paid — invoice.paid</option>' in panel
    listing = client.get("/admin/workflows/").content.decode()
    assert "Invoice paid <code>invoice.paid</code>" in listing


def test_the_pickers_search_box_asks_the_picker_not_the_page(client, mona, invoices):
    client.force_login(mona)
    base = f"/admin/workflows/{invoices.pk}/picker/"
    body = client.get(base, {"step": "tag", "target": "id_p_description"}, **HX).content.decode()
    search = re.search(r'<input type="search"[^>]*hx-get="([^"]*)"', body)
    assert search, body[:500]
    assert search.group(1).startswith(base + "?")
    assert "list=1" in search.group(1)


def test_a_money_field_is_offered_with_its_currency_choices(client, mona, invoices):
    client.force_login(mona)
    data = _trigger_post(r0_field="trigger.data.object.amount_paid", r0_op="gt", r0_value="5")
    body = client.post(f"/admin/workflows/{invoices.pk}/trigger/", data, **HX).content.decode()
    select = re.search(r'<select name="trig-g0-r0-currency"[^>]*>', body).group(0)
    assert "hidden" not in select
    assert '<option value="jpy">JPY</option>' in body
    assert 'data-kind="money"' in body and 'inputmode="decimal"' in body


def test_the_builder_offers_an_enum_fields_choices(live, mona, client):
    definition = _with_conditions(
        {"all": [{"field": "trigger.data.object.status", "op": "eq", "value": "paid"}]}
    )
    workflow = services.workflow_create(environment=live, definition=definition, created_by=mona)
    client.force_login(mona)
    body = client.get(f"/admin/workflows/{workflow.pk}/trigger/", **HX).content.decode()
    assert 'list="trig-g0-r0-options"' in body
    assert '<datalist id="trig-g0-r0-options"><option value="draft"></option>' in body
    assert "one of draft, open, paid, void, uncollectible" in body


def test_stored_conditions_round_trip_through_the_editor_unchanged(client, mona, live):
    """Opening and saving the trigger changes nothing (typed rows read back what they show)."""
    definition = _with_conditions(
        {
            "all": [
                {"field": "trigger.data.object.amount_paid", "op": "gt", "value": 123456},
                {"field": "trigger.data.object.status", "op": "in", "value": ["paid", "open"]},
                {"field": "trigger.data.object.paid", "op": "eq", "value": True},
                {"field": "trigger.data.object.number", "op": "eq", "value": "100"},
                {"field": "trigger.data.object.description", "op": "eq", "value": None},
                {"field": "trigger.data.object.attempt_count", "op": "in", "value": [1, 2]},
            ]
        }
    )
    workflow = services.workflow_create(environment=live, definition=definition, created_by=mona)
    client.force_login(mona)
    body = client.get(f"/admin/workflows/{workflow.pk}/trigger/", **HX).content.decode()
    data = _trigger_post()
    data["trig-g0-rows"] = "6"
    for r in range(6):
        for part in ("field", "op", "value", "currency"):
            name = f"trig-g0-r{r}-{part}"
            match = re.search(rf'name="{name}" value="([^"]*)"', body)
            if part == "op":
                match = re.search(
                    rf'name="{name}".*?<option value="([^"]+)" selected', body, re.DOTALL
                )
            elif part == "currency":
                match = re.search(
                    rf'name="{name}".*?<option value="([^"]+)" selected', body, re.DOTALL
                )
            if match:
                data[name] = match.group(1).replace("&quot;", '"').replace("&#x27;", "'")
    client.post(f"/admin/workflows/{workflow.pk}/trigger/", data, **HX)
    assert _conditions(workflow) == definition["trigger"]["conditions"]


# --- a run: typed condition and formatters on a real event -----------------------------------


def test_a_run_matches_a_typed_amount_and_writes_it_for_people(live, mona):
    from django.test import TestCase

    from billing import services as billing
    from billing.models import Customer, Event
    from workflows.engine.executor import run_execute
    from workflows.models import Run

    customer = factories.customer(live, email="ops@example.com")
    definition = {
        "name": "Note big prices",
        "trigger": {
            "type": "event",
            "event": "price.created",
            "accounts": "platform",
            # 1,000.00 in the price's currency, as the builder stores it.
            "conditions": {
                "all": [{"field": "trigger.data.object.unit_amount", "op": "gte", "value": 100000}]
            },
        },
        "steps": [
            {
                "id": "note",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": customer.pk,
                    "description": "Price {{ trigger.data.object.unit_amount | money }} "
                    "at {{ trigger.created | date }}",
                },
            }
        ],
    }
    factories.workflow_active(live, definition, mona)
    product = billing.product_create(environment=live, name="Pro")
    with TestCase.captureOnCommitCallbacks(execute=True):
        billing.price_create(product=product, currency="usd", unit_amount=99999)
        big = billing.price_create(product=product, currency="usd", unit_amount=150000)
    run = Run.objects.get()
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    event = Event.objects.get(object_id=big.pk, type="price.created")
    assert run.event_id == event.pk  # the 999.99 USD price did not match
    when = event.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert Customer.objects.get(pk=customer.pk).description == f"Price 1,500.00 USD at {when}"


def test_the_picker_offers_money_and_date_formatters_beside_their_fields(client, mona, invoices):
    client.force_login(mona)
    body = client.get(
        f"/admin/workflows/{invoices.pk}/picker/",
        {"step": "tag", "target": "id_p_description"},
        **HX,
    ).content.decode()
    assert 'data-insert="{{ trigger.data.object.amount_paid | money }}"' in body
    assert 'data-insert="{{ trigger.created | date }}"' in body
    # A condition's field takes a bare path: no formatter there.
    bare = client.get(
        f"/admin/workflows/{invoices.pk}/picker/", {"target": "trig-g0-r0-field", "bare": "1"}, **HX
    ).content.decode()
    assert "| money" not in bare
