"""django-scim2 as a peer in the benchmark: the smallest project that serves it.

Copied into a scratch directory at bench time (``bench.peers.install``), where
``makemigrations`` writes the models' migrations. The database comes from the
environment: ``PEER_SQLITE_PATH`` (SQLite in WAL mode, as the server uses it) or
``PEER_PG_URL`` (``postgresql://user@host:port/name``).
"""

import os
from urllib.parse import urlsplit

SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "bench-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_scim", "peerapp"]
MIDDLEWARE = ["bearer.BearerTokenMiddleware", "django_scim.middleware.SCIMAuthCheckMiddleware"]
AUTH_USER_MODEL = "peerapp.User"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "GROUP_MODEL": "peerapp.models.Group",
    "AUTHENTICATION_SCHEMES": [{"type": "oauthbearertoken", "name": "Bearer", "primary": True}],
}
LOGGING = {"version": 1, "disable_existing_loggers": True}

if os.environ.get("PEER_PG_URL"):
    _url = urlsplit(os.environ["PEER_PG_URL"])
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _url.path.lstrip("/"),
            "USER": _url.username or "postgres",
            "PASSWORD": _url.password or "",
            "HOST": _url.hostname or "127.0.0.1",
            "PORT": str(_url.port or 5432),
            "CONN_MAX_AGE": 600,  # its best case: a connection kept per worker
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("PEER_SQLITE_PATH", "peer.db"),
            "CONN_MAX_AGE": 600,
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA busy_timeout=10000;",
                "transaction_mode": "IMMEDIATE",
            },
        }
    }
