"""Test data builders. Billing objects are made through the services, like everywhere else."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from billing.models import Environment


def environment(slug: str) -> Environment:
    kind = Environment.Kind.LIVE if slug == "live" else Environment.Kind.SANDBOX
    env, _ = Environment.objects.get_or_create(
        slug=slug, defaults={"name": slug.title(), "kind": kind}
    )
    return env


def user(username: str, role: str | None, password: str = "password") -> User:
    """A staff user in the group named `role` (None: no role)."""
    u = User.objects.create_user(
        username=username, email=f"{username}@example.com", password=password, is_staff=True
    )
    if role:
        group, _ = Group.objects.get_or_create(name=role)
        u.groups.add(group)
    return u
