"""Credentials tests: a worker with a real SMTP mailer, reading mail, arranging settings."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from scim_server.config import SmtpSettings
from scim_server.db import db, utcnow
from scim_server.mailer import Mailer
from scim_server.models import UserPassword
from scim_server.services.passwords import Hashing, verify_password
from scim_server.worker import Worker
from tests.support import Clock, Scim
from tests.support.admin_api import ok


def _a_second_ahead() -> datetime:
    """Real time, a second ahead: what was queued just now is due, however slow the test runs."""
    return utcnow() + timedelta(seconds=1)


def mail_worker(
    app: Flask, port: int, tmp_path: Path, clock: Clock | None = None, **kw: Any
) -> Worker:
    """``scim-server worker`` on the test's database, sending to the SMTP server on ``port``.

    Without ``clock`` its time follows the real one: a ``Clock()`` made here stood still, so
    on a loaded machine mail queued more than a second after the worker was made was not
    yet due and the test read the previous message.
    """
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="plain")
    mailer = Mailer(sender="it@acme.example", smtp=smtp, mail_dir=tmp_path, timeout=10)
    return Worker(
        db.writer(app),
        clock=clock or _a_second_ahead,
        mailer=mailer,
        hashing=Hashing.from_config(app.config),
        **kw,
    )


def text_of(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content())


def html_of(message: Any) -> str:
    part = message.get_body(preferencelist=("html",))
    return str(part.get_content())


def temporary_password(message: Any) -> str:
    found = re.search(r"Temporary password: (\S+)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def link_token(message: Any, page: str) -> str:
    found = re.search(rf"https?://\S+/sso/{page}/([A-Za-z0-9_\-]+)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def password_verifies(app: Flask, org_id: str, user_id: str, password: str) -> bool:
    with db.reader(app)() as session:
        row = session.get(UserPassword, (org_id, user_id))
        if row is None:
            return False
        return verify_password(Hashing.from_config(app.config), row.hash, password)[0]


def set_settings(admin: Scim, **values: Any) -> dict[str, Any]:
    return ok(admin.put("/api/v1/settings", values))  # type: ignore[no-any-return]


def employee(scim: Scim, user_name: str, **attrs: Any) -> dict[str, Any]:
    """A SCIM user whose work e-mail is its userName."""
    return scim.create_user(
        user_name, emails=[{"type": "work", "value": user_name, "primary": True}], **attrs
    )
