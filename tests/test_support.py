"""The shared-app isolation the fixtures rely on: what one test changes, the next does not see."""

from __future__ import annotations

from flask import Flask

from scim_server.db import EXTENSION
from tests.support import isolated


def test_isolated_restores_config_and_extensions(shared_app: Flask) -> None:
    """Config keys set or changed and extensions replaced or added all go back afterwards."""
    before_limit = shared_app.config["RATE_LIMIT_PER_MINUTE"]
    before_db = shared_app.extensions[EXTENSION]
    before_limiter = shared_app.extensions["scim_ratelimit"]
    with isolated(shared_app) as app:
        limiter = app.extensions["scim_ratelimit"]
        assert limiter is not before_limiter  # a new app's empty override cache
        app.config["RATE_LIMIT_PER_MINUTE"] = before_limit + 7
        app.config["SOMETHING_NEW"] = True
        app.extensions[EXTENSION] = object()
        app.extensions["test_cache"] = {"k": 1}
        app.extensions["scim_ratelimit"].cache_seconds = 0
    assert shared_app.config["RATE_LIMIT_PER_MINUTE"] == before_limit
    assert "SOMETHING_NEW" not in shared_app.config
    assert shared_app.extensions[EXTENSION] is before_db
    assert "test_cache" not in shared_app.extensions
    assert shared_app.extensions["scim_ratelimit"] is before_limiter


def test_isolated_empties_a_cache_a_test_filled(shared_app: Flask) -> None:
    """Entries a test adds to a dict kept in ``app.extensions`` are gone for the next test."""
    with isolated(shared_app) as outer:
        outer.extensions["test_cache"] = {}
        with isolated(outer) as inner:
            inner.extensions["test_cache"]["org-1"] = "cached"
        assert outer.extensions["test_cache"] == {}
