"""The mail outbox: mail is queued in the transaction of the change that causes it.

Nothing is sent inside a request: ``queue_mail`` only writes a row (and its
audit event) in the caller's transaction, so a change that rolls back sends
nothing, and ``scim-server worker`` sends what committed
(``scim_server.services.mail_delivery``). Subject and bodies are rendered here,
from ``scim_server/mail_templates/<kind>.{subject.txt,txt,html}``, with the
organization's name and the login URL in every one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, UndefinedError, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import MailOutbox, Organization

# What the worker sends; each has a subject, a text and an HTML template.
KINDS = (
    "welcome",
    "activation_link",
    "reset_link",
    "resend",
    "password_reset",
    "password_changed",
    "mfa_reset",
    "mfa_changed",
    "account_locked",
    "webhook_disabled",
    "webhook_gap",
)
# The kinds that carry a temporary password or a link into the account: sent only while the
# account may receive credentials (``mail_delivery``), and only the latest of them
# (``credentials``). The others are notices of what happened, sent whatever the status.
CREDENTIAL_KINDS = ("welcome", "activation_link", "reset_link", "resend", "password_reset")
# The kinds that carry a temporary password, and those that carry a link (by its purpose).
PASSWORD_KINDS = ("welcome", "resend", "password_reset")
LINK_KINDS = {"activation_link": "activation", "reset_link": "reset"}


def replaced_by(kind: str) -> tuple[str, ...]:
    """The credentials mail a newer one of ``kind`` replaces (cancelled while it waits, not
    sent if it is being sent): a reset link replaces earlier reset links only, since the
    person's own request leaves every password and other link working (whatever else an
    admin's reset ends, the worker finds dead: ``mail_delivery``); any other, every one."""
    return ("reset_link",) if kind == "reset_link" else CREDENTIAL_KINDS


def replacing(kind: str) -> tuple[str, ...]:
    """The kinds whose newer mail replaces a mail of ``kind`` (``replaced_by`` read back)."""
    return tuple(k for k in CREDENTIAL_KINDS if kind in replaced_by(k))


# cancelled: not sent on purpose (the account left or was locked, newer credentials replaced
# it, its address changed, its password or link no longer works).
STATES = ("queued", "sending", "sent", "failed", "abandoned", "cancelled")
# A transient failure (the relay unreachable, a 4yz answer) is retried, the wait doubling
# from 10 s up to ``RETRY_EVERY``, for ``RETRY_WINDOW`` from the first attempt; then the
# mail is abandoned (RFC 5321 §4.5.4.1 gives up after days; a day keeps a person's
# credentials from arriving long after anyone waits for them). A 5yz answer is permanent
# (RFC 5321 §4.2.1): abandoned at once.
RETRY_WINDOW = timedelta(days=1)
RETRY_EVERY = timedelta(minutes=10)
# Claims whose workers died before recording an outcome: past this many, abandoned unsent.
MAX_LOST_LEASES = 5
LOGIN_PATH = "/sso/login"


def _one_line(value: Any) -> Any:
    """Every value a mail shows is one line (a name, a username, a link): a line break in one
    (a SCIM ``displayName`` may hold any) would add lines of its own to the text part,
    "Your password expired: https://..." above the real details. Folded into spaces."""
    if isinstance(value, str):
        lines = value.splitlines()
        if lines != [value]:
            return " ".join(lines)
    return value


