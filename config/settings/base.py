"""Settings shared by every deployment; production differs only by environment variables."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

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
    "django_q",
    "backoffice",
    "billing",
    "workflows",
    "slack_actions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "backoffice.middleware.CurrentEnvironmentMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "backoffice.context_processors.environment",
            ],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
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
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"

for _key, _value in email_config().items():
    globals()[_key] = _value
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
    "save_limit": 0,  # save_limit > 0 costs 4-5x throughput; results are pruned by a schedule.
    "poll": env.float("Q_POLL", default=0.05),
    "catch_up": False,
    "ack_failures": True,
    "label": "Tasks",
}
if QUEUE_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
else:
    Q_CLUSTER["redis"] = REDIS_URL

# --- Billflow settings (docs/settings.md).
BILLFLOW = {
    "MAX_STEPS_PER_WORKFLOW": env_int("BILLFLOW_MAX_STEPS", default=12, minimum=1),
    "MAX_ACTIVE_WORKFLOWS": env_int("BILLFLOW_MAX_ACTIVE_WORKFLOWS", default=6, minimum=1),
    "MAX_WORKFLOWS": env_int("BILLFLOW_MAX_WORKFLOWS", default=20, minimum=1),
    "STEP_MAX_ATTEMPTS": env_int("BILLFLOW_STEP_MAX_ATTEMPTS", default=5, minimum=1),
    "RETRY_BASE_SECONDS": env.float("BILLFLOW_RETRY_BASE_SECONDS", default=1.0),
    "RETRY_MAX_SECONDS": env.float("BILLFLOW_RETRY_MAX_SECONDS", default=300.0),
    "LEASE_SECONDS": env_int("BILLFLOW_LEASE_SECONDS", default=60, minimum=5),
    "FOREACH_MAX_ITEMS": env_int("BILLFLOW_FOREACH_MAX_ITEMS", default=1000, minimum=1),
    "HTTP_ALLOWED_HOSTS": env.list("BILLFLOW_HTTP_ALLOWED_HOSTS", default=[]),
    "HTTP_SIGNING_SECRET": env.str("BILLFLOW_HTTP_SIGNING_SECRET", default=SECRET_KEY),
    "HTTP_TIMEOUT_SECONDS": env.float("BILLFLOW_HTTP_TIMEOUT_SECONDS", default=10.0),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
