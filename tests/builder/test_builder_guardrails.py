"""The builder's Guardrails panel and card, the breaker's reason on the workflow page, and the
API's errors naming the guardrail fields."""

from __future__ import annotations

from django.utils import timezone

from tests import factories
from tests.api_client import api_for, error_of
from workflows.definition.rows import version_definition
from workflows.models import Workflow

HX = {"HTTP_HX_REQUEST": "true"}


def url(workflow) -> str:
    return f"/admin/workflows/{workflow.pk}/guardrails/"


def draft_of(workflow) -> dict:
    workflow.refresh_from_db()
    return version_definition(workflow.draft_version or workflow.published_version)


def test_the_panel_saves_caps_in_minor_units_and_the_canvas_shows_them(client, mona, region_draft):
    client.force_login(mona)
    response = client.post(
        url(region_draft),
        {
            "max_amount_per_run": "usd 500.00\njpy 20,000",
            "max_amount_per_day": "usd 5,000.00",
            "max_runs_per_hour": "100",
            "failure_rate": "0.5",
            "min_runs": "20",
            "window_minutes": "60",
        },
        **HX,
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Saved." in html
    definition = draft_of(region_draft)
    assert definition["guardrails"] == {
        "max_amount_per_run": {"usd": 50000, "jpy": 20000},
        "max_amount_per_day": {"usd": 500000},
        "max_runs_per_hour": 100,
    }
    assert definition["auto_deactivate"] == {
        "failure_rate": 0.5,
        "min_runs": 20,
        "window_minutes": 60,
    }
    # The canvas (out of band) shows the summary.
    assert "At most 500.00 USD, 20,000 JPY per run" in html
    assert "At most 5,000.00 USD per day" in html
    assert "At most 100 money-moving runs per hour" in html
    assert "Deactivated when 50% of at least 20 runs in 60 minutes fail" in html
    # The panel shows what was saved, in major units.
    page = client.get(url(region_draft)).content.decode()
    assert "usd 500.00" in page and "jpy 20,000" in page


def test_bad_values_are_refused_next_to_their_field_and_nothing_is_saved(
    client, mona, region_draft
):
    client.force_login(mona)
    before = draft_of(region_draft)
    response = client.post(
        url(region_draft),
        {
            "max_amount_per_day": "US 5.00\neur 1.005",
            "max_runs_per_hour": "0",
            "failure_rate": "1.5",
            "min_runs": "",
            "window_minutes": "60",
        },
        **HX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Saved." not in html
    assert "EUR amounts have at most 2 decimals" in html
    assert "US: &#x27;US&#x27; is not a currency" in html or "US: 'US' is not a currency" in html
    assert 'id="wf-field-max_runs_per_hour"' in html
    assert "Must be a whole number from 1 to 1,000,000" in html
    assert "Must be a number above 0 and at most 1" in html
    assert "Required" in html  # min_runs, with a rate given
    assert draft_of(region_draft) == before


def test_an_empty_form_removes_the_guardrails(client, mona, region_draft):
    client.force_login(mona)
    client.post(url(region_draft), {"max_runs_per_hour": "5"}, **HX)
    assert draft_of(region_draft)["guardrails"] == {"max_runs_per_hour": 5}
    client.post(url(region_draft), {}, **HX)
    assert "guardrails" not in draft_of(region_draft)


def test_a_viewer_sees_the_panel_but_cannot_save(client, vic, region_draft):
    client.force_login(vic)
    assert client.get(url(region_draft)).status_code == 200
    assert client.post(url(region_draft), {"max_runs_per_hour": "5"}).status_code == 403
    assert "guardrails" not in draft_of(region_draft)


def test_the_workflow_page_says_why_the_breaker_deactivated_it(client, mona, region_workflow):
    reason = "Deactivated by its circuit breaker: 3 of the 4 runs that ended failed."
    Workflow.objects.filter(pk=region_workflow.pk).update(
        status=Workflow.Status.INACTIVE, deactivated_reason=reason, deactivated_at=timezone.now()
    )
    client.force_login(mona)
    html = client.get(f"/admin/workflows/{region_workflow.pk}/").content.decode()
    assert reason in html
    listing = client.get("/admin/workflows/").content.decode()
    assert "by its circuit breaker" in listing
    # Activating it again clears the reason.
    client.post(f"/admin/workflows/{region_workflow.pk}/activate/", {"next": "builder"})
    region_workflow.refresh_from_db()
    assert region_workflow.status == Workflow.Status.ACTIVE
    assert region_workflow.deactivated_reason == ""


def test_the_api_refuses_bad_guardrails_naming_the_field_and_keeps_good_ones(live):
    api = api_for(live, "account_manager")
    definition = {
        **factories.tag_by_hand_definition(),
        "guardrails": {"max_amount_per_day": {"usd": 0}},
    }
    response = api.post("/workflows", definition)
    assert response.status_code == 400
    assert error_of(response)["param"] == "guardrails.max_amount_per_day.usd"
    assert "positive whole number in the currency's minor unit" in error_of(response)["message"]

    definition["auto_deactivate"] = {"failure_rate": 0.5, "min_runs": 0, "window_minutes": 60}
    definition["guardrails"] = {"max_amount_per_day": {"usd": 500000}}
    response = api.post("/workflows", definition)
    assert error_of(response)["param"] == "auto_deactivate.min_runs"

    definition["auto_deactivate"]["min_runs"] = 20
    response = api.post("/workflows", definition)
    assert response.status_code == 200, response.json()
    assert response.json()["guardrails"] == {"max_amount_per_day": {"usd": 500000}}
    assert response.json()["auto_deactivate"]["min_runs"] == 20
