"""SCIM ``password`` (RFC 7643 §4.1.1; Okta password sync): policy-checked, hashed, never returned."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, CredentialSchedule, User, UserPassword
from tests.support import USER_SCHEMA, assert_error
from tests.support.credentials import password_verifies, set_settings

STRONG = "Harbour-lantern-quiet-88"


def _body(user_name: str, **attrs):
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "emails": [{"value": user_name, "primary": True}],
        **attrs,
    }


def _no_secret_anywhere(app, org_id: str, secret: str) -> None:
    """Neither the SCIM document nor any audit event holds the password or a key for it."""
    with db.reader(app)() as session:
        for user in session.scalars(select(User).where(User.org_id == org_id)):
            assert "password" not in user.data and secret not in json.dumps(user.data)
        for event in session.scalars(select(AuditEvent).where(AuditEvent.org_id == org_id)):
            dumped = json.dumps(event.changes or {}) + (event.detail or "")
            assert secret not in dumped
            assert "password" not in (event.changes or {}) or event.action.startswith(
                "user.password"
            )


def test_create_with_a_password_stores_an_argon2_hash_and_no_welcome(app, scim, session):
    """POST with a strong password: 201, never returned, hashed (not temporary), no welcome mail."""
    resp = scim.post("/scim/v2/Users", _body("ann@example.com", password=STRONG))
    assert resp.status_code == 201
    created = resp.get_json()
    assert "password" not in created and STRONG not in resp.get_data(as_text=True)
    stored = session.get(UserPassword, (scim.org_id, created["id"]))
    assert stored.hash.startswith("$argon2id$") and not stored.temporary
    assert password_verifies(app, scim.org_id, created["id"], STRONG)
    assert session.get(CredentialSchedule, (scim.org_id, created["id"])) is None
    got = scim.get(f"/scim/v2/Users/{created['id']}", query_string={"attributes": "password"})
    assert "password" not in got.get_json()
    _no_secret_anywhere(app, scim.org_id, STRONG)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-1", "length"),
        ("password1234", "common"),
        ("ann@example.com-2024", "personal"),
        ("x" * 2_000_000, "length"),
    ],
    ids=["too-short", "common", "contains-email", "a-megabyte"],
)
def test_a_password_the_policy_refuses_is_a_400_naming_the_rule(app, scim, session, password, rule):
    """400 invalidValue whose detail names the rule; the user is not created."""
    resp = scim.post("/scim/v2/Users", _body("ann@example.com", password=password))
    if len(password) > 1_000_000:
        assert resp.status_code in (400, 413)
    else:
        body = assert_error(resp, 400, "invalidValue")
        assert f"({rule} rule)" in body["detail"]
    assert session.scalar(select(User).where(User.org_id == scim.org_id)) is None


def test_put_and_patch_set_the_password_and_the_same_one_again_changes_nothing(
    app, scim, admin, session
):
    """PUT and PATCH replace it; an echoed password is a no-change; history refuses an old one."""
    created = scim.post("/scim/v2/Users", _body("bo@example.com")).get_json()
    uid = created["id"]
    put = scim.put(f"/scim/v2/Users/{uid}", _body("bo@example.com", password=STRONG))
    assert put.status_code == 200 and "password" not in put.get_json()
    assert password_verifies(app, scim.org_id, uid, STRONG)
    second = "Cobalt-pebble-forest-27"
    patch = scim.patch_ops(
        f"/scim/v2/Users/{uid}", {"op": "replace", "path": "password", "value": second}
    )
    assert patch.status_code == 200 and "password" not in patch.get_json()
    assert password_verifies(app, scim.org_id, uid, second)
    version = patch.get_json()["meta"]["version"]
    again = scim.patch_ops(
        f"/scim/v2/Users/{uid}", {"op": "replace", "path": "password", "value": second}
    )
    assert again.status_code == 200 and again.get_json()["meta"]["version"] == version
    old = scim.patch_ops(
        f"/scim/v2/Users/{uid}", {"op": "replace", "path": "password", "value": STRONG}
    )
    assert "(history rule)" in assert_error(old, 400, "invalidValue")["detail"]
    assert password_verifies(app, scim.org_id, uid, second)
    _no_secret_anywhere(app, scim.org_id, STRONG)
    _no_secret_anywhere(app, scim.org_id, second)


def test_sso_only_organizations_refuse_a_password_saying_why(app, scim, admin, session):
    """sign_in_methods=sso_only: 400 mutability, the message names single sign-on; nothing stored."""
    set_settings(admin, sign_in_methods="sso_only")
    resp = scim.post("/scim/v2/Users", _body("cy@example.com", password=STRONG))
    body = assert_error(resp, 400, "mutability")
    assert "single sign-on" in body["detail"]
    created = scim.post("/scim/v2/Users", _body("cy@example.com")).get_json()
    patch = scim.patch_ops(
        f"/scim/v2/Users/{created['id']}", {"op": "replace", "path": "password", "value": STRONG}
    )
    assert_error(patch, 400, "mutability")
    assert session.scalar(select(UserPassword)) is None


def test_a_password_ends_awaiting_new_password(app, scim, admin, session):
    """A user waiting to choose a password gets one from the IdP: back to PROVISIONED."""
    created = scim.post("/scim/v2/Users", _body("di@example.com")).get_json()
    uid = created["id"]
    resp = admin.post(f"/api/v1/users/{uid}/credentials/send", None)
    assert resp.status_code == 202 and resp.get_json()["status"] == "AWAITING_NEW_PASSWORD"
    scim.patch_ops(f"/scim/v2/Users/{uid}", {"op": "replace", "path": "password", "value": STRONG})
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, uid)).status == "PROVISIONED"
        assert not s.get(UserPassword, (scim.org_id, uid)).temporary


def test_a_non_string_password_is_refused(scim, session):
    """{"password": 12345}: 400, nothing created."""
    resp = scim.post("/scim/v2/Users", _body("el@example.com", password=123456789012))
    assert resp.status_code == 400 and resp.get_json()["scimType"] == "invalidValue"
    assert session.scalar(select(User)) is None
