"""Django settings, read from the environment.

With no DATABASE_URL the project runs on SQLite (the standalone demo); with no
REDIS_URL it uses the Redis that ``make run`` started for the demo (its
address is in var/standalone.env), or a Redis on localhost. Production sets
both, plus SECRET_KEY and DEBUG=0.
"""

import logging
import os
import re
from pathlib import Path

import dj_database_url

from config import broker
from locking.urls import kombu_sentinel_url, parse_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent
# The demo's files: its SQLite database, its Redis's pid, log and address.
VAR_DIR = Path(os.environ.get("IMPORTHUB_VAR_DIR") or BASE_DIR / "var")


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str], *, separators: str = ",") -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return list(default)
    return [item.strip() for item in re.split(f"[{separators}]", value) if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    "django-insecure-importhub-development-key" if DEBUG else ""
)
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off.")
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip()
    for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",")
    if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "connectors",
    "imports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The web process serves its own static files (the admin's CSS and
# scripts) when no proxy does: ``pip install importhub[server]``.
if env_bool("IMPORTHUB_SERVE_STATIC", False):
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL")
# Standalone: neither service named, the demo of ``make run`` (SQLite, and
# the Redis it starts on port 6390).
IMPORTHUB_STANDALONE = not DATABASE_URL and not os.environ.get("REDIS_URL")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The standalone demo runs the web server, a worker and beat against one
    # file: wait for the write lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Behind PgBouncer in transaction mode a named cursor (``.iterator()``)
    # cannot outlive its transaction: turn Django's off (deploy/README.md).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
        "DATABASE_DISABLE_SERVER_SIDE_CURSORS", False
    )
    # A session that stalls inside a transaction (a worker paused in its
    # load) must not hold its row locks for ever: PostgreSQL ends it after
    # this long idle, its transaction rolls back, and the sweep and the
    # admin can lock those rows again. 0 turns the bound off.
    IMPORTHUB_DB_IDLE_IN_TRANSACTION_SECONDS = env_float(
        "IMPORTHUB_DB_IDLE_IN_TRANSACTION_SECONDS", 60.0
    )
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = " ".join(
        filter(
            None,
            [
                _options.get("options", ""),
                "-c idle_in_transaction_session_timeout="
                f"{int(IMPORTHUB_DB_IDLE_IN_TRANSACTION_SECONDS * 1000)}",
            ],
        )
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "ru")
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Timestamps with seconds and the time zone (config/formats/<lang>).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# Redis: locks, connector slots and (by default) the Celery broker. One
# server (redis://), the sentinels of a master
# (sentinel://host:26379,host:26380/<master>/<db>) or a Cluster for the
# locks (redis+cluster://host:7000,host:7001), see locking/urls.py.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Standalone, a command run beside ``make run`` finds the demo's Redis in
# the file the run script writes (and removes when it stops); without it,
# the demo's port, where nothing answers unless the demo runs (a check
# says so), never another Redis where no worker of the demo listens.
IMPORTHUB_STANDALONE_ENV = VAR_DIR / "standalone.env"
if IMPORTHUB_STANDALONE:
    REDIS_URL = f"redis://127.0.0.1:{env_int('IMPORTHUB_DEMO_REDIS_PORT', 6390)}/0"
    if IMPORTHUB_STANDALONE_ENV.exists():
        for _line in IMPORTHUB_STANDALONE_ENV.read_text().splitlines():
            _name, _, _value = _line.partition("=")
            if _name.strip() == "REDIS_URL" and _value.strip():
                REDIS_URL = _value.strip()
IMPORTHUB_REDIS_PREFIX = os.environ.get("IMPORTHUB_REDIS_PREFIX", "importhub:")
IMPORTHUB_REDIS_SOCKET_TIMEOUT = env_float("IMPORTHUB_REDIS_SOCKET_TIMEOUT", 5.0)

