"""The SAML login around the protocol: request ids kept server-side, single use, replay refused.

``sso.saml.sp`` verifies a response; this module binds it to a request we sent
(InResponseTo, consumed once from ``sso_states``) unless the connection
accepts IdP-initiated logins, and records the assertion id until it expires
so the same assertion is never accepted twice, on any node (nor retried
after its refusal as unsolicited).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from sso import state
from sso.connections.models import SsoConnection
from sso.connections.secrets import secret_for_use
from sso.errors import SsoError
from sso.saml import sp as saml

KIND = "saml_request"


def config(conn: SsoConnection, base_url: str) -> saml.SamlConfig:
    """python3-saml's settings for ``conn``, the SP key opened (``secret_unreadable`` if not)."""
    if conn.protocol != "saml" or not conn.sp_certificate or not conn.sp_private_key:
        raise SsoError("invalid_config", "not a SAML connection with an SP key")
    return saml.SamlConfig(
        sp_entity_id=conn.sp_entity_id or f"{base_url}/sso/saml/{conn.id}",
        acs_url=f"{base_url}{conn.acs_path}",
        sp_certificate=conn.sp_certificate,
        sp_private_key=secret_for_use(conn, "sp_private_key"),
        idp_entity_id=conn.idp_entity_id,
        idp_sso_url=conn.idp_sso_url,
        idp_certificates=tuple(c["pem"] for c in conn.idp_certificates),
        want_encrypted_assertions=conn.want_encrypted_assertions,
    )


def start(
    session: Session, conn: SsoConnection, base_url: str, data: dict[str, Any]
) -> tuple[str, str]:
    """The IdP URL and the request id, kept with ``data`` (next, test...) until the answer."""
    url, request_id = saml.authn_request_url(config(conn, base_url), relay_state=None)
    state.save_state(session, request_id, conn.org_id, conn.id, KIND, data)
    return url, request_id


def finish(
    session: Session, conn: SsoConnection, base_url: str, encoded: str
) -> tuple[saml.SamlAssertion, dict[str, Any] | None]:
    """Verify, bind to our request, refuse replays; return the assertion and the request's data.

    The data is None for an IdP-initiated login (only where the connection allows it).
    ``session`` has no transaction open: the signature is checked outside one, and a
    refused unsolicited assertion keeps its replay mark (its transaction holds nothing
    else), so it cannot be posted again once bound to a request or allowed.
    """
    assertion = saml.verify_response(config(conn, base_url), encoded)
    with session.begin():
        # Replay first: a replayed SP-initiated response must say "replay", not "unknown request".
        if not state.remember_assertion(
            session, conn.org_id, conn.id, assertion.assertion_id, assertion.not_on_or_after
        ):
            raise SsoError("replay", f"assertion {assertion.assertion_id[:80]!r} was already used")
        if assertion.in_response_to:
            return assertion, _bound(session, conn, assertion.in_response_to)
        if conn.idp_initiated_allowed:
            return assertion, None
    raise SsoError(
        "state_mismatch",
        "unsolicited response (no InResponseTo in the signed assertion) and IdP-initiated "
        "login is off",
    )


def _bound(session: Session, conn: SsoConnection, request_id: str) -> dict[str, Any]:
    """Consume the request the assertion answers (single use); its data."""
    consumed = state.consume_state(session, request_id, KIND)
    if consumed is None:
        raise SsoError(
            "state_mismatch", f"InResponseTo {request_id[:80]!r} is unknown or was already used"
        )
    if consumed.connection_id != conn.id or consumed.org_id != conn.org_id:
        raise SsoError("state_mismatch", "the request was sent for another connection")
    if consumed.expired:
        raise SsoError("expired", "the AuthnRequest is older than the login time limit")
    return consumed.data
