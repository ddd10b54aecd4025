"""SSO state on the app (``sso.extension``) and SSO settings read by ``scim_server.config``."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from scim_server import create_app
from sso.extension import sso_extension

SETTINGS = {
    "SCIM_OAUTH_CODE_SECONDS": ("OAUTH_CODE_SECONDS", 60),
    "SCIM_OAUTH_ACCESS_TOKEN_SECONDS": ("OAUTH_ACCESS_TOKEN_SECONDS", 3600),
    "SCIM_OAUTH_ID_TOKEN_SECONDS": ("OAUTH_ID_TOKEN_SECONDS", 3600),
    "SCIM_OAUTH_KEY_GRACE_SECONDS": ("OAUTH_KEY_GRACE_SECONDS", 86400),
    "SCIM_SSO_SESSION_SECONDS": ("SSO_SESSION_SECONDS", 43200),
}


def _app(tmp_path: Path, name: str) -> Flask:
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path / name}.db"})


def test_each_app_keeps_its_own_sso_caches(tmp_path: Path) -> None:
    """Two apps in one process share no JWKS cache and no decrypted signing keys."""
    first, second = _app(tmp_path, "one"), _app(tmp_path, "two")
    assert sso_extension(first).jwks is not sso_extension(second).jwks
    mine = sso_extension(first).signing_keys
    assert mine is not sso_extension(second).signing_keys


def test_sso_settings_default_when_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SCIM_OAUTH_* / SCIM_SSO_SESSION_SECONDS the documented defaults apply."""
    for env in SETTINGS:
        monkeypatch.delenv(env, raising=False)
    app = _app(tmp_path, "defaults")
    for key, default in SETTINGS.values():
        assert app.config[key] == default


def test_sso_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each SCIM_OAUTH_* / SCIM_SSO_SESSION_SECONDS variable sets its app.config key."""
    for number, env in enumerate(SETTINGS, start=7):
        monkeypatch.setenv(env, str(number))
    monkeypatch.setenv("SCIM_SECRET_KEY", "from-the-environment")
    app = _app(tmp_path, "env")
    for number, (key, _default) in enumerate(SETTINGS.values(), start=7):
        assert app.config[key] == number
    assert app.config["OAUTH_KEY_SECRET"] == "from-the-environment"
