"""Credential settings: validation, and which sign-in methods apply to an organization."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect

from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.services import settings
from sso.connections.models import SsoConnection


def test_sso_table_names_match_the_sso_model():
    """services.settings reads sso_connections without importing sso: the names must agree."""
    mapper = inspect(SsoConnection)
    assert SsoConnection.__tablename__ == settings.SSO_CONNECTIONS.name
    for col in settings.SSO_CONNECTIONS.c:
        assert col.name in mapper.columns


def test_methods_default_by_whether_sso_is_connected(app, admin):
    with db.reader(app)() as s:
        current = settings.get_settings(s, admin.org_id)
        assert settings.sign_in_methods(s, admin.org_id, current) == "password_allowed"
    with db.reader(app)() as s, s.begin():
        conn = SsoConnection(
            org_id=admin.org_id, id=str(uuid.uuid4()), name="Entra", protocol="saml"
        )
        s.add(conn)
    with db.reader(app)() as s:
        current = settings.get_settings(s, admin.org_id)
        assert settings.sign_in_methods(s, admin.org_id, current) == "sso_only"
        assert not settings.passwords_allowed(s, admin.org_id, current)
    with db.reader(app)() as s, s.begin():
        s.get(SsoConnection, (admin.org_id, conn.id)).enabled = False
    with db.reader(app)() as s:
        assert settings.sign_in_methods(s, admin.org_id, current) == "password_allowed"
    body = admin.put("/api/v1/settings", {"sign_in_methods": "password_only"}).get_json()
    assert body["sign_in_methods"] == "password_only"
    assert admin.get("/api/v1/settings").get_json()["effective_sign_in_methods"] == "password_only"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sign_in_methods": "magic"}, "sign_in_methods must be null"),
        ({"credentials_delivery": "pigeon"}, "credentials_delivery must be one of"),
        ({"require_mfa": "yes"}, "require_mfa must be true or false"),
        ({"password_min_length": 4}, "password_min_length must be a whole number from 8"),
        ({"password_min_length": True}, "password_min_length must be a whole number"),
        ({"lockout_threshold": -1}, "lockout_threshold must be a whole number from 0"),
        ({"password_min_length": 100, "password_max_length": 64}, "must not exceed"),
        ({"lockout_minutes": 600, "lockout_max_minutes": 60}, "must not exceed"),
    ],
)
def test_bad_credential_settings_are_refused(raw, message):
    with pytest.raises(InvalidValueError) as err:
        settings.validate_settings(raw)
    assert message in str(err.value)


def test_policy_from_settings():
    loaded = settings.load_raw(
        {"password_min_length": 16, "password_history": 0, "refuse_common_passwords": False}
    )
    policy = loaded.password_policy()
    assert (policy.min_length, policy.max_length, policy.history, policy.refuse_common) == (
        16,
        128,
        0,
        False,
    )
    assert loaded.number("lockout_threshold") == 10
