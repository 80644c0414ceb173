from __future__ import annotations

from django.contrib.auth.models import Group

from backoffice.roles import (
    CAPABILITIES,
    GROUP_NAMES,
    Role,
    can,
    role_of,
    role_permission_codenames,
)


def _codenames(group: Group) -> set[tuple[str, str]]:
    return {
        (p.content_type.app_label, p.codename)
        for p in group.permissions.select_related("content_type")
    }


def test_it_creates_the_five_role_groups(db):
    assert set(Group.objects.values_list("name", flat=True)) >= set(GROUP_NAMES.values())


def test_it_gives_each_group_the_permissions_of_its_role_table(db):
    for role, name in GROUP_NAMES.items():
        assert _codenames(Group.objects.get(name=name)) == role_permission_codenames(role)


def test_it_gives_viewers_only_view_permissions(db):
    perms = _codenames(Group.objects.get(name="Viewer"))
    assert ("billing", "view_customer") in perms
    assert ("billing", "view_event") in perms
    assert ("workflows", "view_run") in perms
    assert all(codename.startswith("view_") for _, codename in perms)


def test_it_lets_support_change_customers_and_add_refunds_only(db):
    perms = _codenames(Group.objects.get(name="Customer Support"))
    writes = {pair for pair in perms if not pair[1].startswith("view_")}
    assert writes == {("billing", "change_customer"), ("billing", "add_refund")}


def test_it_keeps_api_keys_and_users_to_developers_and_admins(db):
    manager = _codenames(Group.objects.get(name="Account Manager"))
    developer = _codenames(Group.objects.get(name="Developer"))
    admin = _codenames(Group.objects.get(name="Admin"))
    assert ("billing", "add_apikey") not in manager
    assert ("billing", "add_apikey") in developer
    assert ("billing", "add_environment") in developer
    assert ("auth", "change_user") not in developer
    assert ("auth", "change_user") in admin


def test_it_orders_roles_so_each_includes_those_below(alice, dave, mona, sam, vic, olga):
    assert [role_of(u) for u in (alice, dave, mona, sam, vic, olga)] == [
        Role.ADMIN,
        Role.DEVELOPER,
        Role.ACCOUNT_MANAGER,
        Role.SUPPORT,
        Role.VIEWER,
        Role.NONE,
    ]
    for capability, needed in CAPABILITIES.items():
        for user in (alice, dave, mona, sam, vic, olga):
            assert can(user, capability) == (role_of(user) >= needed)


def test_it_answers_the_documented_examples(alice, dave, mona, sam, vic, olga):
    assert can(vic, "billing.view") and not can(vic, "billing.support")
    assert can(sam, "billing.support") and not can(sam, "billing.manage")
    assert can(mona, "workflows.manage") and not can(mona, "api_keys.manage")
    assert can(dave, "api_keys.manage") and not can(dave, "users.manage")
    assert can(alice, "users.manage")
    assert not can(olga, "billing.view")


def test_it_treats_a_superuser_as_admin(db):
    from django.contrib.auth.models import User

    root = User.objects.create_superuser("root", "root@example.com", "pw")
    assert role_of(root) == Role.ADMIN


def test_it_gives_inactive_users_no_role(dave):
    dave.is_active = False
    dave.save()
    assert not can(dave, "billing.view")


def test_the_auth_backend_reads_the_role_with_the_user(
    alice, dave, mona, sam, vic, olga, django_assert_num_queries
):
    from backoffice.auth_backend import RoleModelBackend

    backend = RoleModelBackend()
    for user in (alice, dave, mona, sam, vic, olga):
        expected = role_of(user)  # from the user's groups
        loaded = backend.get_user(user.pk)
        with django_assert_num_queries(0):
            assert role_of(loaded) == expected


def test_the_auth_backend_takes_the_highest_of_several_groups(sam):
    from backoffice.auth_backend import RoleModelBackend

    sam.groups.add(Group.objects.get(name="Developer"), Group.objects.get(name="Viewer"))
    assert role_of(RoleModelBackend().get_user(sam.pk)) == Role.DEVELOPER


def test_the_auth_backend_refuses_inactive_users(dave):
    from backoffice.auth_backend import RoleModelBackend

    dave.is_active = False
    dave.save()
    assert RoleModelBackend().get_user(dave.pk) is None


def test_the_auth_backend_finds_no_user_for_an_unknown_or_malformed_id(db):
    from backoffice.auth_backend import RoleModelBackend

    assert RoleModelBackend().get_user(999999) is None
    assert RoleModelBackend().get_user("not-a-number") is None


def test_the_auth_backend_reads_all_permissions_in_one_query(
    alice, mona, olga, django_assert_num_queries
):
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Permission, User

    from backoffice.auth_backend import RoleModelBackend

    olga.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    backend = RoleModelBackend()
    for user in (alice, mona, olga, root):
        expected = ModelBackend().get_all_permissions(User.objects.get(pk=user.pk))
        loaded = backend.get_user(user.pk)
        with django_assert_num_queries(1):
            assert backend.get_all_permissions(loaded) == expected
            assert backend.get_all_permissions(loaded) == expected  # cached on the user
    olga = backend.get_user(olga.pk)
    assert backend.get_all_permissions(olga) == {"django_q.view_schedule"}
    assert backend.has_module_perms(olga, "django_q")
    assert not backend.has_module_perms(backend.get_user(mona.pk), "django_q")
