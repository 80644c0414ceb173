"""System workflow settings pages, per role, per method and per environment."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from console.environments import SESSION_KEY
from workflows.models import SystemWorkflowSettings, Workflow
from workflows.system.catalogue import system_settings_get, system_workflows_install

MANAGERS = ["mona", "dave", "alice"]
READERS = ["vic", "sam"]
STEPS = ["update_statistics", "notify_provider", "email_customer", "notify_team"]


@pytest.fixture
def installed_in_both(live, sandbox):
    system_workflows_install(environment=live)
    system_workflows_install(environment=sandbox)


def client_for(user, environment=None) -> Client:
    client = Client()
    client.force_login(user)
    if environment is not None:
        session = client.session
        session[SESSION_KEY] = environment.slug
        session.save()
    return client


def save_url(key: str = "subscription_created") -> str:
    return reverse("system_workflows:save", args=[key])


def form(**overrides) -> dict:
    data = {
        "enabled": ["update_statistics", "email_customer", "notify_team"],
        "email_subject": "Welcome, {{ customer.name }}",
        "email_body": "Thanks for subscribing.",
        "team_recipients": "mona, vic@example.com",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("who", MANAGERS + READERS)
def test_it_shows_the_list_to_every_role_that_sees_workflows(who, cast, installed_in_both):
    response = client_for(cast[who]).get(reverse("system_workflows:list"))

    assert response.status_code == 200
    body = response.content.decode()
    for name in ("Subscription Creation", "Payment Failure", "Chargeback Creation"):
        assert name in body
    assert 'id="system-workflows"' in body


def test_it_denies_the_list_to_a_user_without_a_role(cast, installed_in_both):
    response = client_for(cast["olga"]).get(reverse("system_workflows:list"))

    assert response.status_code == 403


def test_it_sends_anonymous_visitors_to_the_login_page(installed_in_both):
    response = Client().get(reverse("system_workflows:list"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("who", READERS)
def test_it_shows_settings_read_only_to_readers(who, cast, installed_in_both):
    response = client_for(cast[who]).get(
        reverse("system_workflows:detail", args=["subscription_created"])
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "Your subscription is confirmed" in body  # the default subject
    assert 'value="Save"' not in body
    assert "readonly" in body


@pytest.mark.parametrize("who", MANAGERS)
def test_it_saves_settings_for_account_managers_and_above(who, cast, live, installed_in_both):
    response = client_for(cast[who]).post(save_url(), form())

    assert response.status_code == 302
    row = SystemWorkflowSettings.objects.get(environment=live, system_key="subscription_created")
    assert row.disabled_steps == ["notify_provider"]
    assert row.email_subject == "Welcome, {{ customer.name }}"
    assert row.email_body == "Thanks for subscribing."
    assert row.team_recipients == ["mona", "vic@example.com"]
    assert row.updated_by == cast[who]


@pytest.mark.parametrize("who", [*READERS, "olga"])
def test_it_refuses_settings_changes_below_account_manager(who, cast, live, installed_in_both):
    response = client_for(cast[who]).post(save_url(), form())

    assert response.status_code == 403
    assert not SystemWorkflowSettings.objects.exists()


@pytest.mark.parametrize("who", [*READERS, "olga"])
def test_it_refuses_install_below_account_manager(who, cast, installed_in_both):
    response = client_for(cast[who]).post(reverse("system_workflows:install"))

    assert response.status_code == 403


def test_it_only_accepts_post_for_changes(cast, installed_in_both):
    client = client_for(cast["mona"])

    assert client.get(save_url()).status_code == 405
    assert client.get(reverse("system_workflows:install")).status_code == 405
    assert client.post(reverse("system_workflows:list")).status_code == 405


def test_it_answers_404_for_an_unknown_system_workflow(cast, installed_in_both):
    client = client_for(cast["mona"])

    assert (
        client.get(reverse("system_workflows:detail", args=["launch_rockets"])).status_code == 404
    )
    assert client.post(save_url("launch_rockets"), form()).status_code == 404


def test_it_answers_404_where_the_environment_has_not_installed_it(cast, live, db):
    from tests import factories

    bare = factories.environment("bare")
    client = client_for(cast["mona"], environment=bare)

    assert (
        client.get(reverse("system_workflows:detail", args=["subscription_created"])).status_code
        == 404
    )
    assert client.post(save_url(), form()).status_code == 404


def test_it_changes_only_the_current_environment(cast, live, sandbox, installed_in_both):
    response = client_for(cast["mona"], environment=sandbox).post(save_url(), form())

    assert response.status_code == 302
    assert system_settings_get(environment=sandbox, system_key="subscription_created").pk
    assert system_settings_get(environment=live, system_key="subscription_created").pk is None


def test_it_installs_missing_system_workflows_for_a_manager(cast, db):
    from tests import factories

    bare = factories.environment("bare")
    response = client_for(cast["mona"], environment=bare).post(reverse("system_workflows:install"))

    assert response.status_code == 302
    assert Workflow.objects.filter(environment=bare, kind="system").count() == 7


def test_it_shows_errors_and_keeps_what_was_typed(cast, live, installed_in_both):
    response = client_for(cast["mona"]).post(
        save_url(), form(email_subject="{% if %}", team_recipients="stranger@example.org")
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "The template does not compile" in body
    assert "stranger@example.org" in body
    assert not SystemWorkflowSettings.objects.exists()


def test_it_previews_the_saved_wording(cast, live, installed_in_both):
    client = client_for(cast["mona"])
    client.post(save_url(), form(email_subject="Hello {{ customer.name }}"))

    response = client.get(reverse("system_workflows:detail", args=["subscription_created"]))

    assert "<strong>Hello Jenny Rosen</strong>" in response.content.decode()


def test_it_shows_a_system_run_with_its_skipped_step_in_the_inspector(
    cast, live, installed_in_both
):
    from django.test import TestCase

    from billing import services
    from tests import factories
    from workflows.engine.executor import run_execute
    from workflows.models import Run

    customer = factories.customer(live, default_payment_method="pm_card_visa")
    price = factories.price(live)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.subscription_create(customer=customer, items=[{"price": price, "quantity": 1}])
    run = Run.objects.get(workflow__system_key="subscription_created")
    run_execute(run_id=run.pk)

    response = client_for(cast["vic"]).get(reverse("runs:detail", args=[run.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Subscription Creation" in body
    assert "No team recipients are set for Subscription Creation" in body


def test_it_keeps_the_system_steps_out_of_the_builders_action_list(db):
    from workflows.builder.forms import action_groups

    offered = {action.key for _, actions in action_groups() for action in actions}

    assert "team.email" in offered
    assert not {key for key in offered if key.startswith("system.")}