# A run's lease: its project lock and connector slot expire this long after
# the last heartbeat. The heartbeat renews them every third of it.
IMPORTHUB_LEASE_SECONDS = env_float("IMPORTHUB_LEASE_SECONDS", 60.0)
# A queued run has no heartbeat until a worker picks it up; its lock lives
# this long, and the database constraint holds the project after that.
IMPORTHUB_DISPATCH_LOCK_SECONDS = env_float("IMPORTHUB_DISPATCH_LOCK_SECONDS", 3600.0)
# A queued run not started this long after its dispatch is sent again (its
# message may have been lost with the broker's data); a duplicate is
# harmless, only one message can start a run.
IMPORTHUB_REDISPATCH_SECONDS = env_float("IMPORTHUB_REDISPATCH_SECONDS", 600.0)
# The hard cap on one import's runtime (also the task's time limit).
IMPORTHUB_MAX_RUNTIME_SECONDS = env_int("IMPORTHUB_MAX_RUNTIME_SECONDS", 6 * 3600)
IMPORTHUB_BATCH_SIZE = env_int("IMPORTHUB_BATCH_SIZE", 5000)
# Transient failures retry after base * 2^(attempt-1) seconds, with full
# jitter, capped; a source's Retry-After is honoured when longer.
IMPORTHUB_RETRY_BASE_SECONDS = env_float("IMPORTHUB_RETRY_BASE_SECONDS", 10.0)
IMPORTHUB_RETRY_MAX_SECONDS = env_float("IMPORTHUB_RETRY_MAX_SECONDS", 900.0)
# The sweep (beat) reaps lost workers, starts waiting runs and due retries.
IMPORTHUB_SWEEP_SECONDS = env_float("IMPORTHUB_SWEEP_SECONDS", 15.0)
# A cancelled run still running after this long is revoked by force.
IMPORTHUB_CANCEL_GRACE_SECONDS = env_float("IMPORTHUB_CANCEL_GRACE_SECONDS", 60.0)
IMPORTHUB_TASK_QUEUE = os.environ.get("IMPORTHUB_TASK_QUEUE", "imports")
# The sweep goes to a queue of its own, so that it never waits behind long
# imports: give it a small worker (celery worker -Q importhub-control -c 1),
# or let the import workers consume both queues.
IMPORTHUB_CONTROL_QUEUE = os.environ.get("IMPORTHUB_CONTROL_QUEUE", "importhub-control")

# Celery
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
_broker = parse_redis_url(CELERY_BROKER_URL)
if _broker.kind == "cluster":
    raise RuntimeError(
        "Celery cannot use a Redis Cluster as its broker: with a Cluster "
        "REDIS_URL, set CELERY_BROKER_URL (Redis, Sentinel or RabbitMQ)."
    )
_broker_sentinel_options = {}
if _broker.kind == "sentinel":
    # kombu's own spelling: one sentinel:// URL per sentinel, the master's
    # name in the transport options.
    CELERY_BROKER_URL, _broker_sentinel_options = kombu_sentinel_url(_broker)
    # kombu's Sentinel transport, with a fix for the loss of its master.
    CELERY_BROKER_TRANSPORT = "config.sentinel_transport:SentinelTransport"
    if os.environ.get("CELERY_BROKER_URL"):
        # Celery reads this variable before its settings: it gets the
        # translated URL too.
        os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_DEFAULT_QUEUE = IMPORTHUB_TASK_QUEUE
