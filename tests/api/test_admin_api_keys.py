from __future__ import annotations

import hashlib

from django.urls import reverse

from billing.api_keys import api_key_authenticate, api_key_create
from billing.models import ApiKey

CHANGELIST = "admin:billing_apikey_changelist"
ADD = "admin:billing_apikey_add"


def test_it_shows_the_new_key_once_and_stores_only_its_hash(client, dave, live):
    client.force_login(dave)
    response = client.post(reverse(ADD), {"name": "CI", "role": "developer"})
    assert response.status_code == 200
    raw = response.context["raw_key"]
    assert raw.startswith("sk_live_")
    assert raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(name="CI")
    assert key.environment == live
    assert key.created_by == dave
    assert key.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {key.hashed_key, key.prefix}
    assert api_key_authenticate(raw) == key
    # Never again: neither the list nor the key's page shows it.
    listing = client.get(reverse(CHANGELIST)).content.decode()
    detail = client.get(reverse("admin:billing_apikey_change", args=[key.pk])).content.decode()
    assert key.prefix in listing
    assert raw not in listing and raw not in detail


def test_it_creates_the_key_in_the_current_environment(client, dave, live, sandbox):
    client.force_login(dave)
    client.post("/environment/switch/", {"environment": "sandbox"})
    response = client.post(reverse(ADD), {"name": "Sandbox CI", "role": "viewer"})
    assert response.context["raw_key"].startswith("sk_sandbox_")
    assert ApiKey.objects.get(name="Sandbox CI").environment == sandbox


def test_it_offers_no_role_above_the_creators_own(client, dave, live):
    client.force_login(dave)
    form = client.get(reverse(ADD)).context["adminform"].form
    assert "admin" not in {value for value, _ in form.fields["role"].choices}
    response = client.post(reverse(ADD), {"name": "Too much", "role": "admin"})
    assert response.status_code == 200
    assert "role" in response.context["adminform"].form.errors
    assert not ApiKey.objects.filter(name="Too much").exists()


def test_it_lists_prefix_role_environment_and_last_used(client, alice, live, sandbox):
    mine, _ = api_key_create(environment=live, name="Live key", role="viewer")
    other, _ = api_key_create(environment=sandbox, name="Sandbox key")
    client.force_login(alice)
    response = client.get(reverse(CHANGELIST))
    page = response.content.decode()
    assert mine.prefix in page and "Viewer (read only)" in page
    assert "Last used" in page
    assert list(response.context["cl"].result_list) == [mine]
    assert other.prefix not in page


def test_it_revokes_keys_with_the_admin_action(client, dave, live):
    key, raw = api_key_create(environment=live, name="Old")
    client.force_login(dave)
    response = client.post(
        reverse(CHANGELIST), {"action": "revoke_keys", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_authenticate(raw) is None


def test_it_keeps_api_keys_from_account_managers_and_below(client, mona, sam, vic, olga, live):
    key, _ = api_key_create(environment=live, name="Secret")
    for user in (mona, sam, vic, olga):
        client.force_login(user)
        assert client.get(reverse(CHANGELIST)).status_code == 403
        assert client.get(reverse(ADD)).status_code == 403
        assert client.post(reverse(ADD), {"name": "x", "role": "viewer"}).status_code == 403
        change = reverse("admin:billing_apikey_change", args=[key.pk])
        assert client.get(change).status_code == 403
    assert ApiKey.objects.count() == 1


def test_it_sends_anonymous_visitors_to_login(client, live):
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_answers_404_for_another_environments_key(client, dave, live, sandbox):
    key, _ = api_key_create(environment=sandbox, name="Sandbox only")
    client.force_login(dave)
    assert client.get(reverse("admin:billing_apikey_change", args=[key.pk])).status_code == 404


def test_it_never_edits_or_deletes_a_key(client, alice, live):
    key, _ = api_key_create(environment=live, name="Fixed")
    client.force_login(alice)
    url = reverse("admin:billing_apikey_change", args=[key.pk])
    client.post(url, {"name": "Renamed", "role": "admin"})
    key.refresh_from_db()
    assert (key.name, key.role) == ("Fixed", "developer")
    assert client.post(reverse("admin:billing_apikey_delete", args=[key.pk])).status_code == 403
