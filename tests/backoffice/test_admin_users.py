from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.urls import reverse

PAGES = [
    "admin:auth_user_changelist",
    "admin:auth_user_add",
    "admin:auth_group_changelist",
    "admin:auth_group_add",
]


def test_it_lets_admins_manage_users_and_groups(client, alice, live):
    client.force_login(alice)
    for name in PAGES:
        assert client.get(reverse(name)).status_code == 200, name
    response = client.post(
        reverse("admin:auth_user_add"),
        {"username": "newbie", "password1": "a-long-password-1", "password2": "a-long-password-1"},
    )
    assert response.status_code == 302
    assert User.objects.filter(username="newbie").exists()


def test_it_refuses_users_and_groups_to_everyone_else(client, dave, mona, sam, vic, olga, live):
    for user in (dave, mona, sam, vic, olga):
        client.force_login(user)
        for name in PAGES:
            assert client.get(reverse(name)).status_code == 403, (user.username, name)
        change = reverse("admin:auth_user_change", args=[user.pk])
        assert client.get(change).status_code == 403
        assert (
            client.post(change, {"username": user.username, "is_superuser": "on"}).status_code
            == 403
        )
        user.refresh_from_db()
        assert not user.is_superuser


def test_it_hides_the_auth_section_below_admin(client, dave, alice, live):
    client.force_login(dave)
    apps = [app["app_label"] for app in client.get(reverse("admin:index")).context["app_list"]]
    assert "auth" not in apps
    client.force_login(alice)
    apps = [app["app_label"] for app in client.get(reverse("admin:index")).context["app_list"]]
    assert "auth" in apps


def test_it_lets_only_staff_log_in(client, live):
    User.objects.create_user("outsider", password="pw-outsider-1", is_staff=False)
    response = client.post(
        reverse("admin:login"), {"username": "outsider", "password": "pw-outsider-1"}
    )
    assert response.status_code == 200  # the login form again, with an error
    assert not response.wsgi_request.user.is_authenticated
    staff = User.objects.create_user("insider", password="pw-insider-1", is_staff=True)
    staff.groups.add(Group.objects.get(name="Viewer"))
    response = client.post(
        reverse("admin:login"), {"username": "insider", "password": "pw-insider-1"}
    )
    assert response.status_code == 302


def test_it_sends_anonymous_visitors_to_login(client, live):
    response = client.get(reverse("admin:auth_user_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
