"""The sign-in decision, the same for SAML and OIDC (DESIGN.md §2).

A person may sign in only if their address is in one of the organization's
e-mail domains, the account exists (or is created just in time), its status
allows it and it holds a license. Each refusal has its own reason code. Every
attempt, success or failure, leaves a ``sign_in_records`` row and an audit
event (``signin.success`` / ``signin.failure``) written together.

Which account is ``sso.signin.binding``'s answer; the link it asks for is written in
the transaction of the successful sign-in, so a refused sign-in links nothing. A
just-in-time account is the exception: ``sso.signin.jit`` links it with its creation,
so that it is its connection's even when this sign-in is then refused.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from scim_server.audit import AuditContext, record, use_context
from scim_server.db import utcnow
from scim_server.errors import DomainError
from scim_server.models import License, User
from scim_server.services import licenses, lifecycle, provisioning
from sso.connections.models import SignInRecord
from sso.errors import SsoError
from sso.signin import jit
from sso.signin.binding import BindingError, Match, find_user, link
from sso.signin.domains import bound_elsewhere, domain_allowed
from sso.signin.request import SignInRequest

log = logging.getLogger(__name__)

LOCKED = frozenset({lifecycle.LOCKED_BY_ADMIN, lifecycle.AUTO_LOCKED})


def _context(req: SignInRequest) -> AuditContext:
    """The connection acts (not a token or an admin): events name it and the browser's address."""
    return AuditContext(
        actor_type="system",
        actor_id=req.connection_id or None,
        actor_name=f"sso:{req.protocol}:{req.connection_name}"[:200],
        source_ip=req.source_ip,
        user_agent=req.user_agent,
        received_at=utcnow(),
    )


def sign_in(session: Session, req: SignInRequest) -> User:
    """Decide; on success mark the sign-in (PROVISIONED → ACTIVE). Raise ``SsoError`` on refusal.

    ``session`` must have no transaction open: each step owns its own, as the
    identity services do (JIT creation commits before the final decision).
    """
    with use_context(_context(req)):
        user: User | None = None
        mapping: dict[str, Any] = {}
        try:
            with session.begin():
                check_domains(session, req)
                match = find_user(session, req)
            known = match is not None
            if match is None:
                match = Match(_just_in_time(session, req), "jit")
            user = match.user
            with session.begin():
                user = session.get(
                    User, (req.org_id, user.id), with_for_update=True, populate_existing=True
                )
                if user is None:
                    raise SsoError("unknown_user", "the account disappeared during sign-in")
                if match.needs_link and req.subject_linkable:
                    # In the sign-in's transaction: a refused sign-in links nothing.
                    link(session, req, replace(match, user=user))
                check_status(user)
                # A JIT account was just mapped with this very identity.
                if known:
                    mapping = remap(session, req, user)
                check_license(session, user)
                lifecycle.record_sign_in(session, user)
                if mapping:
                    _record_mapping(session, req, user, mapping)
                _write(session, req, "success", None, None, user, mapping)
            return user
        except SsoError as err:
            # The transaction rolled back: a refusal leaves license and roles as they were.
            failed_user = err.user if isinstance(err, BindingError) else user
            log.info("sign-in refused (%s): %s", err.reason_code, err.detail)
            with session.begin():
                _write(session, req, "failure", err.reason_code, err.detail, failed_user, mapping)
            raise


def check_domains(session: Session, req: SignInRequest) -> None:
    """The address is allow-listed for this connection, and no value that may select an
    account (the subject, a trusted userName) is an address of a domain bound to another
    connection: the userName fallback would reach that domain's accounts."""
    if not domain_allowed(session, req.org_id, req.email, req.connection_id):
        raise SsoError(
            "email_domain_not_allowed",
            f"address {req.email!r} is not in the organization's e-mail domains "
            "(verified, bound to this connection or to none)",
        )
    for value in (req.subject, req.user_name if req.user_name_trusted else None):
        if bound_elsewhere(session, req.org_id, value, req.connection_id):
            raise SsoError(
                "email_domain_not_allowed",
                f"{value!r} is an address of a domain bound to another connection",
            )


def check_user(session: Session, user: User) -> None:
    """Status allows sign-in and a license is held; each refusal its own reason."""
    check_status(user)
    check_license(session, user)


def status_refusal(
    user: User, allowed: frozenset[str] = lifecycle.SIGN_IN_ALLOWED
) -> SsoError | None:
    """Why ``user``'s status stops a sign-in (``allowed``: the statuses it may go on in), or
    None: locked, or not in ``allowed``. The local sign-in's later steps check it, under the
    account's row lock, before they change anything (a lock or a deactivation meanwhile)."""
    if user.status in LOCKED:
        return SsoError("locked", f"account status is {user.status}")
    if user.status not in allowed:
        return SsoError("inactive_account", f"account status is {user.status}")
    return None


def check_status(user: User) -> None:
    refused = status_refusal(user)
    if refused is not None:
        raise refused


def check_license(session: Session, user: User) -> None:
    if user.license_id is None:
        detail = "the account holds no license"
        if user.license_wanted_id:
            wanted = session.get(License, (user.org_id, user.license_wanted_id))
            detail += f" (no seat left in {wanted.name if wanted else user.license_wanted_id!r})"
        raise SsoError("missing_license", detail)


