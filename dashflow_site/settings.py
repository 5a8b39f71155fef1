"""The one settings module: read from the environment, with embedded defaults.

With no environment at all the app runs on one machine with no services: SQLite under
``var/``, the in-memory channel layer and Celery tasks run in-process. ``DATABASE_URL``
switches to PostgreSQL, ``REDIS_URL`` switches the channel layer and the Celery broker to
Redis. A bad value stops the process at start with a message naming the variable.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dashflow_site import dbpool

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected one of true/false/1/0/yes/no/on/off")


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at most {maximum}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def url_origin(name: str, raw: str) -> str:
    """``scheme://host[:port]`` of the URL in variable ``name`` (http or https)."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected http(s)://host[:port]")
    return f"{parts.scheme}://{parts.netloc}"


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if not DEBUG else "*")
# Where browsers reach this site: the run links in webhook bodies are absolute, and its
# origin is trusted for forms and websockets (`make run` sets it from HOST and PORT).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# Pages of another origin may neither post forms nor open websockets (which carry the
# session cookie): the Origin must be the request's own (scheme, host and port, the host in
# ALLOWED_HOSTS) or one of these (dashflow_site/origins.py, Django's CSRF check).
CSRF_TRUSTED_ORIGINS = list(
    dict.fromkeys([url_origin("SITE_URL", SITE_URL), *env_list("CSRF_TRUSTED_ORIGINS", "")])
)

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's, so `manage.py runserver` is Daphne.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "traces",
    "visualizer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before the session is looked up: a NUL or bad UTF-8 anywhere is a 400 here.
    "dashflow_site.input_guard.text_input_guard",
    # Answers a database outage 503 with Retry-After from any view (not an HTML 500).
    "dashflow_site.middleware.DatabaseOutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# A strict Content-Security-Policy on every response (django-csp): scripts and styles only
# from our own static files, so an injected <script>, onclick= or style= does nothing. The
# pages have no inline script, handler or style; data reaches scripts through
# <script type="application/json"> (not executed, so not blocked). Plotly's global rules
# come from static/vendor/plotly/plotly-dashflow.css instead of the <style> it would inject
# (README, "Content-Security-Policy"). 'self' in connect-src covers the same-origin websockets.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

ROOT_URLCONF = "dashflow_site.urls"
ASGI_APPLICATION = "dashflow_site.asgi.application"
WSGI_APPLICATION = "dashflow_site.wsgi.application"

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

VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    _database: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL, conn_max_age=60))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r}: {exc}") from None
if _database["ENGINE"] not in (
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
):
    raise ImproperlyConfigured(
        f"DATABASE_URL={DATABASE_URL!r}: only sqlite:/// and postgres:// are supported"
    )
if _database["ENGINE"] == "django.db.backends.postgresql":
    # A connection pool: Django's ASGI handler runs each request in a new thread, and a
    # persistent connection belongs to its thread, so without a pool every request opened
    # a PostgreSQL connection (~15 ms, measured by benchmarks/live.py).
    _database["CONN_MAX_AGE"] = 0
    _database["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DATABASE_POOL_MIN", 2, minimum=0),
            "max_size": env_int("DATABASE_POOL_MAX", 16, minimum=1),
            # How long a request waits for a connection; past it (the database is down,
            # or every connection is busy) it is answered 503 with Retry-After.
            "timeout": env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1),
            # While the database is down the pool retries a connection with a backoff
            # that doubles (1, 2, 4, 8 s ...): after a minute's outage the next try could
            # be half a minute after the database is back. Giving up after 2 s instead
            # leaves the next try to the next request, at once.
            "reconnect_timeout": 2,
        }
    }
    # Each connection is checked as it leaves the pool: after a PostgreSQL restart every
    # pooled connection is dead, and without the check each failed one request, for
    # minutes; with it (and dbpool.py: one dead connection replaces all idle ones) the
    # first request after the restart already works (tests/test_database_outage.py).
    _database["CONN_HEALTH_CHECKS"] = True
    dbpool.install()
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["CONN_MAX_AGE"] = 0
    # WAL lets readers run beside the one writer and commits ~5x faster than the
    # default rollback journal; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on busy_timeout instead of failing with "database is locked".
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    if _database["NAME"] not in ("", ":memory:"):
        Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file, not memory, for the test database: the live tests start real Daphne
    # processes that must see the same database as the test. One per test session (pid),
    # so two sessions on one checkout do not delete each other's.
    _database["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r}: expected redis://host:port/db")

