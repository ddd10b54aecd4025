"""Test mode: run a real login against a connection and show what would happen, changing nothing.

The admin gets a single-use URL; the login it starts comes back with the
attributes the IdP sent, the mapping rules' result and the decision a real
sign-in would reach. Nobody is created or signed in; the attempt is kept as
a sign-in record (outcome ``test``) for the connection debugger.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from sqlalchemy.orm import Session

import mappings
from scim_server.audit import record
from scim_server.models import User
from scim_server.services import provisioning
from sso import state
from sso.connections.models import SsoConnection
from sso.connections.service import get_connection
from sso.errors import SsoError
from sso.signin import jit
from sso.signin.binding import BindingError, find_user
from sso.signin.decision import add_record, check_domains, check_license, check_status, remap
from sso.signin.request import SignInRequest

KIND = "test"
TEST_SECONDS = 600


def create_test_link(session: Session, org_id: str, connection_id: str, base_url: str) -> str:
    """A single-use URL, valid ten minutes, that starts a test login against the connection."""
    token = secrets.token_urlsafe(32)
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        state.save_state(session, token, org_id, conn.id, KIND, {}, TEST_SECONDS)
        record(
            session,
            org_id,
            "sso.connection.test",
            resource_type="SsoConnection",
            resource_id=conn.id,
            detail=conn.name,
        )
    return f"{base_url}/sso/test/{token}"


def _plain(value: Any) -> Any:
    """A mapping result (dataclasses, tuples, sets) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _decision(session: Session, req: SignInRequest) -> tuple[dict[str, Any], User | None]:
    """What a real sign-in would decide, and the known account (None when there is none)."""
    try:
        check_domains(session, req)
    except SsoError as err:
        return {"outcome": "refused", "reason_code": err.reason_code}, None
    user = None
    try:
        match = find_user(session, req)
        if match is None:
            if req.jit_enabled:
                jit.check_names(session, req.org_id, req)  # its refusal, as a sign-in's
                return {"outcome": "would create the account (JIT), then decide again"}, None
            return {"outcome": "refused", "reason_code": "unknown_user"}, None
        user = match.user
        check_status(user)
        return {**_preview_remap(session, req, user), "matched_by": match.matched_by}, user
    except SsoError as err:
        refused = {"outcome": "refused", "reason_code": err.reason_code, "detail": err.detail}
        return refused, err.user if isinstance(err, BindingError) else user


def _preview_remap(session: Session, req: SignInRequest, user: User) -> dict[str, Any]:
    """Re-apply the rules as a sign-in would, in a savepoint always rolled back: a preview.

    Seats, strict mode and manual assignments answer exactly as at a real
    sign-in; nothing is kept and no audit event is written.
    """
    nested = session.begin_nested()
    try:
        mapping = remap(session, req, user)
        changes = {"mapping_changes": _plain(mapping)} if mapping else {}
        try:
            check_license(session, user)
        except SsoError as err:
            return {
                "outcome": "refused",
                "reason_code": err.reason_code,
                "detail": err.detail,
                **changes,
            }
        return {
            "outcome": "would sign in",
            "user_id": user.id,
            "user_name": user.user_name,
            **changes,
        }
    finally:
        nested.rollback()


def run(
    session: Session, conn: SsoConnection, req: SignInRequest, identity_factory: Any, raw: Any
) -> dict[str, Any]:
    """Evaluate and record the test login; return what the result page shows."""
    with session.begin():
        decision, user = _decision(session, req)
        settings = provisioning.settings_for(session, conn.org_id)
        try:
            rules = provisioning.active_rule_set(session, conn.org_id, settings)
            identity = identity_factory()
            if user is not None and rules is not None:
                # A known account is mapped with what SCIM gave it plus this sign-in.
                identity = provisioning.sign_in_identity(session, conn.org_id, user, identity)
            result = mappings.resolve(identity, rules) if rules is not None else None
            mapping: Any = _plain(result) if result is not None else "no active rules or defaults"
        except Exception as err:  # the rules engine is the admin's to fix: show, do not crash
            mapping = f"mapping failed: {type(err).__name__}: {err}"
        out = {
            "connection": conn.name,
            "subject": req.subject,
            "email": req.email,
            "attributes": _plain(raw),
            "profile": req.profile,
            "mapping": mapping,
            "decision": decision,
        }
        add_record(
            session,
            conn.org_id,
            connection_id=conn.id,
            protocol=req.protocol,
            outcome="test",
            reason_code=decision.get("reason_code"),
            detail=decision.get("detail") or decision["outcome"],
            subject=req.subject,
            email=req.email,
            source_ip=req.source_ip,
            data=out,
        )
    return out
