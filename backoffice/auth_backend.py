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

# Who the rows are: the user with this primary key, or the active users whose username is
# the name or whose e-mail address is the name in any case (`team.email` recipients).
BY_PK = "{user}.{pk} = %s"
ACTIVE_BY_NAME = "{user}.is_active AND ({user}.username = %s OR LOWER({user}.email) = LOWER(%s))"


@functools.cache
def _user_with_role_sql(vendor: str, where: str = BY_PK) -> str:
    """Users' rows and the level of each one's highest role group (0 without one).

    Raw SQL, built once from the models' metadata: this runs on every request and for every
    e-mail step, and compiling the same query through the ORM (a subquery of CASE WHENs)
    costs more than running it."""
    user_model = get_user_model()
    membership = user_model.groups.through._meta
    group_model = user_model.groups.field.related_model
    q = connection.ops.quote_name
    user_table, group_table = q(user_model._meta.db_table), q(group_model._meta.db_table)
    user_pk, group_pk = q(user_model._meta.pk.column), q(group_model._meta.pk.column)
    user_id = q(membership.get_field(user_model._meta.model_name).column)
    group_id = q(membership.get_field(group_model._meta.model_name).column)
    cases = " ".join(f"WHEN %s THEN {int(role)}" for role in GROUP_NAMES)
    # The columns by name, not `*`: a prepared statement must keep its result's shape when a
    # migration adds a column while this process runs.
    columns = ", ".join(f"{user_table}.{q(f.column)}" for f in user_model._meta.concrete_fields)
    return (
        f"SELECT {columns}, (SELECT COALESCE(MAX(CASE g.{q('name')} {cases} ELSE 0 END), 0)"
        f" FROM {group_table} g JOIN {q(membership.db_table)} m ON m.{group_id} = g.{group_pk}"
        f" WHERE m.{user_id} = {user_table}.{user_pk}) AS {ROLE_ANNOTATION}"
        f" FROM {user_table} WHERE {where.format(user=user_table, pk=user_pk)}"
        f" ORDER BY {user_table}.{user_pk}"
    )


def active_users_named(name: str) -> list:
    """Active users named `name` (username, or e-mail address in any case), each with its
    role already read (`backoffice.roles.role_of` asks nothing more)."""
    sql = _user_with_role_sql(connection.vendor, ACTIVE_BY_NAME)
    return list(get_user_model()._default_manager.raw(sql, (*GROUP_NAMES.values(), name, name)))


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
