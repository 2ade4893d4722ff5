"""Settings for the Agora token server, read from the environment (and .env, if present).

Every knob is typed and listed in .env.example and README.md. With an empty environment the
module still imports (pytest loads it first); the insecure development defaults it falls back
to are reported by `manage.py check --deploy`.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A real environment variable wins over the same name in .env. DJANGO_ENV_FILE names another
# file, or none when empty (`make test` runs that way, so tests ignore a developer's .env).
ENV_FILE = env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE, overwrite=False)

# --- Django core --------------------------------------------------------------------------

INSECURE_SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "tokens.exceptions.csrf_failure"
# Debug and error pages mask the App Certificate, every password (URLs included) and every
# other configured secret, wherever it appears.
DEFAULT_EXCEPTION_REPORTER = "tokens.reporting.SecretScrubbingReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "tokens.reporting.SecretsFilter"
# Every body this server takes is tiny: anything declared larger is refused (413) unread.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=16384)

INSTALLED_APPS = [
    "tokens.apps.TokenServerAdminConfig",  # django.contrib.admin with a lockout-aware login
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tokens.apps.TokensConfig",
    # Django's Tasks API (the backport of Django 6's django.tasks) with its database backend:
    # moderation actions run as tasks (tokens/tasks.py). After tokens, whose db_worker (the
    # backend's, plus recovery of actions whose worker died) overrides the backend's own.
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    # First, so the whole stack is timed; off by default.
    "tokens.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Browser clients on other origins: answers preflights, adds the CORS headers.
    "tokens.middleware.CorsMiddleware",  # django-cors-headers', reading Origin without request.headers
    "tokens.middleware.RequestGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Token endpoints, for requests with an API key: their own view, ahead of the layers below
    # (which only the admin and session logins use) and of URL resolution (tokens/joinpath/mount.py).
    "tokens.joinpath.mount.JoinPathMiddleware",
    "tokens.middleware.StaticFilesMiddleware",  # WhiteNoise, quiet without collectstatic
    "tokens.middleware.LazySessionMiddleware",  # sessions, read when used (the admin, session logins)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tokens.middleware.LazyMessageMiddleware",  # the admin's messages, made when used
]

ROOT_URLCONF = "tokenserver.urls"
WSGI_APPLICATION = "tokenserver.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -----------------------------------------------------------------------------
# Embedded default: SQLite next to manage.py. Scale-out: DATABASE_URL=postgres://...

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Django's backends, subclassed: the connection owns what the join path needs of it
# (tokenserver/databases/: SQLite's pragmas, writers' lock and checkpointer; prepared statements).
_ENGINES = {
    "django.db.backends.sqlite3": "tokenserver.databases.sqlite3",
    "django.db.backends.postgresql": "tokenserver.databases.postgresql",
}
DATABASES["default"]["ENGINE"] = _ENGINES.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
# Persistent connections: on this machine they more than doubled token requests/s.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "tokenserver.databases.postgresql":
    # An unreachable database host answers 503 within seconds instead of hanging a worker.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    # The join path's statements are prepared once per (persistent) connection: planning them
    # costs PostgreSQL more than running them. Only they are (psycopg prepares a statement
    # when asked; the threshold keeps it from doing so on its own). Off for a PgBouncer before
    # 1.21 in transaction mode, which cannot keep them.
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 2**31 - 1)
if DATABASES["default"]["ENGINE"] == "tokenserver.databases.sqlite3":
    # WAL, IMMEDIATE transactions and a 20 s busy timeout are the backend's defaults; its
    # checkpoints run in a thread of each process instead of inside a request's INSERT.
    DATABASES["default"].setdefault("OPTIONS", {})["background_checkpoints"] = env.bool(
        "DATABASE_SQLITE_BACKGROUND_CHECKPOINTS", default=True
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttle counters) ------------------------------------------------------------
# Local memory is per process: with several processes set CACHE_URL=redis://host:6379/0
# so every process counts against the same throttle budget.

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://tokenserver")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that is down or unreachable must cost a request milliseconds, not redis-py's
    # default 5 s: token requests then go on without their budget, logins answer 503.
    _cache_timeout = env.float("CACHE_SOCKET_TIMEOUT", default=0.5)
    CACHES["default"].setdefault("OPTIONS", {})
    CACHES["default"]["OPTIONS"].setdefault("socket_connect_timeout", _cache_timeout)
    CACHES["default"]["OPTIONS"].setdefault("socket_timeout", _cache_timeout)

# --- Auth, i18n, static -------------------------------------------------------------------

# Every password check counts against the client IP and the account first (tokens.backends).
AUTHENTICATION_BACKENDS = ["tokens.backends.GuardedModelBackend"]
LOGIN_FAILURE_LIMIT_PER_ACCOUNT = env.int("LOGIN_FAILURE_LIMIT_PER_ACCOUNT", default=5)
LOGIN_FAILURE_LIMIT_PER_IP = env.int("LOGIN_FAILURE_LIMIT_PER_IP", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

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
    # Not the manifest storage: a page must never 500 because collectstatic did not run.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# WhiteNoise serves the admin's and Swagger UI's files straight from the installed apps, so
# they work with or without collectstatic (which adds pre-compressed copies).
WHITENOISE_USE_FINDERS = True

# --- HTTPS and proxies --------------------------------------------------------------------

# How many reverse proxies (load balancers) sit in front of the app and append to
# X-Forwarded-For. 0: the client IP is REMOTE_ADDR and X-Forwarded-For is ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Browser clients (CORS) ---------------------------------------------------------------
# Origins whose web pages may call the API (exact, e.g. https://app.example.com) or match a
# regex; none by default. Requests without an Origin (native apps, curl, servers) are never
# refused for lacking one. Credentials travel in the Authorization header, not cookies.

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOWED_ORIGIN_REGEXES = env.list("CORS_ALLOWED_ORIGIN_REGEXES", default=[])
CORS_URLS_REGEX = r"^/(api/|rtctoken$|rtmtoken$|healthz$)"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type")
CORS_PREFLIGHT_MAX_AGE = 86400

# --- REST framework -----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tokens.joinpath.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["tokens.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_RATES": {
        "tokens": env.str("THROTTLE_TOKENS_RATE", default="120/min"),
        "auth": env.str("THROTTLE_AUTH_RATE", default="10/min"),
    },
    "EXCEPTION_HANDLER": "tokens.exceptions.api_exception_handler",
    # Errors that belong to no single field (a body that is not a JSON object) name "body".
    "NON_FIELD_ERRORS_KEY": "body",
    "DEFAULT_SCHEMA_CLASS": "tokens.schema.AutoSchema",
}

REST_KNOX = {
    # API tokens are stored as SHA-512 digests; the key is shown once, at login.
    "TOKEN_TTL": timedelta(seconds=env.int("AUTH_TOKEN_TTL", default=10 * 3600)),
    "AUTH_HEADER_PREFIX": "Token",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Agora token server",
    "DESCRIPTION": "Issues Agora RTC and RTM tokens to authenticated users.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public: a stale Authorization header must not block them.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Enum names the schema has always used, kept where newer fields share a field name.
    "ENUM_NAME_OVERRIDES": {
        "PartStateEnum": ["ok", "unavailable"],
        "RoleEnum": "tokens.choices.USER_ROLE_CHOICES",
        "RtcRtmTokenInputVersionEnum": ["007"],
    },
}

# --- Agora --------------------------------------------------------------------------------
# Missing or malformed credentials: token endpoints answer 503 agora_not_configured and
# `manage.py check` names the setting (tokens.E001...).

AGORA_APP_ID = env.str("AGORA_APP_ID", default="")
AGORA_APP_CERTIFICATE = env.str("AGORA_APP_CERTIFICATE", default="")
# Rotation (README, "Rotating the App Certificate"): the secondary certificate from Agora
# Console, and which of the two signs new tokens (primary | secondary); both verify.
AGORA_APP_CERTIFICATE_SECONDARY = env.str("AGORA_APP_CERTIFICATE_SECONDARY", default="")
AGORA_SIGNING_CERTIFICATE = env.str("AGORA_SIGNING_CERTIFICATE", default="primary")
AGORA_TOKEN_VERSION = env.str("AGORA_TOKEN_VERSION", default="007")
AGORA_COMPAT_TOKEN_VERSION = env.str("AGORA_COMPAT_TOKEN_VERSION", default="006")
AGORA_TOKEN_TTL = env.int("AGORA_TOKEN_TTL", default=3600)
AGORA_TOKEN_MAX_TTL = env.int("AGORA_TOKEN_MAX_TTL", default=86400)
AGORA_PUBLISHER_POLICY = env.str("AGORA_PUBLISHER_POLICY", default="open")
# open | rules (the admin's channel rules) | a dotted path to your own (user, channel, role) callable.
AGORA_CHANNEL_POLICY = env.str("AGORA_CHANNEL_POLICY", default="open")
# uids per user, main included: one per stream or device (screen share, phone, laptop).
AGORA_MAX_SLOTS = env.int("AGORA_MAX_SLOTS", default=4)
# Highest uid drawn for new identities: 2147483647 for fleets of Java, C# or Flutter-on-Android
# clients, which hold a uid in a signed 32-bit int.
AGORA_UID_MAX = env.int("AGORA_UID_MAX", default=4294967295)
# Secret of Agora Notifications (Console > Notifications): POST /webhooks/agora/ accepts only
# bodies signed with it (Agora-Signature-V2) and answers 404 while it is empty.
AGORA_NCS_SECRET = env.str("AGORA_NCS_SECRET", default="")
# Kick the joiner of every suspect join (a uid never issued here, without a live token for the
# channel, or already in it on another client) through the moderation service; off: flag only.
AGORA_AUTO_KICK_SUSPECT = env.bool("AGORA_AUTO_KICK_SUSPECT", default=False)
# Agora's Channel Management REST API (kick, ban, who is in a channel), tokens/agora_rest/:
# HTTP Basic auth with a RESTful API key from Agora Console (Developer Toolkit > RESTful API),
# not the App Certificate. Without both moderation is off and `manage.py check` warns (W030).
AGORA_CUSTOMER_ID = env.str("AGORA_CUSTOMER_ID", default="")
AGORA_CUSTOMER_SECRET = env.str("AGORA_CUSTOMER_SECRET", default="")
AGORA_REST_URL = env.str("AGORA_REST_URL", default="https://api.agora.io")
# Seconds to wait for an answer; Agora advises at least 20 so a ban's rule id is not lost.
AGORA_REST_TIMEOUT = env.float("AGORA_REST_TIMEOUT", default=20.0)
AGORA_REST_CONNECT_TIMEOUT = env.float("AGORA_REST_CONNECT_TIMEOUT", default=5.0)
# Attempts per call, the first included (1: no retry), on 5xx, 429, timeouts and lost connections.
AGORA_REST_RETRIES = env.int("AGORA_REST_RETRIES", default=4)
# Backoff between attempts: BACKOFF doubled each time, with jitter, at most BACKOFF_MAX seconds;
# a 429 whose Retry-After asks for longer than BACKOFF_MAX is handed back to the caller instead.
AGORA_REST_BACKOFF = env.float("AGORA_REST_BACKOFF", default=0.5)
AGORA_REST_BACKOFF_MAX = env.float("AGORA_REST_BACKOFF_MAX", default=8.0)

# Moderation (kick, ban, mute; tokens/tasks.py): attempts per action before it is given up,
# and the wait before the second, doubled after each failed attempt (at most 30 minutes).
MODERATION_ATTEMPTS = env.int("MODERATION_ATTEMPTS", default=8)
MODERATION_RETRY_DELAY = env.float("MODERATION_RETRY_DELAY", default=30.0)

# Tasks run by `manage.py db_worker` (make run and make serve start one beside the server),
# stored in the database: an action and its task are committed together.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

# Development account that `make run` creates (only while DJANGO_DEBUG is true).
DEMO_USERNAME = env.str("DEMO_USERNAME", default="demo")
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="")

# --- Metrics (Prometheus) -----------------------------------------------------------------
# GET /metrics and the counters behind it; off: nothing is recorded and /metrics is a 404.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
# Client IPs or networks (CIDR) that may read /metrics; empty: any client (see README Security).
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# Several worker processes: an empty directory per server start, where each process writes its
# counts and a scrape adds them up. prometheus_client reads it from the environment itself.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# --- Logging ------------------------------------------------------------------------------
# Tokens, certificates, passwords and API keys are never logged; audit lines carry the
# token's SHA-256 prefix only.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
