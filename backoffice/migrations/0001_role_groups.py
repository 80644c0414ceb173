"""The five role groups with the model permissions of backoffice.roles.ROLE_PERMISSIONS."""

from __future__ import annotations

from django.contrib.auth.management import create_permissions
from django.db import migrations

from backoffice.roles import GROUP_NAMES, role_permission_codenames


def create_role_groups(apps, schema_editor) -> None:
    # Permissions are normally made after all migrations (post_migrate); make them now so the
    # groups can hold them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, name in GROUP_NAMES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = role_permission_codenames(role)
        perms = [
            perm
            for perm in Permission.objects.select_related("content_type")
            if (perm.content_type.app_label, perm.codename) in wanted
        ]
        missing = wanted - {(p.content_type.app_label, p.codename) for p in perms}
        # A model added to the table later has no permissions at this point in history; the
        # migration that adds it re-runs this function. Any other gap is a typo in the table.
        typos = {
            (app_label, codename)
            for app_label, codename in missing
            if _model_exists(apps, app_label, codename.split("_", 1)[1])
        }
        if typos:
            raise RuntimeError(f"Role {name}: unknown permissions {sorted(typos)}")
        group.permissions.set(perms)


def _model_exists(apps, app_label: str, model_name: str) -> bool:
    try:
        apps.get_model(app_label, model_name)
    except LookupError:
        return False
    return True


def remove_role_groups(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=GROUP_NAMES.values()).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("billing", "0001_initial"),
        ("workflows", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
