"""/api/v1/webhooks: subscriptions, secrets shown once and rotated, test, redeliver, replay, log."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(
    "url",
    [
        # NAT64 well-known prefix (RFC 6052): 169.254.169.254 and 10.0.0.1 behind a NAT64 gateway
        "https://[64:ff9b::a9fe:a9fe]/in",
        "https://[64:ff9b::a00:1]/in",
        # RFC 8215 local-use NAT64 prefix
        "https://[64:ff9b:1::808:808]/in",
        # 6to4 (RFC 3056) embedding 169.254.169.254
        "https://[2002:a9fe:a9fe::1]/in",
        # IPv4-compatible IPv6 (deprecated, RFC 4291 §2.5.5.1) of 127.0.0.1
        "https://[::7f00:1]/in",
        # IPv4-mapped (RFC 4291 §2.5.5.2) of 10.0.0.1
        "https://[::ffff:a00:1]/in",
        # Teredo (RFC 4380), site-local (RFC 3879)
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/in",
        "https://[fec0::1]/in",
    ],
)
def test_production_webhook_refuses_ipv6_forms_embedding_private_ipv4(app, admin, url):
    """In production an IPv6 literal carrying a private, loopback or link-local IPv4 address
    (NAT64, 6to4, IPv4-compatible or -mapped), a Teredo or a site-local one is refused on
    save, though Python 3.11's ``is_global`` calls several of them global."""
    app.config["SCIM_ENV"] = "production"
    resp = admin.post("/api/v1/webhooks", {"url": url})
    assert resp.status_code == 400, (url, resp.status_code, resp.get_data(as_text=True))
    assert "private, loopback, link-local or reserved" in resp.get_json()["detail"]
    assert ok(admin.get("/api/v1/webhooks"))["webhooks"] == []


def test_production_webhook_accepts_nat64_of_a_public_address(app, admin):
    """A NAT64 address of a public IPv4 address (what DNS64 answers on an IPv6-only network)
    is public; one carrying a private address passes once the operator allows its network."""
    app.config["SCIM_ENV"] = "production"
    assert (
        subscribe(admin, "https://[64:ff9b::808:808]/in")["url"] == "https://[64:ff9b::808:808]/in"
    )
    assert admin.post("/api/v1/webhooks", {"url": "https://[64:ff9b::a00:1]/in"}).status_code == 400
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = "10.0.0.0/8"
    assert subscribe(admin, "https://[64:ff9b::a00:1]/in")["url"] == "https://[64:ff9b::a00:1]/in"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://2130706433/in", "127.0.0.1"),  # one decimal number
        ("https://0x7f000001/in", "127.0.0.1"),  # hex
        ("https://0177.0.0.1/in", "127.0.0.1"),  # octal
        ("https://127.1/in", "127.0.0.1"),  # short form
        ("https://0/in", "0.0.0.0"),
        ("https://169.254.169.254./in", "169.254.169.254"),  # a trailing dot
        ("https://localhost/in", "127.0.0.1"),  # RFC 6761 §6.3: always loopback
        ("https://LocalHost./in", "127.0.0.1"),
        ("https://api.localhost/in", "127.0.0.1"),
    ],
)
def test_production_webhook_refuses_loopback_in_other_spellings(app, admin, url, address):
    """Every spelling getaddrinfo reads as a loopback or link-local address is refused when
    the subscription is saved (it would only fail later, delivery after delivery), and the
    answer names the address it stands for."""
    app.config["SCIM_ENV"] = "production"
    resp = admin.post("/api/v1/webhooks", {"url": url})
    assert resp.status_code == 400, (url, resp.status_code, resp.get_data(as_text=True))
    assert f"({address}) is a private" in resp.get_json()["detail"]
    assert ok(admin.get("/api/v1/webhooks"))["webhooks"] == []


def test_development_webhook_keeps_localhost(admin):
    """Development still takes localhost and loopback spellings (a receiver on this machine)."""
    for url in ("http://localhost:8080/in", "https://api.localhost/in", "http://127.1:8080/in"):
        assert subscribe(admin, url)["url"] == url


@pytest.mark.parametrize("before", ["2147483648", "9223372036854775808", "99999999999999999999"])
def test_delivery_log_before_past_the_column_is_400_not_500(app, admin, before):
    """GET .../deliveries?before=<past the integer column> is a 400 naming the parameter,
    not an overflow in the database and a 500; the largest id still pages."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    sub = subscribe(admin, "https://hooks.example.com/in")
    resp = admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries?before={before}")
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True))
    assert "2147483647" in resp.get_json()["detail"]["before"][0]
    top = admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries?before=2147483647")
    assert ok(top) == {"deliveries": []}


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