if REDIS_URL:
    # Redis pub/sub ignores the database number, so the channel names carry it: two
    # deployments (or test sessions) on one Redis with different db numbers stay apart.
    _redis_db = urlsplit(REDIS_URL).path.strip("/") or "0"
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a group message is published once and each Daphne process fans it
            # out to its own viewers. The core layer instead queues one copy per viewer,
            # popped one round trip at a time (20 viewers: the last waits ~20 pops).
            # Both are lossy by design here: seq + replay from the database make delivery
            # whole (ARCHITECTURE.md, "The path of one live event").
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # socket_timeout None: redis-py 8 otherwise closes pub/sub sockets idle
                # for 5 s (channels_redis #422) and an idle viewer misses the next event.
                # retry: a pooled connection left from before a Redis restart fails its
                # first command; redis-py's async client does not retry by default.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
                    }
                ],
                "prefix": f"dashflow.db{_redis_db}",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# "default" stays in each process's memory (page hints: losing them costs a query).
# "throttle" holds the rate limits' counters (traces/throttle.py): on Redis every process
# counts together; without REDIS_URL, one process's memory, bounded by MAX_ENTRIES.
CACHES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "dashflow.throttle",
            # A Redis that does not answer must not hold a sign-in or an ingest for long.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "throttle",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    ),
}
# Sign-in throttling (traces/throttle.py, visualizer/pages/login.py): after this many
# failures in a window of LOGIN_THROTTLE_WINDOW seconds for one username (any address),
# or from one address (any username), sign-ins are refused (429) until the window ends.
LOGIN_THROTTLE_WINDOW = env_int("LOGIN_THROTTLE_WINDOW", 900, minimum=1)
LOGIN_MAX_FAILURES_PER_USER = env_int("LOGIN_MAX_FAILURES_PER_USER", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1)
# Ingestion requests per API key: a token bucket of INGEST_BURST requests refilled at
# INGEST_RATE per second (0: no limit); over it, 429 with Retry-After.
INGEST_RATE = env_int("INGEST_RATE", 100)
INGEST_BURST = env_int("INGEST_BURST", 200, minimum=1)
# Milliseconds a 429 for a key over its rate is held before it is sent (at most its
# Retry-After): a client that retries as soon as it is answered then costs the server a
# timer, not thousands of refusals a second (dashflow_site/bodylimit.py).
INGEST_THROTTLE_DELAY_MS = env_int("INGEST_THROTTLE_DELAY_MS", 1000, maximum=60_000)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Plotly is static/vendor/plotly/plotly-dashflow.min.js: a committed custom build with only
# the trace types the pages draw (tools/plotly/build.sh), never a CDN.
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "visualizer:home"
LOGOUT_REDIRECT_URL = "login"

