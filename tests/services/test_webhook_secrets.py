"""Webhook signing secrets at rest: sealed in the database, opened only to sign, bound to a row."""

from __future__ import annotations

import base64
import logging
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import text, update
from standardwebhooks import Webhook

from scim_server.db import db, utcnow
from scim_server.models import WebhookSubscription
from tests.support import Clock, Scim
from tests.support.admin_api import ok, person
from tests.support.webhooks import (
    run_until_disabled,
    subscribe,
    webhook_receiver,
    webhook_worker,
)

FIRST = "first server secret"
SECOND = "second server secret"
HOUR = 3600


@pytest.fixture
def app(app: Flask) -> Flask:
    """The suite's app with a fixed encryption secret (not a key file under instance/)."""
    app.config["OAUTH_KEY_SECRET"] = FIRST
    return app


def _stored(app: Flask, sub_id: str) -> dict[str, Any]:
    """The secret columns as a database dump would show them."""
    with db.reader(app)() as s:
        row = s.execute(
            text("SELECT secret, previous_secret FROM webhook_subscriptions WHERE id = :id"),
            {"id": sub_id},
        ).one()
    return {"secret": row[0], "previous_secret": row[1]}


def _store(app: Flask, sub_id: str, **columns: Any) -> None:
    """Write columns directly (a row from before 0040, or an attacker with database access)."""
    with db.reader(app)() as s, s.begin():
        s.execute(
            update(WebhookSubscription).where(WebhookSubscription.id == sub_id).values(**columns)
        )


def _assert_sealed(stored: str | None, *secrets: str) -> None:
    """A v1 ciphertext holding none of ``secrets``, neither as text nor as their key bytes."""
    assert stored is not None and stored.startswith("enc:v1:"), stored
    for secret in secrets:
        key = secret.removeprefix("whsec_")
        assert secret not in stored and key[:16] not in stored
        assert base64.urlsafe_b64encode(base64.b64decode(key)).decode()[:16] not in stored


def _audit(admin: Scim, sub_id: str) -> list[dict[str, Any]]:
    events = ok(admin.get("/api/v1/audit", query_string={"resource_id": sub_id}))["events"]
    return list(reversed(events))


# -- stored sealed, used in clear ----------------------------------------------------------------


def test_secret_is_sealed_at_rest_and_messages_still_verify(app, admin, scim):
    """The column holds a v1 ciphertext, not the whsec_ secret; no view shows either; a delivery
    is signed with the secret shown at creation."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        stored = _stored(app, sub["id"])
        _assert_sealed(stored["secret"], sub["secret"])
        assert stored["previous_secret"] is None
        person(scim, "ann@example.com")
        assert webhook_worker(app).send_webhooks() == 1
        (payload,) = receiver.verified(sub["secret"])
    assert payload["type"] == "user.created"
    url = f"/api/v1/webhooks/{sub['id']}"
    answers = [
        admin.get("/api/v1/webhooks"),
        admin.get(url),
        admin.patch(url, {"description": "CRM"}),
        admin.get(f"{url}/deliveries"),
        admin.get("/api/v1/audit", query_string={"resource_id": sub["id"]}),
    ]
    for resp in answers:
        assert resp.status_code == 200
        body = resp.get_data(as_text=True)
        assert "whsec_" not in body and "enc:v1:" not in body, body


def test_rotation_seals_both_secrets_and_the_previous_still_signs(app, admin, scim):
    """Rotated: both columns sealed (the old secret sealed again for its new column); messages
    carry two signatures, one per secret, each verifying."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        before = _stored(app, sub["id"])["secret"]
        rotated = ok(admin.post(f"/api/v1/webhooks/{sub['id']}/rotate-secret", None))["secret"]
        stored = _stored(app, sub["id"])
        _assert_sealed(stored["secret"], rotated, sub["secret"])
        _assert_sealed(stored["previous_secret"], rotated, sub["secret"])
        assert before not in (stored["secret"], stored["previous_secret"])
        person(scim, "ann@example.com")
        assert webhook_worker(app).send_webhooks() == 1
        (message,) = receiver.accepted()
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (sub["secret"], rotated):
        assert Webhook(secret).verify(message.body, message.headers)["type"] == "user.created"
    assert all("whsec_" not in str(e) for e in _audit(admin, sub["id"]))


# -- values written before encryption existed ----------------------------------------------------


