"""Settings shared by every deployment; production differs only by environment variables."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from backoffice.logs import logging_config
from config.env import (
    BASE_DIR,
    database_config,
    email_config,
    env,
    env_bool,
    env_choice,
    env_int,
)

DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Environment variable SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    # Listed so /api/v1/docs serves Swagger UI from our own static files (the policy below
    # allows no CDN); without it django-ninja renders a page that loads it from a CDN.
    "ninja",
    "django_q",
    # The admin login lockout (docs/security.md); its pages are registered by backoffice/admin.py.
    "axes",
    "backoffice",
    "billing",
    "workflows",
    "slack_actions",
    # Webhook endpoints: events delivered to other systems, signed as Stripe signs them.
    "webhooks",
    # Who did what: change history written by database triggers (docs/history.md).
    "pgtrigger",
    "pghistory",
    "history",
    # The top floor: the session's environment, its switcher and admin page, demo data
    # (docs/architecture.md, "Layers").
    "console",
]

# History triggers are installed after every migrate, not by the tracked apps' migrations
# (history/models.py declares them for billing, workflows and auth models; docs/history.md).
PGTRIGGER_MIGRATIONS = False
PGTRIGGER_INSTALL_ON_MIGRATE = True

MIDDLEWARE = [
    # Outermost: every response is counted and carries Request-Id, static files included.
    "backoffice.metrics.RequestMetricsMiddleware",
    "backoffice.request_ids.RequestIdMiddleware",
    # The billing events a request records carry its Request-Id.
    "console.middleware.EventRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files are served by the app itself (docs/operations.md), before sessions and views.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "backoffice.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The request's person or API key, and its id, become the actor of the changes it makes.
    "history.middleware.HistoryContextMiddleware",
    # Turns a login refused by django-axes into the 429 page (after the view ran).
    "axes.middleware.AxesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.middleware.CurrentEnvironmentMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

_TEMPLATE_LOADERS = [
    "django.template.loaders.filesystem.Loader",
    "django.template.loaders.app_directories.Loader",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.environment",
            ],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    # Explicit loaders turn off Django's automatic template cache: outside
                    # DEBUG, compiled templates are cached (the partials loader wraps it).
                    _TEMPLATE_LOADERS
                    if DEBUG
                    else [("django.template.loaders.cached.Loader", _TEMPLATE_LOADERS)],
                )
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]
# django-template-partials is registered by hand above (loader + builtins), as Django 5.2 needs.
INSTALLED_APPS.append("template_partials")

DATABASES = {"default": database_config(BASE_DIR / "var" / "billflow.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# First the login lockout (django-axes: refuses a locked user name or address before any
# password is checked), then ModelBackend with the user's role read in the same query
# (backoffice/auth_backend.py).
AUTHENTICATION_BACKENDS = [
    "backoffice.security.LoginLockoutBackend",
    "backoffice.auth_backend.RoleModelBackend",
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# `collectstatic` copies every static file here; whitenoise serves them from here.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
# Outside DEBUG: hashed names (cached for a year by browsers) and pre-compressed copies, made by
# `collectstatic --no-input` at deploy. With DEBUG (development, the test suite) the plain
# storage and whitenoise's finders serve the source files, no collectstatic needed.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

for _key, _value in email_config(debug=DEBUG).items():
    globals()[_key] = _value
# An SMTP server that accepts and then hangs (or trickles) must not hold a step past its run's
# lease: this bounds the whole conversation, not each read (workflows/actions/team_email.py).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT_SECONDS", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Billflow <billflow@localhost>")

# --- Queue (django-q2). The database is the source of truth; the queue only says "look at N".
QUEUE_BROKER = env_choice("QUEUE_BROKER", ("orm", "redis"), default="orm")
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
Q_CLUSTER: dict = {
    "name": env.str("Q_CLUSTER_NAME", default="billflow"),
    "workers": env_int("Q_WORKERS", default=2, minimum=1),
    "timeout": 300,
    # Visibility timeout: must exceed timeout + a margin, or a slow task runs twice at once.
    "retry": 330,
    "max_attempts": 0,
    "queue_limit": 4,
    # Under a backlog one claim takes up to 4 tasks (measured: 9-10% more runs/s on 2 cores);
    # they wait in the cluster's queue of `queue_limit`, well inside `retry`.
    "bulk": env_int("Q_BULK", default=4, minimum=1),
    "save_limit": 0,  # save_limit > 0 costs 4-5x throughput; results are pruned by a schedule.
    "poll": env.float("Q_POLL", default=0.05),
    # A worker process is replaced after this many tasks (django-q's guard against leaks). Its
    # default of 500 replaced each worker every few seconds under load, with its connection,
    # prepared statements and caches.
    "recycle": env_int("Q_RECYCLE", default=5000, minimum=1),
    "catch_up": False,
    "ack_failures": True,
    "label": "Tasks",
}
if QUEUE_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
    # The same broker, claiming with one statement (FOR UPDATE SKIP LOCKED) on PostgreSQL.
    Q_CLUSTER["broker_class"] = "workflows.engine.store.queue.SkipLockedORM"
else:
    Q_CLUSTER["redis"] = REDIS_URL
# Each cluster's heartbeat (django-q's Stat, every 0.5 s, 3 s TTL) goes to this cache with the ORM
# broker (Redis keeps it itself). It must be shared by every host, hence the database; its table
# is made by a migration (backoffice 0003; docs/operations.md).
Q_CLUSTER["cache"] = "shared"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "billflow_cache",
    },
}

# --- Billflow settings (docs/operations.md lists them).
BILLFLOW = {
    "MAX_STEPS_PER_WORKFLOW": env_int("BILLFLOW_MAX_STEPS", default=12, minimum=1),
    "MAX_ACTIVE_WORKFLOWS": env_int("BILLFLOW_MAX_ACTIVE_WORKFLOWS", default=6, minimum=1),
    "MAX_WORKFLOWS": env_int("BILLFLOW_MAX_WORKFLOWS", default=20, minimum=1),
    "STEP_MAX_ATTEMPTS": env_int("BILLFLOW_STEP_MAX_ATTEMPTS", default=5, minimum=1),
    "RETRY_BASE_SECONDS": env.float("BILLFLOW_RETRY_BASE_SECONDS", default=1.0),
    "RETRY_MAX_SECONDS": env.float("BILLFLOW_RETRY_MAX_SECONDS", default=300.0),
    # An outage (mail server or HTTP target down) is retried over at least this long in all.
    "OUTAGE_RETRY_SECONDS": env.float("BILLFLOW_OUTAGE_RETRY_SECONDS", default=60.0),
    "LEASE_SECONDS": env_int("BILLFLOW_LEASE_SECONDS", default=60, minimum=5),
    # A failed run of a serialized workflow holds its key this long unless the trigger says.
    "SERIALIZE_MAX_WAIT_MINUTES": env.float("BILLFLOW_SERIALIZE_MAX_WAIT_MINUTES", default=60.0),
    "FOREACH_MAX_ITEMS": env_int("BILLFLOW_FOREACH_MAX_ITEMS", default=1000, minimum=1),
    # All loop iterations of one run, nested loops included (each loop has its own cap too).
    "RUN_MAX_ITERATIONS": env_int("BILLFLOW_RUN_MAX_ITERATIONS", default=10000, minimum=1),
    "HTTP_ALLOWED_HOSTS": env.list("BILLFLOW_HTTP_ALLOWED_HOSTS", default=[]),
    "HTTP_SIGNING_SECRET": env.str("BILLFLOW_HTTP_SIGNING_SECRET", default=SECRET_KEY),
    "HTTP_TIMEOUT_SECONDS": env.float("BILLFLOW_HTTP_TIMEOUT_SECONDS", default=10.0),
    # Retention and liveness (docs/operations.md).
    "RUN_RETENTION_DAYS": env_int("BILLFLOW_RUN_RETENTION_DAYS", default=90, minimum=1),
    "EVENT_RETENTION_DAYS": env_int("BILLFLOW_EVENT_RETENTION_DAYS", default=0, minimum=0),
    # How long one pass of the every-minute prune may work before leaving the rest to the next.
    "RETENTION_BUDGET_SECONDS": env.float("BILLFLOW_RETENTION_BUDGET_SECONDS", default=30.0),
    # /health/ turns "degraded" when the oldest prunable run is this far past the window.
    "HEALTH_RETENTION_LAG_SECONDS": env_int(
        "BILLFLOW_HEALTH_RETENTION_LAG_SECONDS", default=3 * 3600, minimum=60
    ),
    "HEALTH_MAX_PENDING_SECONDS": env_int("BILLFLOW_HEALTH_MAX_PENDING_SECONDS", default=300),
    "HEALTH_STUCK_GRACE_SECONDS": env_int("BILLFLOW_HEALTH_STUCK_GRACE_SECONDS", default=120),
    "HEALTH_EXPECTED_CLUSTERS": env_int("BILLFLOW_HEALTH_EXPECTED_CLUSTERS", default=1),
    # Webhook endpoints (webhooks/, docs/api.md): a delivery without a 2xx answer is retried
    # with exponential backoff and jitter (base doubling up to the max) for at least the window
    # (Stripe's three days); a worker holds a delivery for the lease, past its send timeout.
    "WEBHOOK_TIMEOUT_SECONDS": env.float("BILLFLOW_WEBHOOK_TIMEOUT_SECONDS", default=10.0),
    "WEBHOOK_LEASE_SECONDS": env.float("BILLFLOW_WEBHOOK_LEASE_SECONDS", default=60.0),
    "WEBHOOK_RETRY_BASE_SECONDS": env.float("BILLFLOW_WEBHOOK_RETRY_BASE_SECONDS", default=60.0),
    "WEBHOOK_RETRY_MAX_SECONDS": env.float("BILLFLOW_WEBHOOK_RETRY_MAX_SECONDS", default=21600.0),
    "WEBHOOK_RETRY_WINDOW_SECONDS": env.float(
        "BILLFLOW_WEBHOOK_RETRY_WINDOW_SECONDS", default=259200.0
    ),
}
# A worker still waiting for an endpoint's answer must not lose its delivery to another one.
if BILLFLOW["WEBHOOK_TIMEOUT_SECONDS"] * 2 > BILLFLOW["WEBHOOK_LEASE_SECONDS"]:
    raise ImproperlyConfigured(
        "Environment variable BILLFLOW_WEBHOOK_TIMEOUT_SECONDS "
        f"({BILLFLOW['WEBHOOK_TIMEOUT_SECONDS']:g} s) must be at most half of "
        f"BILLFLOW_WEBHOOK_LEASE_SECONDS ({BILLFLOW['WEBHOOK_LEASE_SECONDS']:g} s)."
    )

# A prune pass must end inside its django-q task's timeout, with room for its last batch.
if not 0 < BILLFLOW["RETENTION_BUDGET_SECONDS"] <= Q_CLUSTER["timeout"] / 2:
    raise ImproperlyConfigured(
        "Environment variable BILLFLOW_RETENTION_BUDGET_SECONDS "
        f"({BILLFLOW['RETENTION_BUDGET_SECONDS']:g} s) must be more than 0 and at most half of "
        f"the task timeout ({Q_CLUSTER['timeout']} s)."
    )

# One attempt of an e-mail or HTTP step must end well inside its run's lease, or the sweep
# hands the run to a second worker while the first is still waiting for an answer. Each of
# these bounds a whole send (connect to the last byte of the answer), not each read.
for _name, _timeout in (
    ("BILLFLOW_HTTP_TIMEOUT_SECONDS", BILLFLOW["HTTP_TIMEOUT_SECONDS"]),
    ("EMAIL_TIMEOUT_SECONDS", EMAIL_TIMEOUT),
):
    if _timeout * 2 > BILLFLOW["LEASE_SECONDS"]:
        raise ImproperlyConfigured(
            f"Environment variable {_name} ({_timeout:g} s) must be at most half of "
            f"BILLFLOW_LEASE_SECONDS ({BILLFLOW['LEASE_SECONDS']} s)."
        )

# Called with each billing event inside the transaction that records it (billing/events.py):
# the workflow engine creates the event's runs there, so they commit with the event.
BILLING_EVENT_DISPATCHER: str = "workflows.engine.dispatch.dispatch_recorded_event"
# Dotted paths called with each billing event inside the transaction that records it, after
# the dispatcher: outboxes whose rows must commit with the event (webhook deliveries).
BILLING_EVENT_OUTBOXES: list[str] = ["webhooks.outbox.webhook_deliveries_record"]
# Dotted paths called with each committed billing event's id, after commit.
BILLING_EVENT_SUBSCRIBERS: list[str] = []
# The runs that changed a billing object or were started by an event about it, listed on its
# admin page: `runs_touching(environment=…, object_id=…)`.
BILLING_ADMIN_RUNS_TOUCHING: str = "workflows.inspector.selectors.runs_touching"

# The example custom-action app (slack_actions): an incoming-webhook URL; empty = not configured.
SLACK_ACTIONS = {"WEBHOOK_URL": env.str("SLACK_WEBHOOK_URL", default="")}

# Run failure notifications (workflows/operations/notifications.py): failures of one workflow
# within a window are grouped into one e-mail; a Slack incoming webhook gets the same message
# if set.
FAILURE_NOTIFICATIONS = {
    "WINDOW_SECONDS": env_int("FAILURE_NOTIFICATION_WINDOW_SECONDS", default=300, minimum=1),
    "SLACK_WEBHOOK_URL": env.str("FAILURE_SLACK_WEBHOOK_URL", default=""),
}

# One line per record: time, level, logger, request id (web) or run id (workers), message
# (backoffice/logs.py; LOG_FORMAT=json for one JSON object per line).
LOGGING = logging_config(
    log_format=env_choice("LOG_FORMAT", ("text", "json"), default="text"),
    level=env.str("LOG_LEVEL", default="INFO"),
    # django-q logs two lines per task at INFO; the run inspector is the record of each run.
    # axes logs every login at INFO; its warnings (failures, lockouts) are the ones that matter.
    extra_loggers={
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
        "axes": {"level": "WARNING"},
        "pgtrigger": {"level": "WARNING"},
    },
)

# GET /metrics (workflows/operations/metrics.py) answers only
# `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("Environment variable METRICS_TOKEN must be at least 16 characters.")

# --- Security (docs/security.md). Behind HTTPS (the default when DEBUG is off) cookies are
# secure, HTTP redirects to HTTPS and browsers are told to stay on HTTPS (HSTS).
HTTPS = env_bool("HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=HTTPS)
# Load balancers probe over plain HTTP inside the network; anonymous probes get only the status
# and the session cookie is never sent over HTTP; /metrics needs its bearer token
# (docs/operations.md).
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
# Set when a TLS-terminating proxy in front of the app sets X-Forwarded-Proto (and strips it
# from clients); otherwise every proxied request looks like plain HTTP and redirects forever.
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
# A back-office session lasts a working day at most, and ends with the browser.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", default=12 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# API bodies (and admin forms) above this are refused with 413 request_too_large.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576, minimum=1)
# htmx adds one fixed <style> for its loading indicators; the policy allows exactly that text by
# its hash (tests/browser/test_security_csp_browser.py notices if an htmx upgrade changes it).
HTMX_INDICATOR_STYLE = (
    ".htmx-indicator{opacity:0;visibility: hidden} "
    ".htmx-request .htmx-indicator, .htmx-request.htmx-indicator"
    "{opacity:1;visibility: visible;transition: opacity 200ms ease-in}"
)
_htmx_style_hash = base64.b64encode(hashlib.sha256(HTMX_INDICATOR_STYLE.encode()).digest()).decode()
# Every page loads scripts and styles as files from our own origin; nothing inline, no eval.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' 'sha256-{_htmx_style_hash}'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Admin login lockout: django-axes, configured from the LOGIN_THROTTLE_* variables
# (docs/security.md). Failures are counted per user name and per client address, each on its
# own: either reaching the limit refuses further logins, even with the right password.
_LOGIN_THROTTLE_WINDOW = env_int("LOGIN_THROTTLE_WINDOW_SECONDS", default=900, minimum=1)
_LOGIN_THROTTLE_LOCKOUT = env_int("LOGIN_THROTTLE_LOCKOUT_SECONDS", default=900, minimum=1)
AXES_FAILURE_LIMIT = env_int("LOGIN_THROTTLE_MAX_FAILURES", default=5, minimum=1)
# axes has one period for both: a failure counts while it is younger than the cool-off, and a
# lock lasts until its failures are that old. The longer of the two settings, so neither the
# counting window nor the lockout is shorter than configured.
AXES_COOLOFF_TIME = timedelta(seconds=max(_LOGIN_THROTTLE_WINDOW, _LOGIN_THROTTLE_LOCKOUT))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # shared by every web worker
AXES_USERNAME_FORM_FIELD = "username"
# The name as Django's login form hands it to the backends (stripped, NFKC), lower-cased: every
# spelling that signs in as a user counts toward, and is refused by, that user's one lock.
AXES_USERNAME_CALLABLE = "backoffice.security.login_lockout_username"
# The client's address from TRUSTED_PROXY_HOPS (backoffice/security.py `client_ip`).
AXES_CLIENT_IP_CALLABLE = "backoffice.security.client_ip"
AXES_LOCKOUT_CALLABLE = "backoffice.security.login_lockout_response"
AXES_RESET_ON_SUCCESS = True  # a successful login clears its user name's and address's count
# A refused login does not restart the lockout: it ends a cool-off after the last real failure.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_ENABLE_ADMIN = False  # registered behind the Admin role by backoffice/admin.py instead
# Every failure also kept in a log (capped per user name by axes) for the Admin's review.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_VERBOSE = False
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", default=0)