CELERY_TASK_ROUTES = {
    "imports.runs_sweep": {"queue": IMPORTHUB_CONTROL_QUEUE},
    # Beat's pass over the outbox: one try per row, within a time budget.
    "imports.notifications_deliver_due": {"queue": IMPORTHUB_CONTROL_QUEUE},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish that cannot reach the broker fails within a few seconds, so the
# guard can mark the run failed and free the project instead of hanging.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 3.0)
# Late acks hold an import's message for its whole runtime: the Redis
# transport's visibility timeout outlasts the longest import (a retry's
# countdown, the runtime cap, the time limit's grace and a margin), so it
# never redelivers a running import's message; RabbitMQ's consumer_timeout
# must be raised to the same bound (README, "Brokers"). A redelivered copy
# is refused by the run's claim anyway.
CELERY_VISIBILITY_TIMEOUT = env_float(
    "CELERY_VISIBILITY_TIMEOUT",
    broker.visibility_timeout(
        max_runtime=IMPORTHUB_MAX_RUNTIME_SECONDS,
        retry_max=IMPORTHUB_RETRY_MAX_SECONDS,
    ),
)
CELERY_BROKER_TRANSPORT_OPTIONS = broker.transport_options(
    CELERY_BROKER_URL,
    visibility=CELERY_VISIBILITY_TIMEOUT,
    restore_interval=env_float("CELERY_UNACKED_RESTORE_SECONDS", 0) or None,
)
CELERY_BROKER_TRANSPORT_OPTIONS.update(_broker_sentinel_options)
# A broker connection lost mid-import does not stop the import: its
# message is redelivered and refused by the claim, the import carries on.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# RabbitMQ quorum queues (replicated; no priorities; retries delayed by the
# broker's native delayed delivery): README, "Brokers".
IMPORTHUB_QUORUM_QUEUES = env_bool("IMPORTHUB_QUORUM_QUEUES", False)
for _name, _value in broker.queue_settings(
    url=CELERY_BROKER_URL, quorum=IMPORTHUB_QUORUM_QUEUES
).items():
    globals()[f"CELERY_{_name.upper()}"] = _value
# django-celery-beat, made O(1) per tick and safe with two beats (see there).
CELERY_BEAT_SCHEDULER = "imports.scheduler:ImporthubScheduler"
# Threads of a beat process that run the guard for due schedules.
IMPORTHUB_BEAT_DISPATCH_THREADS = env_int("IMPORTHUB_BEAT_DISPATCH_THREADS", 4)
# Scheduled imports due together go through the guard in batches this big.
IMPORTHUB_BEAT_BATCH = env_int("IMPORTHUB_BEAT_BATCH", 500)
CELERY_BEAT_SCHEDULE = {
    "importhub-sweep": {
        "task": "imports.runs_sweep",
        "schedule": IMPORTHUB_SWEEP_SECONDS,
        "options": {"expires": IMPORTHUB_SWEEP_SECONDS},
    },
    # The outbox's safety net: notifications whose task was lost or whose
    # receiver was down are sent again when due.
    "importhub-notifications": {
        "task": "imports.notifications_deliver_due",
        "schedule": IMPORTHUB_SWEEP_SECONDS,
        "options": {"expires": IMPORTHUB_SWEEP_SECONDS},
    },
}
CELERY_TIMEZONE = TIME_ZONE

# The HTTP API (imports/api/): JSON, token authentication only, so service
# clients need no session or CSRF token. Starting an import needs the
# imports.add_importrun permission, reading runs imports.view_importrun.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "importhub API",
    "DESCRIPTION": "Start imports of projects and follow their runs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}
# GET /metrics (Prometheus); open when unset, else needs
# "Authorization: Bearer <token>".
IMPORTHUB_METRICS_TOKEN = os.environ.get("IMPORTHUB_METRICS_TOKEN", "")
# Run durations and waits are histograms of the runs of this recent window.
IMPORTHUB_METRICS_WINDOW_SECONDS = env_int("IMPORTHUB_METRICS_WINDOW_SECONDS", 3600)
# A scrape waits this long for the workers' answers (importhub_workers_alive).
IMPORTHUB_METRICS_WORKERS_TIMEOUT = env_float("IMPORTHUB_METRICS_WORKERS_TIMEOUT", 1.0)

# Typed tables: the schema of the app's database (or of a destination that
# names none) that projects' tables land in.
IMPORTHUB_DATA_SCHEMA = os.environ.get("IMPORTHUB_DATA_SCHEMA", "importhub_data")
# PostgreSQL's work_mem for a merge's transaction (its hash joins of the
# staged rows with the table).
IMPORTHUB_MERGE_WORK_MEM = os.environ.get("IMPORTHUB_MERGE_WORK_MEM", "256MB")
# A CSV file is staged in committed segments of about this many bytes, each
# a checkpoint a retry resumes from.
IMPORTHUB_COPY_SEGMENT_BYTES = env_int("IMPORTHUB_COPY_SEGMENT_BYTES", 16 << 20)

# Connectors. The folders a CSV connector may read files from (colon- or
# comma-separated); a path outside them, after symlinks and "..", is refused.
# The default holds the demo's files and var/data for a deployment's own.
IMPORTHUB_CSV_ROOTS = env_list(
    "IMPORTHUB_CSV_ROOTS",
    [
        str(BASE_DIR / "var" / "data"),
        str(BASE_DIR / "demo"),
        str(BASE_DIR / "var" / "demo"),
    ],
    separators=":,",
)

# Hosts (names, ".domain" for its subdomains) and networks (CIDR) an HTTP
# connector may reach although they are loopback, private, link-local...
# (comma-separated). Empty: public addresses only.
IMPORTHUB_HTTP_ALLOWED_HOSTS = env_list("IMPORTHUB_HTTP_ALLOWED_HOSTS", [])

# Notifications (imports/services/delivery.py). E-mail goes through Django's
# mail with the EMAIL_* settings; a webhook's URL gets the HTTP connector's
# outbound policy (IMPORTHUB_HTTP_ALLOWED_HOSTS).
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "importhub@localhost")
# Links in notifications: the admin's address as its readers reach it.
IMPORTHUB_BASE_URL = os.environ.get("IMPORTHUB_BASE_URL", "")
# Tries of one delivery attempt, the first wait between them (stamina's
# exponential backoff); then the row waits base * 2^(attempts-1), capped,
# for beat, and is given up after the maximum of attempts.
IMPORTHUB_NOTIFY_TRIES = env_int("IMPORTHUB_NOTIFY_TRIES", 3)
IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS = env_float("IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS", 1.0)
IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS = env_float(
    "IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS", 60.0
)
IMPORTHUB_NOTIFY_RETRY_MAX_SECONDS = env_float(
    "IMPORTHUB_NOTIFY_RETRY_MAX_SECONDS", 3600.0
)
IMPORTHUB_NOTIFY_MAX_ATTEMPTS = env_int("IMPORTHUB_NOTIFY_MAX_ATTEMPTS", 12)
IMPORTHUB_NOTIFY_TIMEOUT_SECONDS = env_float("IMPORTHUB_NOTIFY_TIMEOUT_SECONDS", 10.0)
# A claimed row is another process's to send again after this long (a
# worker that died mid-send): longer than one attempt's tries and waits.
IMPORTHUB_NOTIFY_CLAIM_SECONDS = env_float("IMPORTHUB_NOTIFY_CLAIM_SECONDS", 300.0)

# LOG_FORMAT=json: one JSON object per line (imports/logging.py). Either
# way every record made while a run is handled carries run_id/project_id.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
_LOG_LEVEL_NUMBER = logging.getLevelName(LOG_LEVEL)
if not isinstance(_LOG_LEVEL_NUMBER, int):
    LOG_LEVEL, _LOG_LEVEL_NUMBER = "INFO", logging.INFO
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"run_context": {"()": "imports.logging.RunContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "imports.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["run_context"],
            "level": LOG_LEVEL,
        },
        # Each run's lines (INFO and above) kept with the run, bounded.
        "run_log": {
            "class": "imports.run_log.RunLogHandler",
            "level": "INFO",
            "filters": ["run_context"],
        },
    },
    "root": {
        "handlers": ["console", "run_log"],
        # INFO at least, for the runs' logs; the console keeps LOG_LEVEL.
        "level": min(_LOG_LEVEL_NUMBER, logging.INFO),
    },
}
# The most log lines kept per run (imports.run_log).
IMPORTHUB_RUN_LOG_LINES = env_int("IMPORTHUB_RUN_LOG_LINES", 500)