def test_legacy_clear_secret_still_signs_and_the_next_write_seals_it(app, admin, scim, caplog):
    """A clear secret (a row from before 0040) signs, with a warning that names no secret; the
    next PATCH seals it (audited) and messages still verify with it."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        _store(app, sub["id"], secret=sub["secret"])
        person(scim, "ann@example.com")
        worker = webhook_worker(app)
        with caplog.at_level(logging.WARNING, logger="scim_server.services.webhook_secrets"):
            assert worker.send_webhooks() == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("stored in clear" in w and "encrypt-secrets" in w for w in warnings)
        assert all("whsec_" not in w for w in warnings)
        assert len(receiver.verified(sub["secret"])) == 1

        ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"description": "CRM"}))
        _assert_sealed(_stored(app, sub["id"])["secret"], sub["secret"])
        update = [e for e in _audit(admin, sub["id"]) if e["action"] == "webhook.update"]
        assert update[-1]["changes"]["secret"] == "(encrypted at rest)"
        person(scim, "bob@example.com")
        assert worker.send_webhooks() == 1
        assert len(receiver.verified(sub["secret"])) == 2


def test_rotating_a_legacy_clear_secret_seals_it_as_the_previous_one(app, admin, scim):
    """Rotation of a clear secret: the old one sealed into previous_secret, still signing."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        _store(app, sub["id"], secret=sub["secret"])
        rotated = ok(admin.post(f"/api/v1/webhooks/{sub['id']}/rotate-secret", None))["secret"]
        stored = _stored(app, sub["id"])
        _assert_sealed(stored["secret"], rotated, sub["secret"])
        _assert_sealed(stored["previous_secret"], rotated, sub["secret"])
        person(scim, "ann@example.com")
        assert webhook_worker(app).send_webhooks() == 1
        (message,) = receiver.accepted()
    for secret in (sub["secret"], rotated):
        assert Webhook(secret).verify(message.body, message.headers)["type"] == "user.created"


# -- bound to its subscription and column --------------------------------------------------------


def test_secret_copied_to_another_subscription_fails_clearly(app, admin, scim):
    """A's sealed secret written into B: A still delivers; B's message is not sent, its attempt
    is logged with the reason and retried, and after the retry window it fails and B is
    disabled; no request answers 500 and the worker goes on."""
    clock = Clock()
    with webhook_receiver() as at_a, webhook_receiver() as at_b:
        a = subscribe(admin, at_a.url)
        b = subscribe(admin, at_b.url)
        _store(app, b["id"], secret=_stored(app, a["id"])["secret"])
        person(scim, "ann@example.com")
        worker = webhook_worker(app, clock)
        assert worker.send_webhooks() == 2
        assert len(at_a.verified(a["secret"])) == 1
        assert at_b.received == []
        (entry,) = ok(admin.get(f"/api/v1/webhooks/{b['id']}/deliveries"))["deliveries"]
        assert (entry["state"], entry["attempts"], entry["last_status"]) == ("pending", 1, None)
        assert "cannot be decrypted" in entry["last_error"]
        assert "copied from another subscription" in entry["last_error"]
        assert "whsec_" not in entry["last_error"] and "enc:v1:" not in entry["last_error"]
        assert entry["log"][0]["error"] == entry["last_error"]
        assert ok(admin.get(f"/api/v1/webhooks/{b['id']}"))["enabled"] is True
        run_until_disabled(admin, worker, clock, b["id"])
        assert at_b.received == []
    (entry,) = ok(admin.get(f"/api/v1/webhooks/{b['id']}/deliveries"))["deliveries"]
    assert entry["state"] == "failed" and "cannot be decrypted" in entry["last_error"]
    view = ok(admin.get(f"/api/v1/webhooks/{b['id']}"))
    assert view["enabled"] is False and view["disabled_reason"]


