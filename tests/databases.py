"""Django connections to a test's own SQLite files (not the test database)."""

from __future__ import annotations


def sqlite_connection(path, *, alias: str, options: dict | None = None, **settings):
    """A connection of the project's SQLite backend to `path` (a file or ":memory:"), not yet
    connected; `options` and `settings` add to its settings dict as in DATABASES."""
    from tokenserver.databases.sqlite3.base import DatabaseWrapper

    settings_dict = {
        "ENGINE": "tokenserver.databases.sqlite3", "NAME": str(path), "OPTIONS": options or {},
        "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False, "USER": "", "PASSWORD": "", "HOST": "", "PORT": "", "TEST": {}, **settings,
    }  # fmt: skip
    return DatabaseWrapper(settings_dict, alias=alias)
