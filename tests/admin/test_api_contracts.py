"""The admin API keeps its published contract (found by a probe as an integrator): answers
as /api/v1/openapi.json describes them, strict JSON booleans, contact e-mails that are
addresses, refusals in the trail of the resource they were about, no update event for a
save that changed nothing, and errors that name what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
from sqlalchemy import func, select

from scim_server.models import Contact
from tests.sso.saml_idp import FakeIdp
from tests.support.admin_api import ok, person

SPEC = "/api/v1/openapi.json"


def _schema_errors(client: Any, path: str, method: str, resp: Any) -> list[str]:
    """What in ``resp`` (JSON) breaks the response schema the description gives it."""
    spec = client.get(SPEC).get_json()
    op = spec["paths"][path][method]
    documented = op["responses"][str(resp.status_code)]
    schema = {
        **documented["content"]["application/json"]["schema"],
        "components": spec["components"],
    }
    validator = jsonschema_rs.Draft202012Validator(schema)
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(resp.get_json())]


def _settings_body(admin: Any, **changes: Any) -> dict[str, Any]:
    current = ok(admin.get("/api/v1/settings"))
    current.pop("default_groups_display", None)
    current.pop("effective_sign_in_methods", None)
    return {**current, **changes}


# -- 1. The OpenAPI description and the answers disagree --------------------------------


def test_bulk_schedule_results_carry_the_documented_user_id(app, scim, admin, client):
    """POST /credentials/schedule: each result has `user_id`, as ScheduleResultOut documents.

    The answer's results carry the id as `id` instead, so a client generated from the
    description (required `user_id`) rejects every bulk answer.
    """
    user = person(scim, "bob@example.com")
    send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    resp = admin.post(
        "/api/v1/credentials/schedule", {"user_ids": [user["id"], "missing"], "send_at": send_at}
    )
    assert resp.status_code == 200
    assert [r.get("user_id") for r in resp.get_json()["results"]] == [user["id"], "missing"]
    assert _schema_errors(client, "/api/v1/credentials/schedule", "post", resp) == []


def test_settings_answer_matches_its_documented_schema(admin, client):
    """GET /settings of a new organization: `sign_in_methods` is null ("automatic").

    The description says `type: [string, null]` with `enum` of the three methods only, so
    null (the default, documented as "null: automatic") fails the documented schema.
    """
    resp = admin.get("/api/v1/settings")
    assert resp.status_code == 200 and resp.get_json()["sign_in_methods"] is None
    assert _schema_errors(client, "/api/v1/settings", "get", resp) == []


# -- 2. Refusals in the log --------------------------------------------------------------


def test_a_refused_sso_connection_change_is_in_that_connections_audit_trail(admin):
    """README: a refused change writes a failure event; it names the resource it was about.

    A refused PATCH /sso/connections/<id> is logged with resource_type and resource_id
    null (admin.common._resource_id knows no ``connection_id``), so neither the
    connection's timeline nor ``/audit?resource_id=`` shows the attempt, while the
    successful update is logged as SsoConnection <id>.
    """
    conn = ok(
        admin.post(
            "/api/v1/sso/connections",
            {"protocol": "saml", "name": "Entra", "metadata_xml": FakeIdp().metadata_xml()},
        ),
        201,
    )
    resp = admin.patch(f"/api/v1/sso/connections/{conn['id']}", {"name": 5})
    assert resp.status_code == 400
    timeline = ok(admin.get(f"/api/v1/audit/timeline/{conn['id']}"))["events"]
    refused = [e for e in timeline if e["action"] == "sso.connection.update"]
    assert [e["outcome"] for e in refused] == ["failure"]
    assert refused[0]["resource_type"] == "SsoConnection"


# -- 3. Bad input that is stored ---------------------------------------------------------


@pytest.mark.parametrize("email", ["not an email", "a@@example.com", "<script>@example.com"])
def test_a_contact_email_that_is_not_an_address_is_400_and_creates_nothing(admin, session, email):
    """POST /contacts {"email": "not an email"}: 400, no contact.

    It is stored as given, and Enable access then makes an account whose username and
    SCIM userName are that text (" not an email " with its spaces), with a welcome mail
    scheduled that can never be sent ("The user has no e-mail address").
    """
    before = session.scalar(select(func.count()).select_from(Contact))
    session.rollback()
    resp = admin.post("/api/v1/contacts", {"kind": "person", "name": "Bob", "email": email})
    assert resp.status_code == 400, resp.get_json()
    assert "email" in str(resp.get_json()["detail"])
    assert session.scalar(select(func.count()).select_from(Contact)) == before


def test_a_contact_email_is_never_stored_with_surrounding_spaces(admin):
    """POST /contacts {"email": " bob@example.com "}: refused, or stored as bob@example.com.

    It is stored with its spaces; Enable access then gives the account the username and
    SCIM userName " bob@example.com " (a sign-in by "bob@example.com" does not find it).
    """
    resp = admin.post(
        "/api/v1/contacts", {"kind": "person", "name": "Bob", "email": " bob@example.com "}
    )
    assert resp.status_code == 400 or resp.get_json()["email"] == "bob@example.com"


def test_patching_a_contact_email_to_a_non_address_is_400_and_changes_nothing(admin):
    """PATCH /contacts/<id> {"email": "not an email"}: 400; the contact keeps its address."""
    contact = ok(
        admin.post(
            "/api/v1/contacts", {"kind": "person", "name": "Bob", "email": "bob@example.com"}
        ),
        201,
    )
    resp = admin.patch(f"/api/v1/contacts/{contact['id']}", {"email": "not an email"})
    assert resp.status_code == 400
    assert ok(admin.get(f"/api/v1/contacts/{contact['id']}"))["email"] == "bob@example.com"


@pytest.mark.parametrize("value", [0, 1])
def test_webhook_enabled_must_be_a_json_boolean(admin, value):
    """PATCH /webhooks/<id> {"enabled": 0}: 400, as "no"/"off"/"False" already are.

    admin/common.py: bodies are parsed strictly, "an admin tool must not have a typo
    guessed at"; settings refuses 1 for a boolean ("must be true or false"), but the
    webhook's ``fields.Boolean(truthy={True}, falsy={False})`` takes 0/1 (1 == True and
    hash(1) == hash(True), so 1 is in {True}) and disables (or enables) the subscription.
    """
    hook = ok(admin.post("/api/v1/webhooks", {"url": "http://127.0.0.1/x", "events": ["*"]}), 201)
    resp = admin.patch(f"/api/v1/webhooks/{hook['id']}", {"enabled": value})
    assert resp.status_code == 400
    assert ok(admin.get(f"/api/v1/webhooks/{hook['id']}"))["enabled"] is True


def test_enable_access_override_must_be_a_json_boolean(admin):
    """POST /contacts/<id>/access {"override": 1}: 400, not taken as true.

    `override` overrides the warnings (here: the e-mail is another contact's); a 1 (or 0)
    is taken as a boolean by marshmallow and the account is made over the warning.
    """
    ok(
        admin.post("/api/v1/contacts", {"kind": "person", "name": "A", "email": "x@example.com"}),
        201,
    )
    second = ok(
        admin.post("/api/v1/contacts", {"kind": "person", "name": "B", "email": "x@example.com"}),
        201,
    )
    resp = admin.post(f"/api/v1/contacts/{second['id']}/access", {"override": 1})
    assert resp.status_code == 400, resp.get_json()
    assert ok(admin.get(f"/api/v1/contacts/{second['id']}")).get("user_id") is None


def _actions_since(admin: Any, count: int) -> list[tuple[str, Any]]:
    from tests.support.admin_api import events

    return [(e["action"], e.get("changes")) for e in events(admin)[count:]]


def test_a_settings_put_that_changes_nothing_writes_no_update_event(admin):
    """PUT /settings with the document GET returned: no `settings.update` event.

    As a license or contact save that changes nothing ("no event saying it did",
    services.directory.update_contact), a no-op save must not log an update; it logs
    `settings.update` with `changes: {}`, an event claiming a change nobody made.
    """
    from tests.support.admin_api import events

    body = _settings_body(admin)
    count = len(events(admin))
    ok(admin.put("/api/v1/settings", body))
    assert _actions_since(admin, count) == []


def test_a_webhook_patch_that_changes_nothing_writes_no_update_event(admin):
    """PATCH /webhooks/<id> {} (or the values it has): no `webhook.update` event with `{}`."""
    from tests.support.admin_api import events

    hook = ok(admin.post("/api/v1/webhooks", {"url": "http://127.0.0.1/x", "events": ["*"]}), 201)
    count = len(events(admin))
    ok(admin.patch(f"/api/v1/webhooks/{hook['id']}", {"enabled": True}))
    ok(admin.patch(f"/api/v1/webhooks/{hook['id']}", {}))
    assert _actions_since(admin, count) == []


def test_an_invalid_me_address_is_named_as_such(scim, admin):
    """POST /users/<id>/credentials/send {"to": "me", "me": "a@example.com, b@example.com"}: 400
    saying the address given as "me" is not one address.

    The answer tells the admin to give "me" and blames the admin token's name, though "me"
    was given (credentials_api._recipient rewrites every refusal of check_recipient).
    """
    user = person(scim, "bob@example.com")
    resp = admin.post(
        f"/api/v1/users/{user['id']}/credentials/send",
        {"to": "me", "me": "a@example.com, b@example.com"},
    )
    assert resp.status_code == 400
    assert "token's name" not in resp.get_json()["detail"]
