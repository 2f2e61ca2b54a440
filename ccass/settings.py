"""Settings for the terminal access portal, read from the environment.

With nothing set, the portal runs on its embedded default: SQLite, Celery tasks
run in-process, emails written to a local outbox. DATABASE_URL and REDIS_URL
switch to PostgreSQL and a real broker.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from common.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


TESTING = "pytest" in sys.modules or env_bool("TESTING")

SECRET_KEY = env_str("SECRET_KEY", "insecure-dev-key-" + "x" * 50)
DEBUG = env_bool("DEBUG", default=not env_str("SECRET_KEY"))
if not DEBUG and SECRET_KEY.startswith("insecure-dev-key"):
    raise ImproperlyConfigured("Set SECRET_KEY when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "two_factor",
    "csp",
    "ccass",
    "outbox",
    "participants",
    "audit",
    "migration",
    "authn",
    "dms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.csp.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "authn.middleware.SessionTimeoutMiddleware",
    "authn.middleware.ConnectivityTestMiddleware",
    "authn.middleware.NoStoreMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ccass.urls"
WSGI_APPLICATION = "ccass.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ccass.context_processors.portal",
                "authn.context_processors.session_timer",
            ],
        },
    },
    # The plain-text parts of emails (subjects and text bodies): nothing escaped, so that a
    # firm called "Smith & Co" is not "Smith &amp; Co" in a subject line (common/mail.py).
    {
        "NAME": "text",
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {"autoescape": False},
    },
]

# Inputs and labels written in Python, everything else as Django renders it (common/forms.py).
FORM_RENDERER = "common.forms.DirectRenderer"

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    # The embedded default keeps its database in var/, which a fresh clone lacks.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "var" / "portal.sqlite3",
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            # Tests on a file too, not SQLite's shared in-memory database: there a reader
            # locks a table against a writer in another thread (the bulk check's, without a
            # worker) and the write fails at once, where a file in WAL mode lets both go on.
            "TEST": {
                "NAME": str(Path(tempfile.gettempdir()) / f"ccass-test-{os.getpid()}.sqlite3")
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: a real broker when REDIS_URL is set, otherwise tasks run in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# Nothing reads task results: no result backend, so a request never waits on one.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL or env_bool("CELERY_TASK_ALWAYS_EAGER")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request that queues work must not wait on a broker that is down or frozen: one
# second to connect or answer, no publish retries. What was not queued is left to the
# outbox sweep below (every minute), so nothing is lost.
BROKER_TIMEOUT_SECONDS = env_int("BROKER_TIMEOUT_SECONDS", 1)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT_SECONDS
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
    "socket_timeout": BROKER_TIMEOUT_SECONDS,
    "retry_on_timeout": False,
    # A publish does not reconnect either: kombu's default retries a refused connection
    # with back-off, two seconds in all, with the broker down (measured).
    "max_retries": 0,
}
CELERY_TASK_PUBLISH_RETRY = False
# The outbox sweep: every minute, whatever a lost wake-up or a dead worker left behind.
OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 60)
# Beat's clock for crontab entries: Hong Kong, as TIME_ZONE.
CELERY_TIMEZONE = "Asia/Hong_Kong"
# The programme's milestones: carried out within this long of their planned time.
MILESTONE_CHECK_SECONDS = env_int("MILESTONE_CHECK_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {
        "task": "outbox.tasks.outbox_relay",
        "schedule": float(OUTBOX_SWEEP_SECONDS),
        # A sweep not picked up before the next one is due is dropped, not piled up.
        "options": {"expires": float(OUTBOX_SWEEP_SECONDS)},
    },
    "milestones-carry-out": {
        "task": "migration.tasks.milestones_carry_out_task",
        "schedule": float(MILESTONE_CHECK_SECONDS),
        "options": {"expires": float(MILESTONE_CHECK_SECONDS)},
    },
    # A connectivity-test session's account changes undone at its end (not carried forward).
    "connectivity-undo": {
        "task": "authn.tasks.connectivity_undo_task",
        "schedule": float(MILESTONE_CHECK_SECONDS),
        "options": {"expires": float(MILESTONE_CHECK_SECONDS)},
    },
    # Each firm's readiness at the end of the day, Hong Kong time (CELERY_TIMEZONE).
    "readiness-snapshot": {
        "task": "migration.tasks.readiness_snapshot_task",
        "schedule": crontab(hour=23, minute=50),
    },
    # The reminders before each deadline, in the morning (each firm once per deadline).
    "reminders-before-deadlines": {
        "task": "migration.tasks.reminders_before_deadlines_task",
        "schedule": crontab(hour=9, minute=0),
    },
}
# A firm not ready for a deadline is reminded once, this many days before it.
REMINDER_DAYS_BEFORE = env_int("REMINDER_DAYS_BEFORE", 7)

# The outbox (outbox/relay.py): a failed send is tried again after OUTBOX_RETRY_BASE_SECONDS,
# doubling up to OUTBOX_RETRY_MAX_SECONDS, until OUTBOX_DEADLINE_SECONDS after it was queued
# (an OTP email's deadline is its code's validity); then it is marked failed for staff.
OUTBOX_RETRY_BASE_SECONDS = env_int("OUTBOX_RETRY_BASE_SECONDS", 60)
OUTBOX_RETRY_MAX_SECONDS = env_int("OUTBOX_RETRY_MAX_SECONDS", 60 * 60)
OUTBOX_DEADLINE_SECONDS = env_int("OUTBOX_DEADLINE_SECONDS", 24 * 60 * 60)
# How long one relay task sends before it hands the rest to another (a chunk of a batch).
OUTBOX_RELAY_SECONDS = env_int("OUTBOX_RELAY_SECONDS", 30)
# Many due emails (a bulk file's) are shared out: one relay task per OUTBOX_RELAY_CHUNK
# emails, at most OUTBOX_RELAY_FANOUT at once (about the number of worker processes).
OUTBOX_RELAY_CHUNK = env_int("OUTBOX_RELAY_CHUNK", 200)
OUTBOX_RELAY_FANOUT = env_int("OUTBOX_RELAY_FANOUT", 4)
# A relay claims OUTBOX_RELAY_BATCH due emails at a time, prepares them together (the links
# of a batch of activations in two statements) and sends them one by one. Its claim lasts
# OUTBOX_CLAIM_SECONDS; past half of it the relay hands the rest back. Emails claimed by a
# worker that died are sent once their claim has lapsed.
OUTBOX_RELAY_BATCH = env_int("OUTBOX_RELAY_BATCH", 100)
OUTBOX_CLAIM_SECONDS = env_int("OUTBOX_CLAIM_SECONDS", 10)

AUTH_USER_MODEL = "participants.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "authn:staff-login"
LOGIN_REDIRECT_URL = "admin:index"

PASSWORD_HASHERS = [
    # Argon2id with ARGON2_* below; a hash made with other parameters (Django's own, 100 MiB
    # and 8 lanes, before) is upgraded at the user's next login. Tests swap in a fast hasher.
    "common.hashers.ConfiguredArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Argon2id at OWASP's memory (19 MiB) and lanes (1: one core per hash, so that two cores
# verify two logins at once), with 6 passes instead of OWASP's minimum of 2: `make bench`
# measured that this 2-core machine serves 33-36 full logins a second with them (goal 30)
# and that the hash is then 0.84-0.88 of a login's CPU (0.6 with 2 passes and 0.77-0.81
# with 5: the portal's four requests cost 7-11 ms of a core besides the hash). `check`
# refuses less than OWASP's minimum; README: what each costs here, and when to set fewer
# passes.
ARGON2_MEMORY_KIB = env_int("ARGON2_MEMORY_KIB", 19 * 1024)
ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 6)
ARGON2_PARALLELISM = env_int("ARGON2_PARALLELISM", 1)
if TESTING and not env_bool("STRONG_HASHER_IN_TESTS"):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "authn.validators.BreachedPasswordValidator"},
    {"NAME": "authn.validators.IdentityPasswordValidator"},
]
# A file of SHA-1 hashes of breached passwords, one upper-case hex hash a line,
# sorted (the "ordered by hash" download of Have I Been Pwned, counts stripped).
BREACHED_PASSWORDS_FILE = env_str(
    "BREACHED_PASSWORDS_FILE", str(BASE_DIR / "authn" / "data" / "breached-sha1.txt")
)

# Sessions: idle and absolute limits, enforced by authn.middleware.
SESSION_ENGINE = "authn.session_store"
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 15 * 60)
SESSION_ABSOLUTE_TIMEOUT = env_int("SESSION_ABSOLUTE_TIMEOUT", 12 * 60 * 60)
# Logged-in pages warn this long before the idle limit, with a "Stay logged in" button.
SESSION_IDLE_WARNING_SECONDS = env_int("SESSION_IDLE_WARNING_SECONDS", 60)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
# A refused form gets the portal's page (its layout, its language, a way back).
CSRF_FAILURE_VIEW = "ccass.errors.csrf_failure"

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if not DEBUG else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# A load balancer probes the health endpoints over plain HTTP; a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz)$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content security policy (django-csp): scripts and styles only from the portal's own
# static files, so an injected <script> or style attribute does nothing. The QR code is
# inline SVG made of presentation attributes, which style-src does not govern.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Login throttling: after LOGIN_FREE_FAILURES consecutive failures each further
# failure makes the account wait, doubling from LOGIN_LOCKOUT_BASE_SECONDS.
LOGIN_FREE_FAILURES = env_int("LOGIN_FREE_FAILURES", 5)
LOGIN_LOCKOUT_BASE_SECONDS = env_int("LOGIN_LOCKOUT_BASE_SECONDS", 30)
LOGIN_LOCKOUT_MAX_SECONDS = env_int("LOGIN_LOCKOUT_MAX_SECONDS", 60 * 60)
LOGIN_PENDING_TIMEOUT = env_int("LOGIN_PENDING_TIMEOUT", 5 * 60)
# How long a process keeps a terminal's phase for its login pages (migration.phases).
PHASE_CACHE_SECONDS = env_int("PHASE_CACHE_SECONDS", 5)

# django-otp
OTP_TOTP_ISSUER = "HKEX Terminal Access"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_EMAIL_TOKEN_VALIDITY = env_int("OTP_EMAIL_TOKEN_VALIDITY", 5 * 60)
OTP_EMAIL_COOLDOWN_DURATION = env_int("OTP_EMAIL_COOLDOWN_DURATION", 60)
OTP_EMAIL_THROTTLE_FACTOR = 1
BACKUP_CODE_COUNT = 10

# Bulk email registration: the largest file a maker may upload.
BULK_MAX_ROWS = env_int("BULK_MAX_ROWS", 20_000)
BULK_MAX_BYTES = env_int("BULK_MAX_BYTES", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = BULK_MAX_BYTES + 1024 * 1024
# Without a broker (the embedded default) a file is checked in a thread of the web process,
# so that its page shows progress; with one, by a worker. Tests check in-line.
BULK_CHECK_IN_THREAD = env_bool(
    "BULK_CHECK_IN_THREAD", default=CELERY_TASK_ALWAYS_EAGER and not TESTING
)

# The audit trail's CSV: up to this many rows stream in the request; more are written by a
# worker to a file under EXPORT_ROOT, which the DA downloads when it is ready.
AUDIT_EXPORT_STREAM_ROWS = env_int("AUDIT_EXPORT_STREAM_ROWS", 100_000)
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(BASE_DIR / "var" / "exports")))

ACTIVATION_LINK_HOURS = env_int("ACTIVATION_LINK_HOURS", 72)
SETUP_SESSION_SECONDS = env_int("SETUP_SESSION_SECONDS", 30 * 60)

# Smartcard login: the front proxy verifies the client certificate and passes
# it on; these headers are believed only from SMARTCARD_TRUSTED_PROXIES.
SMARTCARD_CERT_HEADER = env_str("SMARTCARD_CERT_HEADER", "HTTP_X_SSL_CLIENT_CERT")
SMARTCARD_VERIFY_HEADER = env_str("SMARTCARD_VERIFY_HEADER", "HTTP_X_SSL_CLIENT_VERIFY")
# The front proxies; from them alone X-Real-IP is taken as the client's address.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", ["127.0.0.1", "::1"])
SMARTCARD_TRUSTED_PROXIES = env_list("SMARTCARD_TRUSTED_PROXIES", TRUSTED_PROXIES)
SMARTCARD_DEMO = DEBUG and env_bool("SMARTCARD_DEMO", default=True)
# The secret the front proxy sends in PROXY_SECRET_HEADER on every request (deploy/nginx.conf):
# without it, card headers and X-Real-IP are not believed, whatever the address.
PROXY_SECRET = env_str("PROXY_SECRET")
PROXY_SECRET_HEADER = "HTTP_X_PROXY_SECRET"

# Email: SMTP when EMAIL_HOST is set, otherwise a local outbox folder.
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "HKEX Terminal Access <no-reply@ccass.example>")
EMAIL_OUTBOX_DIR = Path(env_str("EMAIL_OUTBOX_DIR", str(BASE_DIR / "var" / "outbox")))
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "common.mail.SmtpBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "common.mail.OutboxBackend"
# An SMTP server that stops answering must not hold the relay (and its row lock) for long.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hant", _("Traditional Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["ccass.formats"]
TIME_ZONE = "Asia/Hong_Kong"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "staticfiles")))
# With DEBUG off, collectstatic writes hashed names (portal.3f2a....css) that the front proxy
# may cache for a year; a new release has new names. DEBUG and tests serve the plain files.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage."
        + ("StaticFilesStorage" if DEBUG or TESTING else "ManifestStaticFilesStorage")
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

# Logs go to standard output/error for the process manager (journald) to collect: one JSON
# object a line (common.logging) in production, plain text in development.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not json or text")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "common.logging.JsonLinesFormatter"},
        "text": {"()": "common.logging.TextFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # The worker says which task it received and how it ended (celery at INFO); the
    # broker client's chatter stays out.
    "loggers": {"celery": {"level": "INFO"}, "kombu": {"level": "WARNING"}},
}
