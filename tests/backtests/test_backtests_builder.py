"""The builder's Backtest panel: the range form, a backtest started on the workers' queue, its
report polled with HTMX (numbers, the SVG charts, money formatted, samples), a sample drawn on
the canvas, bad input named, and roles."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests import factories
from tests.backtests.test_backtests import (
    make_customer,
    refund_workflow_definition,
    segment_workflow_definition,
)
from workflows.backtests.jobs import backtest_apply
from workflows.models import Backtest

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def workflow(live, alice):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    for i in range(9):
        make_customer(live, i)
    return workflow


def url(workflow, suffix: str = "") -> str:
    return reverse("workflows:builder", args=[workflow.pk]) + "backtests/" + suffix


def test_the_panel_starts_a_backtest_and_polls_its_report(client, mona, workflow):
    client.force_login(mona)
    page = client.get(reverse("workflows:builder", args=[workflow.pk])).content.decode()
    assert 'id="wf-backtest-link"' in page
    panel = client.get(url(workflow), **HX).content.decode()
    assert 'id="wf-backtest-form"' in panel and 'name="since"' in panel
    assert "Published version 1" in panel
    assert client.get(url(workflow)).status_code == 200  # the whole page, without HTMX

    response = client.post(url(workflow), {"version": "published"}, **HX)
    html = response.content.decode()
    backtest = Backtest.objects.get()
    assert (backtest.user, backtest.version_number) == (mona, 1)
    assert f'hx-get="{url(workflow, f"{backtest.pk}/")}"' in html  # polls while queued
    assert "waiting for a worker" in html

    backtest_apply(backtest_id=backtest.pk, continue_with=None)
    report = client.get(url(workflow, f"{backtest.pk}/"), **HX).content.decode()
    assert 'hx-trigger="every 1s"' not in report  # done: the polling stops
    assert re.search(r'id="wf-backtest-starts"><strong>3</strong> events would start', report)
    assert 'id="wf-backtest-paths"' in report and 'id="wf-backtest-steps"' in report
    assert report.count("<rect ") == 3 + 5  # three paths taken, five steps
    assert "<title>Europe: 1</title>" in report
    assert 'class="wf-backtest-sample"' in report


def test_refund_amounts_show_as_money(client, mona, live, alice):
    workflow = factories.WorkflowFactory(
        environment=live, definition=refund_workflow_definition(), created_by=alice, activate=False
    )
    factories.paid_charge(live, amount=123456, currency="usd")
    client.force_login(mona)
    client.post(url(workflow), {}, **HX)
    backtest = Backtest.objects.get()
    backtest_apply(backtest_id=backtest.pk, continue_with=None)
    report = client.get(url(workflow, f"{backtest.pk}/"), **HX).content.decode()
    assert "<code>refund_all</code>: 1,234.56 USD" in report


def test_a_sample_opens_on_the_canvas(client, mona, workflow):
    client.force_login(mona)
    client.post(url(workflow), {"version": "published"}, **HX)
    backtest = Backtest.objects.get()
    backtest_apply(backtest_id=backtest.pk, continue_with=None)
    backtest.refresh_from_db()
    europe = next(s for s in backtest.samples if s["route"] == "Europe")
    html = client.get(url(workflow, f"{backtest.pk}/samples/{europe['event']}/"), **HX)
    html = html.content.decode()
    assert f"Sample {europe['event']}" in html
    assert "Path: has_email → true; region → Europe" in html
    assert 'id="wf-canvas" hx-swap-oob="true"' in html  # the canvas shows the sample's run
    assert client.get(url(workflow, f"{backtest.pk}/samples/evt_other/"), **HX).status_code == 404


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"since": "2026-02-30"}, "since: `since` must be a Unix time"),
        ({"since": "2026-03-10", "until": "2026-03-01"}, "until: `until`"),
        ({"version": "draft"}, "version: This workflow has no draft."),
    ],
)
def test_bad_input_is_shown_naming_the_field(client, mona, workflow, data, shown):
    client.force_login(mona)
    html = client.post(url(workflow), data, **HX).content.decode()
    assert 'id="wf-backtest-error"' in html and shown in html
    assert not Backtest.objects.exists()


@pytest.mark.parametrize("who", ["vic", "sam", "olga"])
def test_only_those_who_may_test_the_workflow_may_backtest_it(request, client, workflow, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get(url(workflow), **HX).status_code == 403
    assert client.post(url(workflow), {}, **HX).status_code == 403
    assert not Backtest.objects.exists()


def test_another_workflow_s_backtest_is_404(client, mona, workflow, live, alice):
    other = factories.workflow_active(live, segment_workflow_definition("Other"), alice)
    client.force_login(mona)
    client.post(url(workflow), {}, **HX)
    backtest = Backtest.objects.get()
    assert client.get(url(other, f"{backtest.pk}/"), **HX).status_code == 404
