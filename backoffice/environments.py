"""Which environment a back-office session is working in."""

from __future__ import annotations

from billing.models import Environment

SESSION_KEY = "billflow_environment"


def live_environment() -> Environment:
    env, _ = Environment.objects.get_or_create(
        slug="live", defaults={"name": "Live", "kind": Environment.Kind.LIVE}
    )
    return env


def environment_for_session(session) -> Environment:
    slug = session.get(SESSION_KEY)
    if slug:
        env = Environment.objects.filter(slug=slug).first()
        if env is not None:
            return env
    return live_environment()


def switch_environment(session, env: Environment) -> None:
    session[SESSION_KEY] = env.slug
