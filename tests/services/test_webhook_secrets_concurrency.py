"""Two rotations of one webhook's signing secret at once (``services.webhook_secrets``,
PostgreSQL): both answer 200, and each secret handed out is one the worker signs with."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from scim_server.db import db, utcnow
from scim_server.models import WebhookSubscription
from scim_server.sealing import encryption_secret
from scim_server.services import webhook_secrets
from scim_server.services.tokens import create_token
from tests.support import Scim
from tests.support.holds import postgresql_only
from tests.support.threads import run_together


def test_two_secret_rotations_at_once_hand_out_secrets_in_use(live: Any) -> None:
    """Two POST …/rotate-secret at once: both 200; both secrets returned are in use."""
    app, scim = live
    postgresql_only(app)
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    r = admin.post("/api/v1/webhooks", {"url": "https://hooks.example.com/x", "events": ["*"]})
    assert r.status_code == 201, r.get_json()
    hook = r.get_json()
    got: list[Any] = []
    barrier = threading.Barrier(2)

    def rotate() -> None:
        a = Scim(app.test_client(), secret, scim.org_id)
        barrier.wait()
        resp = a.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", None)
        got.append((resp.status_code, resp.get_json()))

    run_together(rotate, rotate)
    assert [s for s, _ in got] == [200, 200], got
    with db.reader(app)() as s:
        sub = s.scalar(select(WebhookSubscription).where(WebhookSubscription.id == hook["id"]))
        in_use = webhook_secrets.secrets_in_use(sub, utcnow(), encryption_secret(app))
    secrets = {b.get("secret") for _, b in got}
    assert None not in secrets and secrets <= set(in_use), (got, in_use)
