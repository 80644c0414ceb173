"""The role hierarchy and the one function that answers "may this user do X".

Admin > Developer > Account Manager > Customer Support > Viewer; each role includes those below.
Roles are auth groups (created by a data migration); a superuser counts as Admin.
"""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    NONE = 0
    VIEWER = 1
    SUPPORT = 2
    ACCOUNT_MANAGER = 3
    DEVELOPER = 4
    ADMIN = 5


GROUP_NAMES: dict[Role, str] = {
    Role.VIEWER: "Viewer",
    Role.SUPPORT: "Customer Support",
    Role.ACCOUNT_MANAGER: "Account Manager",
    Role.DEVELOPER: "Developer",
    Role.ADMIN: "Admin",
}
ROLE_BY_GROUP = {name: role for role, name in GROUP_NAMES.items()}
# API keys carry a role too (ApiKey.role values).
ROLE_BY_KEY_ROLE = {
    "viewer": Role.VIEWER,
    "support": Role.SUPPORT,
    "account_manager": Role.ACCOUNT_MANAGER,
    "developer": Role.DEVELOPER,
    "admin": Role.ADMIN,
}

# Capability -> the least role that has it. docs/roles.md shows this table to people.
CAPABILITIES: dict[str, Role] = {
    "billing.view": Role.VIEWER,
    "runs.view": Role.VIEWER,
    "workflows.view": Role.VIEWER,
    # Support handles customers day to day: edit a customer, refund a charge.
    "billing.support": Role.SUPPORT,
    # Support writes down what a customer said about a run; a note changes nothing else.
    "runs.note": Role.SUPPORT,
    # Everything else that writes billing data.
    "billing.manage": Role.ACCOUNT_MANAGER,
    "workflows.manage": Role.ACCOUNT_MANAGER,
    "runs.manage": Role.ACCOUNT_MANAGER,
    # Decide an approval step (the approvers named by the step, at this role or above).
    "runs.approve": Role.ACCOUNT_MANAGER,
    "system_workflows.configure": Role.ACCOUNT_MANAGER,
    "environments.manage": Role.DEVELOPER,
    "api_keys.manage": Role.DEVELOPER,
    "webhooks.manage": Role.DEVELOPER,
    "custom_actions.configure": Role.DEVELOPER,
    "users.manage": Role.ADMIN,
}


# The attribute of a user that carries the level of their highest role group, when read.
ROLE_ANNOTATION = "billflow_role_level"


def role_of(user) -> Role:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Role.NONE
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_billflow_role", None)
    if cached is None:
        # The auth backend reads the level with the user (backoffice/auth_backend.py).
        level = getattr(user, ROLE_ANNOTATION, None)
        if level is not None:
            cached = Role(level)
        else:
            names = user.groups.values_list("name", flat=True)
            cached = max((ROLE_BY_GROUP.get(name, Role.NONE) for name in names), default=Role.NONE)
        user._billflow_role = cached
    return cached


def role_has(role: Role, capability: str) -> bool:
    try:
        needed = CAPABILITIES[capability]
    except KeyError:
        raise ValueError(f"Unknown capability {capability!r}") from None
    return role >= needed


def can(user, capability: str) -> bool:
    """May this user do `capability`? The single place role checks are decided."""
    return role_has(role_of(user), capability)


# --- Django model permissions per role group ---------------------------------------------------
# The groups carry model permissions so that Django's own tools (and people reading the groups in
# the admin) see the same table; admin checks still ask `can()` above. Each entry is
# (app_label, models, actions); a role's permissions include those of the roles below it.
# Changing this table needs a data migration that calls backoffice/0001's create_role_groups
# again, so existing databases get the new permissions too.
BILLING_OBJECT_MODELS = (
    "account",
    "customer",
    "product",
    "price",
    "subscription",
    "subscriptionitem",
    "invoice",
    "invoiceline",
    "paymentintent",
    "charge",
    "refund",
    "dispute",
    "checkoutsession",
)
WORKFLOW_MODELS = ("workflow", "workflowversion", "step", "branchpath", "condition")
RUN_MODELS = ("run", "steprun")

PermissionSpec = tuple[str, tuple[str, ...], tuple[str, ...]]

ROLE_PERMISSIONS: dict[Role, tuple[PermissionSpec, ...]] = {
    Role.VIEWER: (
        ("billing", BILLING_OBJECT_MODELS + ("event",), ("view",)),
        ("workflows", WORKFLOW_MODELS + RUN_MODELS, ("view",)),
    ),
    Role.SUPPORT: (
        ("billing", ("customer",), ("change",)),
        ("billing", ("refund",), ("add",)),
    ),
    Role.ACCOUNT_MANAGER: (
        ("billing", BILLING_OBJECT_MODELS, ("add", "change")),
        ("workflows", WORKFLOW_MODELS, ("add", "change", "delete")),
        ("workflows", RUN_MODELS, ("change",)),
    ),
    Role.DEVELOPER: (
        ("billing", ("apikey",), ("view", "add", "change", "delete")),
        ("billing", ("environment",), ("view", "add", "change")),
    ),
    Role.ADMIN: (("auth", ("user", "group"), ("view", "add", "change", "delete")),),
}


def role_permission_codenames(role: Role) -> set[tuple[str, str]]:
    """(app_label, codename) pairs the group of `role` holds, its own and those of lower roles."""
    pairs: set[tuple[str, str]] = set()
    for lower, specs in ROLE_PERMISSIONS.items():
        if lower > role:
            continue
        for app_label, models, actions in specs:
            pairs.update((app_label, f"{action}_{model}") for model in models for action in actions)
    return pairs
