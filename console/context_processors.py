from __future__ import annotations

from backoffice.roles import GROUP_NAMES, role_of


def environment(request) -> dict:
    """The environment banner and switcher in the admin header, and the user's role."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    if not hasattr(request, "environment"):
        return {}
    from billing.models import Environment

    role = role_of(request.user)
    # Read once by the middleware; read again only if the session's environment was just
    # created (the first visit makes "live").
    environments = getattr(request, "environments", None)
    if environments is None or request.environment not in environments:
        environments = Environment.objects.all()
    return {
        "current_environment": request.environment,
        "environments": environments,
        "current_role": role,
        "current_role_name": GROUP_NAMES.get(role, ""),
    }
