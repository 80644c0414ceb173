from __future__ import annotations

from backoffice.roles import role_of


def environment(request) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    from billing.models import Environment

    return {
        "current_environment": request.environment,
        "environments": Environment.objects.all(),
        "current_role": role_of(request.user),
    }
