from __future__ import annotations

from django.contrib.admin.utils import quote
from django.urls import reverse

from billing.models import Environment
from console.environments import SESSION_KEY

SWITCH = "/environment/switch/"


def test_it_starts_a_session_in_live(client, vic, live, sandbox):
    client.force_login(vic)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert response.context["current_environment"] == live
    assert b"bf-environment-live" in response.content


def test_it_switches_to_a_sandbox_and_shows_the_sandbox_banner(client, vic, live, sandbox):
    client.force_login(vic)
    response = client.post(SWITCH, {"environment": "sandbox", "next": "/admin/billing/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/billing/"
    assert client.session[SESSION_KEY] == "sandbox"
    page = client.get(reverse("admin:index"))
    assert page.context["current_environment"] == sandbox
    assert b"bf-environment-sandbox" in page.content
    assert b"Sandbox environment" in page.content


def test_it_lists_every_environment_in_the_switcher(client, vic, live, sandbox):
    client.force_login(vic)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'action="/environment/switch/"' in page
    assert '<option value="live" selected>' in page
    assert '<option value="sandbox">' in page


def test_it_leaves_an_object_page_for_its_list_when_switching(client, vic, live, sandbox):
    client.force_login(vic)
    next_url = reverse("admin:billing_customer_change", args=[quote("cus_x")])
    response = client.post(SWITCH, {"environment": "sandbox", "next": next_url})
    assert response["Location"] == reverse("admin:billing_customer_changelist")


def test_it_refuses_an_offsite_next(client, vic, live, sandbox):
    client.force_login(vic)
    response = client.post(SWITCH, {"environment": "sandbox", "next": "https://evil.example/"})
    assert response["Location"] == "/admin/"


def test_it_answers_404_for_an_unknown_environment(client, vic, live):
    client.force_login(vic)
    assert client.post(SWITCH, {"environment": "nope"}).status_code == 404
    assert client.session.get(SESSION_KEY) is None


def test_it_only_switches_by_post(client, vic, live, sandbox):
    client.force_login(vic)
    assert client.get(SWITCH, {"environment": "sandbox"}).status_code == 405


def test_it_sends_anonymous_switchers_to_login(client, live, sandbox):
    response = client.post(SWITCH, {"environment": "sandbox"})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_lets_a_developer_create_a_sandbox(client, dave, live):
    client.force_login(dave)
    response = client.post(
        reverse("admin:billing_environment_add"), {"name": "QA team", "slug": "qa"}
    )
    assert response.status_code == 302
    env = Environment.objects.get(slug="qa")
    assert env.kind == Environment.Kind.SANDBOX
    assert env.name == "QA team"


def test_it_makes_a_sandbox_even_when_kind_live_is_posted(client, alice, live):
    client.force_login(alice)
    client.post(
        reverse("admin:billing_environment_add"), {"name": "X", "slug": "x", "kind": "live"}
    )
    assert Environment.objects.get(slug="x").kind == Environment.Kind.SANDBOX


def test_it_refuses_sandbox_creation_below_developer(client, mona, sam, vic, live):
    for user in (mona, sam, vic):
        client.force_login(user)
        assert client.get(reverse("admin:billing_environment_add")).status_code == 403
        response = client.post(
            reverse("admin:billing_environment_add"), {"name": "No", "slug": "no"}
        )
        assert response.status_code == 403
    assert not Environment.objects.filter(slug="no").exists()


def test_it_shows_the_environment_list_to_every_role(client, vic, olga, live, sandbox):
    client.force_login(vic)
    response = client.get(reverse("admin:billing_environment_changelist"))
    assert response.status_code == 200
    assert b"Sandbox" in response.content
    client.force_login(olga)
    assert client.get(reverse("admin:billing_environment_changelist")).status_code == 403


def test_it_keeps_slug_and_kind_read_only_when_renaming(client, dave, sandbox):
    client.force_login(dave)
    url = reverse("admin:billing_environment_change", args=[sandbox.pk])
    response = client.post(url, {"name": "Renamed", "slug": "changed"})
    assert response.status_code == 302
    sandbox.refresh_from_db()
    assert (sandbox.name, sandbox.slug) == ("Renamed", "sandbox")


def test_it_leaves_any_other_single_object_page_for_the_admin_index(client, vic, live, sandbox):
    client.force_login(vic)
    next_url = reverse("runs:detail", args=[5])
    response = client.post(SWITCH, {"environment": "sandbox", "next": next_url})
    assert response["Location"] == reverse("admin:index")


def test_it_stays_on_a_list_page_when_switching(client, vic, live, sandbox):
    client.force_login(vic)
    next_url = reverse("admin:billing_invoice_changelist") + "?status__exact=open"
    response = client.post(SWITCH, {"environment": "sandbox", "next": next_url})
    assert response["Location"] == next_url


def test_a_full_page_reads_the_environments_once(client, mona, live, sandbox):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(mona)
    client.post("/environment/switch/", {"environment": sandbox.slug})
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/admin/workflows/").content.decode()
    reads = [q["sql"] for q in queries if 'FROM "billing_environment"' in q["sql"]]
    assert len(reads) == 1
    assert f'value="{sandbox.slug}" selected' in body  # the session's environment
    assert f'value="{live.slug}"' in body  # and the others, in the switcher
