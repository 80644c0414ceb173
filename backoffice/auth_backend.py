"""The back office's authentication backend: Django's ModelBackend, with the user's role read
with the user (a request spends no query of its own on the user's groups), and the user's
permissions (asked for by the admin sidebar on every full page) read in one query, not two."""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q

from backoffice.roles import GROUP_NAMES, ROLE_ANNOTATION


@functools.cache
def _user_with_role_sql(vendor: str) -> str:
    """The user's row and the level of their highest role group (0 without one).

    Raw SQL, built once from the models' metadata: this runs on every request, and compiling
    the same query through the ORM (a subquery of CASE WHENs) costs more than running it."""
    user_model = get_user_model()
    membership = user_model.groups.through._meta
    group_model = user_model.groups.field.related_model
    q = connection.ops.quote_name
    user_table, group_table = q(user_model._meta.db_table), q(group_model._meta.db_table)
    user_pk, group_pk = q(user_model._meta.pk.column), q(group_model._meta.pk.column)
    user_id = q(membership.get_field(user_model._meta.model_name).column)
    group_id = q(membership.get_field(group_model._meta.model_name).column)
    cases = " ".join(f"WHEN %s THEN {int(role)}" for role in GROUP_NAMES)
    return (
        f"SELECT {user_table}.*, (SELECT COALESCE(MAX(CASE g.{q('name')} {cases} ELSE 0 END), 0)"
        f" FROM {group_table} g JOIN {q(membership.db_table)} m ON m.{group_id} = g.{group_pk}"
        f" WHERE m.{user_id} = {user_table}.{user_pk}) AS {ROLE_ANNOTATION}"
        f" FROM {user_table} WHERE {user_table}.{user_pk} = %s"
    )


class RoleModelBackend(ModelBackend):
    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            pk = user_model._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        sql = _user_with_role_sql(connection.vendor)
        params = (*GROUP_NAMES.values(), pk)
        user = next(iter(user_model._default_manager.raw(sql, params)), None)
        return user if user is not None and self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None):
        """ModelBackend's answer (the user's own permissions and their groups'), one query."""
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            perms = Permission.objects.all()
            if not user_obj.is_superuser:
                perms = perms.filter(Q(user=user_obj) | Q(group__user=user_obj))
            pairs = perms.values_list("content_type__app_label", "codename").distinct()
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in pairs}
        return user_obj._perm_cache
