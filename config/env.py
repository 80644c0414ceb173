"""Environment variables, read once and checked: a bad value stops start-up naming the variable."""

from __future__ import annotations

import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.str(name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(
            f"Environment variable {name} must be one of {', '.join(choices)}; got {value!r}."
        )
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"Environment variable {name} must be true or false; got {raw!r}.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = env.str(name, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"Environment variable {name} must be a whole number; got {raw!r}."
        ) from None
    if value < minimum:
        raise ImproperlyConfigured(f"Environment variable {name} must be at least {minimum}.")
    return value


def database_config(default_sqlite: Path) -> dict:
    url = env.str("DATABASE_URL", default="").strip()
    if not url:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    else:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in environ.Env.DB_SCHEMES:
            raise ImproperlyConfigured(
                "Environment variable DATABASE_URL must start with postgres:// or sqlite:///; "
                f"got scheme {scheme!r}."
            )
        try:
            config = environ.Env.db_url_config(url)
        except Exception as exc:  # django-environ raises several types for a bad URL
            raise ImproperlyConfigured(
                f"Environment variable DATABASE_URL is invalid: {exc}"
            ) from exc
    # Keep connections between requests and tasks: django-q closes "old" connections before
    # every task, and with the default of 0 each run paid for a new PostgreSQL backend.
    config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", default=60, minimum=0)
    # Web processes check a kept connection before each request. Worker processes (qcluster)
    # skip the check, a round trip per task: their first statement of a task replaces a
    # connection found dead instead (workflows/engine/store/reconnect.py).
    worker_process = sys.argv[1:2] == ["qcluster"]
    config["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_HEALTH_CHECKS", default=not worker_process)
    prepared_statements = env_bool("DATABASE_PREPARED_STATEMENTS", default=True)
    if config["ENGINE"] == "django.db.backends.postgresql" and prepared_statements:
        # Parameters travel apart from the SQL, and a statement run a few times on a connection
        # is prepared once: PostgreSQL stops parsing and planning the engine's statements for
        # every step (measured: half of its CPU per run). Off behind a pooler that cannot
        # keep prepared statements (PgBouncer in transaction mode before 1.21).
        config.setdefault("OPTIONS", {})
        config["OPTIONS"]["server_side_binding"] = True
        config["OPTIONS"]["prepare_threshold"] = 5
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Two processes (web and worker) write to one file: wait on locks, take the write lock
        # up front, and use WAL so readers do not block the writer.
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


CONSOLE_EMAIL = {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}


def email_config(*, debug: bool) -> dict:
    url = env.str("EMAIL_URL", default="").strip()
    if not url:
        if not debug:
            # Without this, production "sends" every e-mail to the web or worker's log and
            # nobody notices until a customer asks where their receipt went.
            raise ImproperlyConfigured(
                "Environment variable EMAIL_URL must be set when DEBUG is off (e.g. "
                "smtp+tls://user:password@mail-host:587); set EMAIL_URL=console:// to print "
                "e-mails to the log on purpose."
            )
        return dict(CONSOLE_EMAIL)
    if url.split("://", 1)[0] == "console":  # the explicit choice named in the error above
        return dict(CONSOLE_EMAIL)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in environ.Env.EMAIL_SCHEMES:
        raise ImproperlyConfigured(
            "Environment variable EMAIL_URL must use one of "
            f"{', '.join(environ.Env.EMAIL_SCHEMES)}; got scheme {scheme!r}."
        )
    try:
        return environ.Env.email_url_config(url)
    except Exception as exc:
        raise ImproperlyConfigured(f"Environment variable EMAIL_URL is invalid: {exc}") from exc
