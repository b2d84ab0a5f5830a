"""custsync settings, all read from the environment through django-environ.

See `.env.example` for every variable. The embedded default is SQLite with the
django-q2 ORM broker, so the whole system runs on a fresh machine; production
sets `DATABASE_URL=postgres://...` and usually `REDIS_URL`.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# A development-only fallback; `manage.py check --deploy` flags it and production must set it.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="django-insecure-dev-only-key-change-me")
# Rotate the key without logging everyone out: old keys go here for a while.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Before django_q: the project's `qcluster` command (every cluster) replaces django-q2's (one cluster).
    "custsync_project.apps.CustsyncProjectConfig",
    "django_q",
    "canonical",
    "webhooks",
    "targets",
    "reconciliation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "custsync_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "custsync_project.wsgi.application"

# --- Security (production: TLS ends at the proxy in front of gunicorn) -------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG and SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Database ---------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
IS_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if IS_SQLITE:
    # Several processes (web, workers) write at once: WAL, a busy timeout and
    # BEGIN IMMEDIATE turn "database is locked" into a short wait.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that real worker processes started by tests share it.
    DATABASES["default"]["TEST"] = {
        "NAME": env("TEST_DATABASE_NAME", default=str(BASE_DIR / "test-db.sqlite3"))
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # On: one extra round trip per request (a quarter of a webhook's). Off (Django's default): after a
    # database restart each process answers one request with 503 "retry later", then reconnects.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    if env("TEST_DATABASE_NAME", default=None):
        DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Webhooks ---------------------------------------------------------------
# The contract: bodies up to 256 KiB, timestamps within 300 s.
WEBHOOK_MAX_BODY_BYTES = 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES
WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS = env.int("WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS", default=300)
# Each gateway process keeps enabled sources this long: disabling a source or
# changing its secret references takes effect everywhere within it (0: read per request).
WEBHOOK_SOURCE_CACHE_SECONDS = env.float("WEBHOOK_SOURCE_CACHE_SECONDS", default=5.0)

# --- Inbox processing -------------------------------------------------------
# A worker's claim on an event lasts this long; a crashed worker's events are
# taken again after it. The sweeper re-enqueues events older than the sweep age.
INBOX_LEASE_SECONDS = env.int("INBOX_LEASE_SECONDS", default=120)
INBOX_MAX_ATTEMPTS = env.int("INBOX_MAX_ATTEMPTS", default=5)
INBOX_SWEEP_AFTER_SECONDS = env.int("INBOX_SWEEP_AFTER_SECONDS", default=60)
# The inbox pump claims up to this many events at a time and applies them in one
# transaction; it runs until the inbox is empty or its time budget is spent.
INBOX_BATCH_SIZE = env.int("INBOX_BATCH_SIZE", default=50)
INBOX_PUMP_BUDGET_SECONDS = env.float("INBOX_PUMP_BUDGET_SECONDS", default=30.0)
# A gateway process wakes the pump at most once per this interval; a wake-up
# skipped inside it is sent at its end (0: one wake-up per accepted event).
INBOX_KICK_INTERVAL_SECONDS = env.float("INBOX_KICK_INTERVAL_SECONDS", default=0.1)

# --- REST framework / OpenAPI ----------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "custsync API",
    "DESCRIPTION": "Signed customer webhooks in, golden records out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- django-q2 --------------------------------------------------------------
# retry > timeout + time queued in the cluster, so one enqueue never runs twice
# at once; the database rows (inbox, outbox) are the truth and a sweeper
# re-enqueues anything a lost task message left behind.
REDIS_URL = env("REDIS_URL", default="")
Q_WORKERS = env.int("Q_WORKERS", default=2)
Q_CLUSTER = {
    "name": "custsync",
    "workers": Q_WORKERS,
    "queue_limit": Q_WORKERS * 2,
    "timeout": env.int("Q_TIMEOUT", default=60),
    "retry": env.int("Q_RETRY", default=180),
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,  # keep failed tasks only: a saved result per success is a write per event
    "catch_up": False,
    "poll": 0.2,
    "sync": env.bool("Q_SYNC", default=False),
    "label": "Task queue",
}
# Deliveries run on their own cluster and queue (every `qcluster` worker runs it beside the main one,
# custsync_project/worker.py): a delivery pump waiting on a slow or rate-limited target never holds up
# inbox processing.
DELIVERY_CLUSTER = "custsync-delivery"
Q_DELIVERY_WORKERS = env.int("Q_DELIVERY_WORKERS", default=2)
Q_CLUSTER["ALT_CLUSTERS"] = {
    DELIVERY_CLUSTER: {"workers": Q_DELIVERY_WORKERS, "queue_limit": Q_DELIVERY_WORKERS * 2, "scheduler": False},
}
# On SIGTERM/SIGINT a worker starts no further task; one still running after this many seconds is
# interrupted and releases what it holds. Keep it below the stopper's patience (honcho: 5 s).
WORKER_STOP_GRACE_SECONDS = env.float("WORKER_STOP_GRACE_SECONDS", default=2.0)
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging ----------------------------------------------------------------
# One switch: LOG_FORMAT=json (JSON lines, the production default) or text.
from core.logging import logging_config  # noqa: E402

LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)

# Swagger UI and ReDoc assets come from the sidecar package: no CDN needed.
SPECTACULAR_SETTINGS.update({
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
})

# Each app contributes the sections of the sync config it owns; see `import_sync_config`.
SYNC_CONFIG_IMPORTERS = [
    "webhooks.sync_config.import_sources",
    "canonical.sync_config.import_fields",
    "targets.sync_config.import_targets",
]

# Periodic tasks, created by `manage.py setup_schedules` (idempotent). Those marked "after_migrate"
# (the sweepers, which recover lost work) are also ensured after every `migrate`; the nightly
# reconciliation stays opt-in through `setup_schedules`.
RECONCILE_CRON = env("RECONCILE_CRON", default="30 2 * * *")  # nightly, 02:30 UTC
CUSTSYNC_SCHEDULES = [
    {"name": "inbox-sweep", "func": "webhooks.processing.inbox_sweep", "schedule_type": "I", "minutes": 1,
     "after_migrate": True},
    {"name": "outbox-sweep", "func": "targets.tasks.outbox_sweep", "schedule_type": "I", "minutes": 1,
     "after_migrate": True},
    {"name": "reconcile-nightly", "func": "reconciliation.tasks.reconcile_nightly", "schedule_type": "C",
     "cron": RECONCILE_CRON},
]
# The nightly run reports; with RECONCILE_FIX it also queues the fixes.
RECONCILE_FIX = env.bool("RECONCILE_FIX", default=False)
RECONCILE_KEEP_RUNS = env.int("RECONCILE_KEEP_RUNS", default=30)