@cache
def _templates() -> Environment:
    """HTML templates autoescaped, text ones not; a missing variable is an error, never blank."""
    return Environment(
        loader=PackageLoader("scim_server", "mail_templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        finalize=_one_line,
    )


def login_url(base_url: str) -> str:
    """The sign-in page every mail links to, from the server's public URL."""
    return base_url.rstrip("/") + LOGIN_PATH


def render(kind: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of one mail; a variable the template needs is required."""
    if kind not in KINDS:
        raise InvalidValueError(f"Unknown mail kind {kind!r}; one of: {', '.join(KINDS)}.")
    env = _templates()
    try:
        subject = " ".join(env.get_template(f"{kind}.subject.txt").render(context).split())
        text = env.get_template(f"{kind}.txt").render(context)
        html = env.get_template(f"{kind}.html").render({**context, "subject": subject})
    except UndefinedError as exc:
        raise InvalidValueError(f"The {kind} mail needs a value it was not given: {exc}.") from exc
    return subject, text + "\n", html + "\n"


def check_recipient(recipient: str) -> str:
    """One plain address: no display name tricks, no line breaks (header injection)."""
    if not isinstance(recipient, str):
        raise InvalidValueError("The recipient must be an e-mail address.")
    _name, address = parseaddr(recipient)
    if (
        len(recipient) > 320
        or any(c in recipient for c in "\r\n\x00")
        or address != recipient.strip()
        or address.count("@") != 1
        or not all(address.split("@"))
    ):
        raise InvalidValueError(f"{recipient!r} is not an e-mail address.")
    return address


def queue_mail(
    session: Session,
    org_id: str,
    kind: str,
    recipient: str,
    context: dict[str, Any],
    *,
    send_at: datetime | None = None,
    user_id: str | None = None,
    for_admin: bool | None = None,
) -> MailOutbox:
    """Queue one mail in the caller's transaction (it is sent only if that commits).

    ``context`` fills the templates and must hold ``login_url`` (see
    :func:`login_url`); the organization's name is added here. ``send_at``
    (timezone-aware) schedules it; None sends on the worker's next pass. The
    audit event names the kind and the recipient, never the body.

    ``for_admin``: credentials sent to the acting admin ("to me"), which the worker
    does not hold to the account's address; None: as the context says (a credentials
    mail to an admin names the account it is for, ``for_user``).
    """
    address = check_recipient(recipient)
    if send_at is not None and send_at.tzinfo is None:
        raise InvalidValueError("send_at must carry a timezone.")
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFoundError(f"Organization {org_id!r} not found.")
    subject, text, html = render(kind, {**context, "org_name": org.name})
    if for_admin is None and kind in CREDENTIAL_KINDS:
        for_admin = bool(context.get("for_user"))
    now = utcnow()
    mail = MailOutbox(
        org_id=org_id,
        id=str(uuid.uuid4()),
        kind=kind,
        recipient=address,
        subject=subject,
        body_text=text,
        body_html=html,
        state="queued",
        attempts=0,
        next_attempt_at=send_at or now,
        send_at=send_at,
        created_at=now,
        user_id=user_id,
        for_admin=for_admin,
    )
    session.add(mail)
    session.flush()
    record(
        session,
        org_id,
        "mail.queued",
        resource_type="Mail",
        resource_id=mail.id,
        detail=f"{kind} to {address}",
        changes={"kind": {"after": kind}, "recipient": {"after": address}},
    )
    return mail


def cancel(session: Session, mail: MailOutbox, why: str) -> None:
    """Never send ``mail`` (caller's transaction, the row locked): ``cancelled``, ``why`` as
    its last error, the body (it may hold a temporary password) dropped; ``mail.cancelled``."""
    before = mail.state
    mail.state = "cancelled"
    mail.last_error = why
    mail.claimed_by = None
    mail.lease_expires_at = None
    mail.body_text = mail.body_html = None
    record(
        session,
        mail.org_id,
        "mail.cancelled",
        resource_type="Mail",
        resource_id=mail.id,
        detail=f"{mail.kind} to {mail.recipient}: {why}",
        changes={"state": {"before": before, "after": "cancelled"}},
    )


def cancel_credentials(
    session: Session,
    org_id: str,
    user_id: str,
    why: str,
    kinds: tuple[str, ...] = CREDENTIAL_KINDS,
) -> int:
    """Cancel the account's credentials mail not yet sent (queued, failed and waiting for a
    retry, or abandoned: an admin's retry would send it), in the caller's transaction: the
    password or link it holds no longer works (``why``). Returns how many. One being sent
    right now is checked by the worker (``mail_delivery.why_unwanted``). ``kinds``: only
    those (a person's own reset link replaces earlier reset links, nothing else)."""
    waiting = session.scalars(
        select(MailOutbox)
        .where(
            MailOutbox.state.in_(("queued", "failed", "abandoned")),
            MailOutbox.org_id == org_id,
            MailOutbox.user_id == user_id,
            MailOutbox.kind.in_(kinds),
        )
        .with_for_update()
    ).all()
    for row in waiting:
        cancel(session, row, why)
    return len(waiting)


def list_mail(
    session: Session, org_id: str, *, state: str | None, offset: int, limit: int
) -> tuple[int, list[MailOutbox]]:
    """The organization's outbox, newest first; ``state`` narrows it."""
    conditions = [MailOutbox.org_id == org_id]
    if state:
        conditions.append(MailOutbox.state == state)
    total = session.scalar(select(func.count()).select_from(MailOutbox).where(*conditions)) or 0
    rows = session.scalars(
        select(MailOutbox)
        .where(*conditions)
        .order_by(MailOutbox.created_at.desc(), MailOutbox.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return total, list(rows)


def get_mail(
    session: Session, org_id: str, mail_id: str, *, for_update: bool = False
) -> MailOutbox:
    """One mail of this organization; another organization's is not found."""
    stmt = select(MailOutbox).where(MailOutbox.org_id == org_id, MailOutbox.id == mail_id)
    mail = session.scalar(stmt.with_for_update() if for_update else stmt)
    if mail is None:
        raise NotFoundError(f"Mail {mail_id!r} not found.")
    return mail


def retry_mail(session: Session, org_id: str, mail_id: str) -> MailOutbox:
    """Queue an abandoned mail again, with a fresh day of attempts (an admin's decision)."""
    with session.begin():
        mail = get_mail(session, org_id, mail_id, for_update=True)
        if mail.state != "abandoned":
            raise ConflictError(f"Only an abandoned mail can be retried; this one is {mail.state}.")
        mail.state = "queued"
        mail.attempts = 0
        mail.first_attempt_at = None
        mail.lost_leases = 0
        mail.next_attempt_at = utcnow()
        mail.claimed_by = None
        mail.lease_expires_at = None
        record(
            session,
            org_id,
            "mail.retry",
            resource_type="Mail",
            resource_id=mail.id,
            detail=f"{mail.kind} to {mail.recipient}",
            changes={"state": {"before": "abandoned", "after": "queued"}},
        )
    return mail