def test_secret_moved_to_the_previous_column_fails_then_rotation_recovers(app, admin, scim):
    """A sealed secret written into previous_secret of its own row does not open there (the
    column is bound); rotating gives a working pair again and the waiting message goes out."""
    clock = Clock()
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        sealed = _stored(app, sub["id"])["secret"]
        expires = utcnow() + timedelta(days=1)
        _store(app, sub["id"], previous_secret=sealed, previous_secret_expires_at=expires)
        person(scim, "ann@example.com")
        worker = webhook_worker(app, clock)
        assert worker.send_webhooks() == 1
        assert receiver.received == []
        (entry,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
        assert (
            entry["state"] == "pending"
            and "previous_secret cannot be decrypted" in (entry["last_error"])
        )
        rotated = ok(admin.post(f"/api/v1/webhooks/{sub['id']}/rotate-secret", None))["secret"]
        clock.advance(HOUR)
        assert worker.send_webhooks() == 1
        (message,) = receiver.accepted()
    for secret in (sub["secret"], rotated):
        assert Webhook(secret).verify(message.body, message.headers)["type"] == "user.created"


def test_rotation_with_an_unreadable_secret_starts_afresh(app, admin, scim):
    """Rotating a secret that does not open (moved, or SCIM_SECRET_KEY changed): 200, the
    unreadable one dropped (audited), the new one alone signs."""
    with webhook_receiver() as at_a, webhook_receiver() as at_b:
        a = subscribe(admin, at_a.url)
        b = subscribe(admin, at_b.url)
        _store(app, b["id"], secret=_stored(app, a["id"])["secret"])
        resp = admin.post(f"/api/v1/webhooks/{b['id']}/rotate-secret", None)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        rotated = resp.get_json()["secret"]
        assert _stored(app, b["id"])["previous_secret"] is None
        (event,) = [e for e in _audit(admin, b["id"]) if e["action"] == "webhook.rotate_secret"]
        assert "could not be decrypted" in event["changes"]["previous_secret"]
        person(scim, "ann@example.com")
        webhook_worker(app).send_webhooks()
        (message,) = at_b.accepted()
    assert message.headers["webhook-signature"].count(" ") == 0
    assert Webhook(rotated).verify(message.body, message.headers)["type"] == "user.created"


# -- the command line --------------------------------------------------------------------------


def _invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    from scim_server.cli import main

    out = runner.invoke(main, list(args))
    assert out.exit_code == code, out.output
    return str(out.output)


def test_cli_encrypt_secrets_seals_webhook_secrets(tmp_path: Any, monkeypatch: Any) -> None:
    """sso encrypt-secrets seals a clear webhook secret (once), re-seals both after
    SCIM_SECRET_KEY changed given the old one; the worker still signs with the secrets shown at
    creation."""
    db_file = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{db_file}")
    monkeypatch.setenv("SCIM_SECRET_KEY", FIRST)
    monkeypatch.setenv("SCIM_MAIL_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("SCIM_PREVIOUS_SECRET_KEY", raising=False)
    monkeypatch.delenv("SCIM_ENV", raising=False)
    runner = CliRunner()
    org_id = _invoke(runner, "org", "create", "acme").strip()
    with webhook_receiver() as at_sealed, webhook_receiver() as at_legacy:
        sealed, sealed_secret = _invoke(
            runner, "webhooks", "create", at_sealed.url, "--org", "acme"
        ).split()
        legacy, legacy_secret = _invoke(
            runner, "webhooks", "create", at_legacy.url, "--org", "acme"
        ).split()

        def stored() -> dict[str, str]:
            with sqlite3.connect(db_file) as conn:
                return dict(conn.execute("SELECT id, secret FROM webhook_subscriptions").fetchall())

        _assert_sealed(stored()[sealed], sealed_secret)
        with sqlite3.connect(db_file) as conn:  # as stored before 0040
            conn.execute(
                "UPDATE webhook_subscriptions SET secret = ? WHERE id = ?", (legacy_secret, legacy)
            )

        out = _invoke(runner, "sso", "encrypt-secrets")
        assert f"{org_id}\t{legacy}\twebhook.secret\tsealed" in out
        assert sealed not in out
        assert "1 secret(s) encrypted (were in clear)" in out
        _assert_sealed(stored()[legacy], legacy_secret)
        out = _invoke(runner, "sso", "encrypt-secrets")
        assert "\t" not in out and "2 secret(s) already encrypted" in out

        monkeypatch.setenv("SCIM_SECRET_KEY", SECOND)
        out = _invoke(runner, "sso", "encrypt-secrets", code=1)
        assert f"{org_id}\t{sealed}\twebhook.secret\tunreadable" in out
        assert f"{org_id}\t{legacy}\twebhook.secret\tunreadable" in out
        assert "rotate" in out
        monkeypatch.setenv("SCIM_PREVIOUS_SECRET_KEY", FIRST)
        out = _invoke(runner, "sso", "encrypt-secrets")
        assert f"{org_id}\t{sealed}\twebhook.secret\tresealed" in out
        assert f"{org_id}\t{legacy}\twebhook.secret\tresealed" in out
        monkeypatch.delenv("SCIM_PREVIOUS_SECRET_KEY")

        for webhook_id in (sealed, legacy):
            _invoke(runner, "webhooks", "test", webhook_id, "--org", "acme")
        assert "and 2 webhook(s)" in _invoke(runner, "worker", "--once")
        assert len(at_sealed.verified(sealed_secret)) == 1
        assert len(at_legacy.verified(legacy_secret)) == 1
    with sqlite3.connect(db_file) as conn:
        actions = [
            a
            for (a,) in conn.execute(
                "SELECT action FROM audit_events WHERE resource_id = ? ORDER BY seq", (legacy,)
            )
        ]
    assert actions.count("webhook.secrets") == 2  # sealed, then re-sealed
