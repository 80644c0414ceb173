"""Which environment a back-office session is working in."""

from __future__ import annotations

from backoffice.sessions import ENVIRONMENT_SESSION_KEY
from billing.models import Environment

SESSION_KEY = ENVIRONMENT_SESSION_KEY


def live_environment() -> Environment:
    env, created = Environment.objects.get_or_create(
        slug="live", defaults={"name": "Live", "kind": Environment.Kind.LIVE}
    )
    if created:  # every environment runs the system workflows (workflows/system/catalogue.py)
        from workflows.system.catalogue import system_workflows_install

        system_workflows_install(environment=env)
    return env


def environment_for_session(session, environments: list[Environment] | None = None) -> Environment:
    """The session's environment (live when it chose none). With `environments` (all of them,
    already read for the header's switcher) it is picked from those, without a query."""
    slug = session.get(SESSION_KEY)
    if environments is not None:
        by_slug = {env.slug: env for env in environments}
        return by_slug.get(slug) or by_slug.get("live") or live_environment()
    if slug:
        env = Environment.objects.filter(slug=slug).first()
        if env is not None:
            return env
    return live_environment()


def switch_environment(session, env: Environment) -> None:
    session[SESSION_KEY] = env.slug


def sandbox_create(*, name: str, slug: str) -> Environment:
    """A new, empty sandbox. Its data starts empty: nothing is copied from live, but it gets
    the system workflows (workflows/system/catalogue.py), like every environment."""
    from workflows.system.catalogue import system_workflows_install

    env = Environment.objects.create(name=name, slug=slug, kind=Environment.Kind.SANDBOX)
    system_workflows_install(environment=env)
    return env
