"""/api/v1/webhooks: subscriptions, secrets shown once and rotated, test, redeliver, replay, log."""

from __future__ import annotations

from standardwebhooks import Webhook

from tests.support.admin_api import ok, person
from tests.support.webhooks import subscribe, webhook_receiver, webhook_worker


def test_create_list_update_delete(admin):
    """The secret is in the POST answer only; PATCH changes fields; DELETE removes it."""
    created = subscribe(admin, "https://hooks.example.com/in", ["user.created", "user.deleted"])
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["user.created", "user.deleted"] and created["enabled"] is True
    listed = ok(admin.get("/api/v1/webhooks"))["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert all("secret" not in w for w in listed)
    url = f"/api/v1/webhooks/{created['id']}"
    assert "secret" not in ok(admin.get(url))
    patched = ok(admin.patch(url, {"events": ["*"], "enabled": False, "description": "CRM"}))
    assert (patched["events"], patched["enabled"], patched["description"]) == (["*"], False, "CRM")
    alerted = ok(admin.patch(url, {"alert_email": "ops@acme.test"}))
    assert alerted["alert_email"] == "ops@acme.test"
    assert admin.delete(url).status_code == 204
    assert admin.get(url).status_code == 404
    assert ok(admin.get("/api/v1/webhooks"))["webhooks"] == []


def test_default_is_every_event(admin):
    """No events given: ["*"]."""
    assert subscribe(admin, "https://hooks.example.com/in")["events"] == ["*"]


def test_bad_subscriptions_are_refused_and_change_nothing(admin):
    """Plain http to a public host, credentials, unknown types, '*' mixed in, junk: 400."""
    bodies = [
        {"url": "http://hooks.example.com/in"},
        {"url": "https://user:pw@hooks.example.com/in"},
        {"url": "ftp://hooks.example.com/in"},
        {"url": "not a url"},
        {"url": "https://hooks.example.com/in", "events": ["user.exploded"]},
        {"url": "https://hooks.example.com/in", "events": ["*", "user.created"]},
        {"url": "https://hooks.example.com/in", "events": []},
        {"url": "https://hooks.example.com/in", "enabled": "yes"},
        {"url": "https://hooks.example.com/in", "secret": "whsec_mine"},
        {"url": "https://hooks.example.com/in", "alert_email": "not an address"},
        {"url": "https://hooks.example.com/in", "alert_email": "a@b.test\r\nBcc: x@y.test"},
        {"events": ["*"]},
    ]
    for body in bodies:
        resp = admin.post("/api/v1/webhooks", body)
        assert resp.status_code == 400, (body, resp.get_data(as_text=True))
        assert resp.get_json()["detail"], body
    assert ok(admin.get("/api/v1/webhooks"))["webhooks"] == []
    created = subscribe(admin, "https://hooks.example.com/in")
    resp = admin.patch(f"/api/v1/webhooks/{created['id']}", {"url": "http://10.0.0.1/in"})
    assert resp.status_code == 400
    assert ok(admin.get(f"/api/v1/webhooks/{created['id']}"))["url"] == created["url"]


def test_production_refuses_private_addresses_unless_allowed(app, admin):
    """In production: https only, no private literal address unless its network is allowed."""
    app.config["SCIM_ENV"] = "production"
    for url in ("http://localhost:8080/in", "https://10.1.2.3/in", "https://[::1]/in"):
        resp = admin.post("/api/v1/webhooks", {"url": url})
        assert resp.status_code == 400, url
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = "10.0.0.0/8"
    assert subscribe(admin, "https://10.1.2.3/in")["url"] == "https://10.1.2.3/in"


def test_other_organizations_webhooks_are_not_found(admin, other_scim, client, app):
    """A webhook id of another organization is a 404 for every verb."""
    from scim_server.db import db
    from scim_server.services.tokens import create_token
    from tests.support import Scim

    with db.reader(app)() as s:
        _token, secret = create_token(s, other_scim.org_id, "other admin", kind="admin")
    other_admin = Scim(client, secret, other_scim.org_id)
    theirs = subscribe(other_admin, "https://hooks.example.com/in")
    url = f"/api/v1/webhooks/{theirs['id']}"
    assert admin.get(url).status_code == 404
    assert admin.patch(url, {"enabled": False}).status_code == 404
    assert admin.delete(url).status_code == 404
    assert admin.post(f"{url}/test", None).status_code == 404
    assert admin.get(f"{url}/deliveries").status_code == 404


def test_send_test_event_is_signed_and_logged(app, admin):
    """send test: a webhook.test message that verifies with standardwebhooks; in the log."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        accepted = ok(admin.post(f"/api/v1/webhooks/{sub['id']}/test", None), 202)
        assert webhook_worker(app).send_webhooks() == 1
        (payload,) = receiver.verified(sub["secret"])
    assert payload["type"] == "webhook.test" and payload["id"] == accepted["event_id"]
    (entry,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert (entry["state"], entry["attempts"], entry["event_type"]) == (
        "delivered",
        1,
        "webhook.test",
    )
    (attempt,) = entry["log"]
    assert attempt["status"] == 204 and attempt["latency_ms"] >= 0 and attempt["error"] is None


def test_rotation_keeps_the_old_secret_valid(app, admin, scim):
    """After a rotation both secrets verify (two signatures); the new one is shown once."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        rotated = ok(admin.post(f"/api/v1/webhooks/{sub['id']}/rotate-secret", None))["secret"]
        assert rotated.startswith("whsec_") and rotated != sub["secret"]
        person(scim, "ann@example.com")
        webhook_worker(app).send_webhooks()
        (message,) = receiver.accepted()
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (sub["secret"], rotated):
        assert Webhook(secret).verify(message.body, message.headers)["type"] == "user.created"
    view = ok(admin.get(f"/api/v1/webhooks/{sub['id']}"))
    assert view["previous_secret_expires_at"] is not None and "secret" not in view


def test_redeliver_and_replay(app, admin, scim):
    """redeliver sends one event again (same id); replay sends every event after a cursor."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        for name in ("ann", "bob", "cat"):
            person(scim, f"{name}@example.com")
        worker = webhook_worker(app)
        assert worker.send_webhooks() == 3
        first = receiver.verified(sub["secret"])[0]
        again = ok(
            admin.post(f"/api/v1/webhooks/{sub['id']}/redeliver", {"event_id": first["id"]}), 202
        )
        assert again["event_id"] == first["id"]
        assert ok(admin.post(f"/api/v1/webhooks/{sub['id']}/replay", {"after": "1"}), 202) == {
            "queued": 2
        }
        assert worker.send_webhooks() == 3
        got = [p["data"]["state"]["userName"] for p in receiver.verified(sub["secret"])]
    assert got == [f"{n}@example.com" for n in ("ann", "bob", "cat", "ann", "bob", "cat")]
    missing = admin.post(f"/api/v1/webhooks/{sub['id']}/redeliver", {"event_id": "evt_nope"})
    assert missing.status_code == 404
    assert admin.post(f"/api/v1/webhooks/{sub['id']}/replay", {"after": "x"}).status_code == 400


def test_changes_to_webhooks_are_audited(admin):
    """Create, update, rotate and delete each write their audit event."""
    sub = subscribe(admin, "https://hooks.example.com/in")
    url = f"/api/v1/webhooks/{sub['id']}"
    ok(admin.patch(url, {"enabled": False}))
    ok(admin.post(f"{url}/rotate-secret", None))
    assert admin.delete(url).status_code == 204
    events = ok(admin.get("/api/v1/audit", query_string={"resource_id": sub["id"]}))["events"]
    actions = [e["action"] for e in reversed(events)]
    assert actions == [
        "webhook.create",
        "webhook.update",
        "webhook.rotate_secret",
        "webhook.delete",
    ]
    assert all("whsec_" not in str(e) for e in events)
