"""The OIDC login around the protocol (``sso.oidc.login``): discovery cache, state in the database.

The relying party itself is pure protocol; here its state goes into
``sso_states`` (keyed by the ``state`` parameter, consumed once), the
provider's discovery document is cached on the connection for a day, and its
``OidcError`` becomes our ``SsoError`` with the same reason code. The
provider's signing keys are cached per app (``sso.extension``), passed in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import requests
from flask import current_app
from sqlalchemy.orm import Session

from scim_server.db import utcnow
from sso import state
from sso.connections.models import SsoConnection
from sso.connections.secrets import secret_for_use
from sso.errors import SsoError
from sso.oidc.config import OidcConnectionConfig, OidcError, OidcLogin
from sso.oidc.discovery import discover
from sso.oidc.http import checked_session
from sso.oidc.jwks import JwksCache
from sso.oidc.login import begin_login, finish_login

KIND = "oidc"
DISCOVERY_MAX_AGE = timedelta(days=1)


def _config(conn: SsoConnection) -> OidcConnectionConfig:
    if conn.protocol != "oidc" or not conn.issuer or not conn.client_id:
        raise SsoError("invalid_config", "not an OIDC connection with issuer and client_id")
    # Opened at the start too: a secret that no longer opens is refused before the person
    # signs in at the IdP, not after.
    client_secret = secret_for_use(conn, "client_secret")
    try:
        return OidcConnectionConfig(
            conn.issuer, conn.client_id, client_secret, conn.scopes or "openid"
        )
    except OidcError as err:
        raise SsoError("invalid_config", err.detail) from None


def _discovery(conn: SsoConnection, http: requests.Session) -> dict[str, Any]:
    """The cached provider document, refetched when older than a day (stored on the connection)."""
    fetched = conn.discovery_fetched_at
    if conn.discovery and fetched and utcnow() - fetched < DISCOVERY_MAX_AGE:
        return dict(conn.discovery)
    doc = discover(conn.issuer or "", http)
    conn.discovery, conn.discovery_fetched_at = doc, utcnow()
    return doc


def start(
    session: Session,
    conn: SsoConnection,
    redirect_uri: str,
    data: dict[str, Any],
    login_hint: str | None = None,
) -> tuple[str, str]:
    """The provider URL and the state parameter; state, nonce and PKCE verifier kept server-side."""
    try:
        with checked_session(current_app.config) as http:
            doc = _discovery(conn, http)
        url, state_data = begin_login(_config(conn), redirect_uri, doc, login_hint=login_hint)
    except OidcError as err:
        raise SsoError(err.reason_code, err.detail) from None
    state.save_state(
        session, state_data["state"], conn.org_id, conn.id, KIND, {**state_data, "app": data}
    )
    return url, state_data["state"]


def finish(
    session: Session, conn: SsoConnection, args: Any, jwks: JwksCache
) -> tuple[OidcLogin, dict[str, Any]]:
    """Consume the state (single use), then let the relying party verify everything else."""
    value = args.get("state") if hasattr(args, "get") else None
    consumed = state.consume_state(session, value if isinstance(value, str) else "", KIND)
    if consumed is None:
        raise SsoError("state_mismatch", "unknown or already used state parameter")
    if consumed.connection_id != conn.id or consumed.org_id != conn.org_id:
        raise SsoError("state_mismatch", "the state belongs to another connection")
    if consumed.expired:
        raise SsoError("expired", "the login is older than the time limit")
    app_data = dict(consumed.data.pop("app", None) or {})
    try:
        with checked_session(current_app.config) as http:
            doc = _discovery(conn, http)
            login = finish_login(_config(conn), args, consumed.data, doc, http, jwks)
    except OidcError as err:
        raise SsoError(err.reason_code, err.detail) from None
    return login, app_data