# Limits (ARCHITECTURE.md, "Invariants"). Each is documented in the README.
TRACE_MAX_BODY_BYTES = env_int("TRACE_MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024)
# A whole trace (`POST /api/v1/traces` only): larger than the other producer bodies, and
# held to it twice when gzipped (the body as sent and the JSON it inflates to). Its states
# stay undecoded slices of the body until each is stored, so the server's peak memory is a
# small multiple of the body whatever the trace's shape (benchmarks/large_ingest.py).
TRACE_UPLOAD_MAX_BYTES = env_int("TRACE_UPLOAD_MAX_BYTES", 256 * 1024 * 1024, minimum=1024)
# Bodies of every other request with credentials (a bearer header or a session cookie), and
# of a request with none, refused by Daphne before it buffers them (dashflow_site/bodylimit.py).
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
ANONYMOUS_MAX_BODY_BYTES = env_int("ANONYMOUS_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# Every reader of a state (the step panel's diff, Markdown, the DashStream export) recurses
# once or twice per level: past ~600 levels they hit Python's recursion limit.
TRACE_MAX_DEPTH = env_int("TRACE_MAX_DEPTH", 200, minimum=8, maximum=400)
TRACE_MAX_NODES = env_int("TRACE_MAX_NODES", 100_000, minimum=1)
# States larger than this are shown as a size and a download link, not inline.
STATE_INLINE_MAX_BYTES = env_int("STATE_INLINE_MAX_BYTES", 1024 * 1024, minimum=1)
TRACE_MAX_EVENTS = env_int("TRACE_MAX_EVENTS", 1000, minimum=1)
# A running run with no event for this long is shown as stale.
RUN_STALE_AFTER = env_int("RUN_STALE_AFTER", 600, minimum=1)
# Events a websocket replays before telling a client that is too far behind to resync.
WS_MAX_REPLAY = env_int("WS_MAX_REPLAY", 5000, minimum=1)
# Bytes of events a websocket client may have unacknowledged: a replay waits for its acks
# past this, live events find it behind and tell it to resync. The bound on what a client
# that stops reading can make the server buffer (plus one frame).
WS_MAX_PENDING_BYTES = env_int("WS_MAX_PENDING_BYTES", 8 * 1024 * 1024, minimum=64 * 1024)
# Bytes Daphne may hold unsent for one websocket (its transport's write buffer), whatever
# the client acknowledges: past it the socket is closed with 4409 and the buffer freed
# (dashflow_site/wsbuffer.py). Every socket path, acked or not. Above WS_MAX_PENDING_BYTES
# plus a frame by default, so that a run socket's honest slow reader meets the acks' bound
# (a resync it can read) first; at least one frame (1 MB).
WS_MAX_UNSENT_BYTES = env_int(
    "WS_MAX_UNSENT_BYTES", WS_MAX_PENDING_BYTES + 2 * 1024 * 1024, minimum=1024 * 1024
)
# Websockets one signed-in user may have open at once in one server process (and one
# address without a session, whose sockets are refused anyway): past it the handshake is
# closed with 4429 and the page tries again later (visualizer/socket_limit.py).
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", 50, minimum=1)
WS_MAX_SOCKETS_PER_ADDRESS = env_int("WS_MAX_SOCKETS_PER_ADDRESS", 50, minimum=1)
# Seconds between a live page's checks that it missed nothing: pushes are lost while the
# channel layer (Redis) is down, and a run that ended then would look live until a reload.
LIVE_CHECK_EVERY = env_int("LIVE_CHECK_EVERY", 15, minimum=1)
# OpenTelemetry (traces/otlp.py): the spans of a trace wait in the span buffer until its
# root span ends; a trace with no new span for OTLP_IDLE_TIMEOUT seconds is ended
# incomplete (and a finished one forgotten). A trace keeps at most OTLP_MAX_TRACE_SPANS
# spans, a project at most OTLP_MAX_OPEN_TRACES unfinished traces (then 429).
OTLP_IDLE_TIMEOUT = env_int("OTLP_IDLE_TIMEOUT", 300, minimum=1)
OTLP_MAX_TRACE_SPANS = env_int("OTLP_MAX_TRACE_SPANS", 10_000, minimum=1)
OTLP_MAX_OPEN_TRACES = env_int("OTLP_MAX_OPEN_TRACES", 10_000, minimum=1)
# Threads (and database connections) one export request writes its traces with, side by
# side (PostgreSQL only; SQLite has one writer).
OTLP_WORKERS = env_int("OTLP_WORKERS", 4, minimum=1)
# The OTLP/gRPC receiver (`manage.py otlp_grpc`, run by `make run`).
OTLP_GRPC_PORT = env_int("OTLP_GRPC_PORT", 4317, minimum=0)
# Django's own request-body cap must not cut a trace short before our limit answers 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = TRACE_MAX_BODY_BYTES + 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "traces.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["traces.api.render.FastJSONRenderer"],
    # JSON bodies through traces/parsing.py (depth, UTF-8, no NUL), forms as DRF's.
    "DEFAULT_PARSER_CLASSES": [
        "traces.api.request.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "traces.api.render.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DashFlow Trace Studio API",
    "DESCRIPTION": "Ingest and read DashFlow ExecutionTrace runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Every operation documents the error answers every view can give, with the one error
    # body (traces/api/render.py), after drf-spectacular's own enum hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "traces.api.render.document_errors",
    ],
    # Runs, failure groups, reviews and exports each have a "status": one enum per kind.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "traces.models.RunStatus",
        "GroupStatusEnum": "traces.models.GroupStatus",
        "ReviewStatusEnum": "traces.models.ReviewStatus",
        "ExportStatusEnum": "traces.models.ExportStatus",
    },
}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without Redis there is no worker: tasks run in the web process as they are queued.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Exports (traces/exports.py, traces/tasks.py). Files live under EXPORT_DIR until the
# retention sweep deletes them (and their rows) EXPORT_RETENTION_DAYS after creation.
EXPORT_DIR = Path(env_str("EXPORT_DIR", str(VAR_DIR / "exports")))
EXPORT_RETENTION_DAYS = env_int("EXPORT_RETENTION_DAYS", 7, minimum=1)
# The longest an export may run; past it the task fails (soft limit) and is killed.
EXPORT_TIME_LIMIT = env_int("EXPORT_TIME_LIMIT", 6 * 3600, minimum=10)
# Progress is saved (and pushed to browsers) every this many runs or half second.
EXPORT_PROGRESS_EVERY = env_int("EXPORT_PROGRESS_EVERY", 50, minimum=1)
# An export reads a run's steps (and their states) this many at a time: what bounds its
# memory however long the run (traces/step_windows.py).
EXPORT_WINDOW_STEPS = env_int("EXPORT_WINDOW_STEPS", 2000, minimum=1)
# Testing only: a pause after each run, so a test can catch an export in the middle.
EXPORT_RUN_DELAY_MS = env_int("EXPORT_RUN_DELAY_MS", 0)
# Redis redelivers a task not acknowledged within the visibility timeout (tasks are acked
# when they finish, acks_late): that is how the export of a worker that died (SIGKILL, lost
# machine) is taken over, so it is short. An export that runs longer is delivered again
# while it runs; the copy finds the export's lock held (traces/exports.py) and looks again
# every RETRY_COUNTDOWN_MAX seconds, taking the export over once its worker is gone, and
# dropping itself once the export is finished: exactly one writer, exactly one file.
# A worker looks for such tasks every `unacked_restore_interval` seconds, but kombu 5.7 scans
# only on every `unacked_restore_throttle`-th look (10 x 10 s by default): a dead worker's
# export then waited up to 100 s past its visibility timeout. One scan each 10 s instead
# (a ZRANGEBYSCORE on the unacked index: cheap). A dead worker's export thus restarts within
# CELERY_VISIBILITY_TIMEOUT + 10 s (130 s by default), tests/traces/test_exports_worker.py.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 120, minimum=2)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
# A task waiting for its countdown (a retry) sits unacknowledged in a worker: waiting longer
# than the visibility timeout would deliver it twice. Every retry waits at most this long.
RETRY_COUNTDOWN_MAX = max(1, CELERY_VISIBILITY_TIMEOUT // 2)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# Alerts (traces/alerts.py, traces/webhooks.py): beat evaluates every rule this often
# (seconds); a webhook that fails (no connection, timeout, 5xx) is retried after BACKOFF,
# 2 x BACKOFF, 4 x ... seconds (at most BACKOFF_MAX apart), MAX_RETRIES times.
ALERT_EVALUATE_EVERY = env_int("ALERT_EVALUATE_EVERY", 60, minimum=1)
ALERT_WEBHOOK_MAX_RETRIES = env_int("ALERT_WEBHOOK_MAX_RETRIES", 6)
ALERT_WEBHOOK_BACKOFF = env_int("ALERT_WEBHOOK_BACKOFF", 10, minimum=1)
ALERT_WEBHOOK_BACKOFF_MAX = env_int("ALERT_WEBHOOK_BACKOFF_MAX", 3600, minimum=1)
ALERT_WEBHOOK_TIMEOUT = env_int("ALERT_WEBHOOK_TIMEOUT", 10, minimum=1)
# Webhooks go to public addresses only unless this is on (traces/egress.py: a URL typed by
# a project admin must not reach the server's own network); for receivers on loopback or a
# private network, such as the tests' and the demo's.
ALERT_WEBHOOK_ALLOW_PRIVATE = env_bool("ALERT_WEBHOOK_ALLOW_PRIVATE", False)
# A firing keeps at most this many of the runs behind it.
ALERT_MAX_RUNS = env_int("ALERT_MAX_RUNS", 20, minimum=1)
# Run retention (traces/retention.py): beat purges every project's expired runs this often
# (seconds), in transactions of at most RETENTION_BATCH_RUNS runs and, past the first run,
# RETENTION_BATCH_STEPS steps, so no purge holds row locks for long.
RETENTION_PURGE_EVERY = env_int("RETENTION_PURGE_EVERY", 3600, minimum=60)
RETENTION_BATCH_RUNS = env_int("RETENTION_BATCH_RUNS", 100, minimum=1)
RETENTION_BATCH_STEPS = env_int("RETENTION_BATCH_STEPS", 20_000, minimum=1)
# Beat (`celery -A dashflow_site beat`, or `worker -B`) runs the retention sweep hourly;
# creating an export and opening the exports page also run it, so it holds without beat.
CELERY_BEAT_SCHEDULE = {
    "delete-expired-exports": {
        "task": "traces.tasks.delete_expired_exports",
        "schedule": 3600.0,
    },
    "expire-idle-otlp-traces": {
        "task": "traces.tasks.expire_idle_otlp_traces",
        "schedule": 60.0,
    },
    "purge-expired-runs": {
        "task": "traces.tasks.purge_expired_runs",
        "schedule": float(RETENTION_PURGE_EVERY),
    },
    "evaluate-alerts": {
        "task": "traces.tasks.evaluate_alerts",
        "schedule": float(ALERT_EVALUATE_EVERY),
    },
}