def remap(session: Session, req: SignInRequest, user: User) -> dict[str, Any]:
    """The rules again, on what SCIM gave the account plus what this sign-in says.

    Returns ``{changes, rules}`` (empty when nothing changes), in the caller's
    transaction. A license with no seat left is waited for, in either seat mode: a user
    then left with none is refused by ``check_license``.
    """
    if req.identity is None:
        return {}
    return provisioning.reevaluate_at_sign_in(session, req.org_id, user, req.identity)


def _record_mapping(
    session: Session, req: SignInRequest, user: User, mapping: dict[str, Any]
) -> None:
    record(
        session,
        req.org_id,
        "user.mapping",
        resource_type="User",
        resource_id=user.id,
        external_id=user.external_id,
        user_name=user.user_name,
        detail=f"rules re-applied at sign-in ({req.protocol} via {req.connection_name})",
        changes=mapping["changes"],
        explanation={"rules": mapping["rules"]},
    )


def _just_in_time(session: Session, req: SignInRequest) -> User:
    if not req.jit_enabled:
        raise SsoError(
            "unknown_user",
            f"no account for subject {req.subject!r} / {req.email!r} and JIT is off",
        )
    try:
        return jit.create(session, req.org_id, req)
    except licenses.SeatsExhaustedError as err:
        # Strict seat mode: created as a SCIM create is, so refused; the person's page and
        # the record say what it is (a license), as for an account that exists.
        raise SsoError("missing_license", err.detail) from None
    except DomainError as err:
        raise SsoError("jit_failed", f"just-in-time creation refused: {err.detail}") from None


def _write(
    session: Session,
    req: SignInRequest,
    outcome: str,
    reason: str | None,
    detail: str | None,
    user: User | None,
    mapping: dict[str, Any] | None = None,
) -> None:
    """The sign-in record and its audit event, in the caller's transaction.

    ``mapping`` is what the rules changed at this sign-in (which rule gave
    what); on a refusal it was rolled back and says so.
    """
    explained = _mapping_explanation(mapping, applied=outcome == "success")
    add_record(
        session,
        req.org_id,
        connection_id=req.connection_id or None,
        protocol=req.protocol,
        outcome=outcome,
        reason_code=reason,
        detail=detail,
        subject=req.subject,
        email=req.email,
        user_id=user.id if user is not None else None,
        source_ip=req.source_ip,
        data={"mapping": explained} if explained else None,
    )
    record(
        session,
        req.org_id,
        f"signin.{outcome}",
        outcome=outcome,
        resource_type="User" if user is not None else None,
        resource_id=user.id if user is not None else None,
        external_id=user.external_id if user is not None else req.external_id,
        user_name=user.user_name if user is not None else (req.user_name or req.email),
        detail=f"{reason}: {detail}" if reason else f"{req.protocol} via {req.connection_name}",
        explanation={
            "reason_code": reason,
            "connection_id": req.connection_id,
            "protocol": req.protocol,
            "subject": req.subject,
            **({"mapping": explained} if explained else {}),
        },
    )


def record_outcome(
    session: Session,
    req: SignInRequest,
    outcome: str,
    reason: str | None,
    detail: str | None,
    user: User | None,
) -> None:
    """The same record and event for a sign-in decided elsewhere (a local password).

    In the caller's transaction; the actor is the request's (``protocol`` says how).
    """
    with use_context(_context(req)):
        _write(session, req, outcome, reason, detail, user)


def _mapping_explanation(mapping: dict[str, Any] | None, *, applied: bool) -> dict[str, Any]:
    """The changes, and only the rules that matched (with what each gave)."""
    if not mapping:
        return {}
    return {
        "applied": applied,
        "changes": mapping["changes"],
        "matched": [r for r in mapping["rules"] if r.get("matched")],
    }


def add_record(session: Session, org_id: str, **fields: Any) -> SignInRecord:
    for name, limit in (("detail", 2000), ("subject", 512), ("email", 512)):
        if isinstance(fields.get(name), str):
            fields[name] = fields[name][:limit]
    row = SignInRecord(org_id=org_id, id=str(uuid.uuid4()), at=utcnow(), **fields)
    session.add(row)
    return row


def record_refusal(
    session: Session,
    org_id: str,
    connection_id: str,
    connection_name: str,
    protocol: str,
    err: SsoError,
    source_ip: str | None,
    user_agent: str | None = None,
) -> None:
    """A refusal before anyone is known (bad signature, replay, state): record and audit it."""
    req = SignInRequest(
        org_id=org_id,
        connection_id=connection_id,
        connection_name=connection_name,
        protocol=protocol,
        subject="",
        email=None,
        user_name=None,
        external_id=None,
        source_ip=source_ip,
        user_agent=user_agent,
    )
    log.info("sign-in refused (%s): %s", err.reason_code, err.detail)
    with use_context(_context(req)), session.begin():
        add_record(
            session,
            org_id,
            connection_id=connection_id,
            protocol=protocol,
            outcome="failure",
            reason_code=err.reason_code,
            detail=err.detail,
            source_ip=source_ip,
        )
        record(
            session,
            org_id,
            "signin.failure",
            outcome="failure",
            detail=f"{err.reason_code}: {err.detail}",
            explanation={
                "reason_code": err.reason_code,
                "connection_id": connection_id,
                "protocol": protocol,
            },
        )
