"""SSO connections: the admin's configuration of each IdP, validated and audited.

Services in the house style: they take a session, own the transaction, write
the audit event with the change, raise domain errors, and never import Flask.
Secrets (the OIDC client secret, the SP private key) never appear in an audit
event or an API view, and are stored sealed: every write seals them with the
server's encryption secret (``sso.connections.secrets``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import (
    ConflictError,
    ForbiddenError,
    InvalidValueError,
    NotFoundError,
    UniquenessError,
)
from sso.connections.models import PROTOCOLS, SsoConnection, SsoEmailDomain, SsoIdentityLink
from sso.connections.sealing import SealedSecretError
from sso.connections.secrets import SECRET_FIELDS, reveal_secret, seal_legacy, set_secret
from sso.errors import SsoError
from sso.oidc.config import OidcConnectionConfig, OidcError
from sso.saml.certs import describe, expiry_view, generate_sp_keypair
from sso.saml.metadata import IdpMetadata, fetch_metadata, parse_idp_metadata

ACS_PREFIX = "/sso/saml/"
_ACS_PATH = re.compile(r"^/sso/saml/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")
_FLAGS = ("enabled", "jit_enabled", "idp_initiated_allowed", "want_encrypted_assertions")
# One answer for every usable-looking path that cannot be had: taken (by whichever
# connection) or one of our own routes.
ACS_NOT_AVAILABLE = "This ACS path is not available; choose another."
EDITABLE = frozenset(
    {"name", *_FLAGS, "acs_path", "issuer", "client_id", "client_secret", "scopes", "sp_entity_id"}
)


def get_connection(session: Session, org_id: str, connection_id: str) -> SsoConnection:
    conn = session.get(SsoConnection, (org_id, connection_id))
    if conn is None:
        raise NotFoundError(f"SSO connection {connection_id!r} not found.")
    return conn


def find_connection(session: Session, connection_id: str) -> SsoConnection | None:
    """A connection by id alone (SSO endpoints know no organization before this)."""
    return session.scalar(select(SsoConnection).where(SsoConnection.id == connection_id))


def connection_by_acs_path(session: Session, path: str) -> SsoConnection | None:
    return session.scalar(select(SsoConnection).where(SsoConnection.acs_path == path))


def list_connections(session: Session, org_id: str) -> list[SsoConnection]:
    return list(
        session.scalars(
            select(SsoConnection)
            .where(SsoConnection.org_id == org_id)
            .order_by(SsoConnection.created_at, SsoConnection.id)
        )
    )


def _text(fields: dict[str, Any], key: str, limit: int = 2000) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidValueError(f"{key} must be a string of at most {limit} characters.")
    return value.strip() or None


def _check_acs_path(session: Session, path: str, connection_id: str) -> None:
    """The ACS path routes a POST to one connection: well formed, not one of our own routes,
    and no other connection's.

    Routing is by the exact path (``connection_by_acs_path``), and a response's Destination
    and Recipient are compared with the connection's ACS URL exactly (``saml.sp``: not
    python3-saml's prefix test), so a path that is a prefix of another's routes nothing to
    it: only an exact clash is refused. That refusal says nothing of who holds the path
    (another organization's connection, or one's own), in the words and status of a
    reserved path's: a prefix rule across organizations told an admin, one character at a
    time, the paths (and so the ids) of other tenants' connections, and let one tenant
    refuse everyone the paths under one of its own.
    """
    if not _ACS_PATH.match(path) or "/../" in path + "/":
        raise InvalidValueError(f"acs_path must be a path under {ACS_PREFIX}, e.g. /sso/saml/acme")
    if path.endswith(("/start", "/metadata")) or _acs_path_taken(session, path, connection_id):
        raise UniquenessError(ACS_NOT_AVAILABLE)


def _acs_path_taken(session: Session, path: str, connection_id: str) -> bool:
    """Whether another connection, of any organization, has exactly this ACS path (the
    unique index ``uq_sso_connections_acs_path`` probed once)."""
    return (
        session.scalar(
            select(SsoConnection.id).where(
                SsoConnection.acs_path == path, SsoConnection.id != connection_id
            )
        )
        is not None
    )


def _flush_acs_path(session: Session) -> None:
    """Write the connection now: one that took the same path since the check (the unique
    index refuses) gets the check's answer, not a 500 (the caller's transaction is rolled
    back as the error leaves it)."""
    try:
        session.flush()
    except IntegrityError:
        raise UniquenessError(ACS_NOT_AVAILABLE) from None


def _check_oidc(conn: SsoConnection) -> None:
    if not conn.issuer or not conn.client_id:
        raise InvalidValueError("An OIDC connection needs issuer and client_id.")
    try:
        # The secret is not validated (any string, or none for a public client): not opened here.
        OidcConnectionConfig(conn.issuer, conn.client_id, "", conn.scopes or "")
    except OidcError as err:
        raise InvalidValueError(f"Invalid OIDC settings: {err.detail}") from None


def _apply(
    session: Session, conn: SsoConnection, fields: dict[str, Any], secret: bytes
) -> dict[str, Any]:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise InvalidValueError(f"Unknown or read-only fields: {', '.join(sorted(unknown))}.")
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _FLAGS:
            if not isinstance(value, bool):
                raise InvalidValueError(f"{key} must be true or false.")
        elif key == "name":
            value = _text(fields, key, 200)
            if not value:
                raise InvalidValueError("name is required.")
        elif key == "scopes" and isinstance(value, list):
            value = " ".join(str(v) for v in value)
        else:
            value = _text(fields, key)
        if key in SECRET_FIELDS:
            try:
                unchanged = value == reveal_secret(conn, key, secret)
            except SealedSecretError:
                unchanged = False  # re-entering a secret that no longer opens replaces it
            if not unchanged:
                set_secret(conn, key, value, secret)
                changes[key] = "(changed)"
            continue
        if key == "acs_path":
            if value is None:
                raise InvalidValueError("acs_path cannot be empty.")
            _check_acs_path(session, value, conn.id)
        before = getattr(conn, key)
        if before != value:
            setattr(conn, key, value)
            changes[key] = {"before": before, "after": value}
    return changes


SAML_ONLY = frozenset(
    {"acs_path", "want_encrypted_assertions", "idp_initiated_allowed", "sp_entity_id"}
)
OIDC_ONLY = frozenset({"issuer", "client_id", "client_secret", "scopes"})


def _check_protocol_fields(protocol: str, fields: dict[str, Any]) -> None:
    wrong = set(fields) & (SAML_ONLY if protocol == "oidc" else OIDC_ONLY)
    if wrong:
        raise InvalidValueError(f"Not settings of a {protocol} connection: {sorted(wrong)}.")


def create_connection(
    session: Session, org_id: str, fields: dict[str, Any], base_url: str, *, secret: bytes
) -> SsoConnection:
    """A new connection; a SAML one gets its own SP key pair, entity id and ACS path.

    ``secret`` is the server's encryption secret (``sso.connections.sealing.encryption_secret``).
    """
    protocol = fields.get("protocol")
    if protocol not in PROTOCOLS:
        raise InvalidValueError(f"protocol must be one of {list(PROTOCOLS)}.")
    with session.begin():
        now = utcnow()
        conn = SsoConnection(
            org_id=org_id,
            id=str(uuid.uuid4()),
            protocol=protocol,
            name="",
            enabled=True,
            jit_enabled=False,
            idp_initiated_allowed=False,
            want_encrypted_assertions=False,
            idp_certificates=[],
            created_at=now,
            updated_at=now,
        )
        rest = {k: v for k, v in fields.items() if k != "protocol"}
        _check_protocol_fields(protocol, rest)
        rest.setdefault("name", f"{protocol.upper()} connection")
        if protocol == "saml":
            conn.sp_entity_id = f"{base_url}/sso/saml/{conn.id}"
            conn.acs_path = f"{ACS_PREFIX}{conn.id}/acs"
            key_pem, conn.sp_certificate = generate_sp_keypair(conn.sp_entity_id)
            set_secret(conn, "sp_private_key", key_pem, secret)
        else:
            conn.scopes = "openid email profile"
        changes = _apply(session, conn, rest, secret)
        if protocol == "oidc":
            _check_oidc(conn)
        session.add(conn)
        _flush_acs_path(session)
        _audit(session, conn, "sso.connection.create", {"protocol": protocol, **changes})
    return conn


def update_connection(
    session: Session,
    org_id: str,
    connection_id: str,
    fields: dict[str, Any],
    *,
    secret: bytes,
    may_enable: bool = True,
) -> SsoConnection:
    """Change settings; any secret still in clear is sealed on the way (the lazy migration).

    ``may_enable`` False: a disabled connection stays disabled (``ForbiddenError``), judged
    on the row locked here, so a disable that commits first is never undone by this save.
    Disabling records when (``disabled_at``): enabled again, the connection vouches only for
    sign-ins after that, never again for those of the IdP it stopped trusting.
    """
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        if not may_enable and fields.get("enabled"):
            session.refresh(conn, with_for_update=True)
            if not conn.enabled:
                raise ForbiddenError("An organization admin enables a connection.")
        _check_protocol_fields(conn.protocol, fields)
        changes = _apply(session, conn, fields, secret)
        if "enabled" in changes and not conn.enabled:
            # Kept when it is enabled again: the sessions, codes and tokens it vouched for
            # until now stay over (``sso.signin.session.connection_open``).
            conn.disabled_at = utcnow()
        if "acs_path" in changes:
            _flush_acs_path(session)
        changes = seal_legacy(conn, secret) | changes
        if {"issuer", "idp_entity_id"} & set(changes):
            changes["identity_links_removed"] = _forget_links(session, conn)
        if conn.protocol == "oidc":
            _check_oidc(conn)
            if {"issuer"} & set(changes):
                conn.discovery, conn.discovery_fetched_at = None, None
        if changes:
            conn.updated_at = utcnow()
            _audit(session, conn, "sso.connection.update", changes)
    return conn


def _forget_links(session: Session, conn: SsoConnection) -> int:
    """Remove the connection's identity links when it now trusts another IdP (its OIDC
    issuer or SAML entity id changed): a subject names a person only within its issuer
    (OIDC Core §2 and §5.7: iss and sub together; SAML Core §8.3.7: a persistent NameID
    is qualified by its IdP), so the new IdP's ``user-42`` is not the old one's. Each
    person binds again at their next sign-in, by the fallbacks (verified e-mail, ...).
    How many were removed, for the connection's audit event."""
    gone = session.execute(
        delete(SsoIdentityLink).where(
            SsoIdentityLink.org_id == conn.org_id, SsoIdentityLink.connection_id == conn.id
        )
    )
    return int(getattr(gone, "rowcount", 0) or 0)


class ConnectionInUseError(ConflictError):
    """Verified e-mail domains are bound to the connection (``domains``): deleting it would
    leave them bound to none, i.e. open to every other connection of the organization."""

    def __init__(self, domains: list[str]) -> None:
        super().__init__(
            f"Verified domains are bound to this connection: {', '.join(domains)}. "
            "Bind them to another connection or remove them first."
        )
        self.domains = domains


def delete_connection(session: Session, org_id: str, connection_id: str) -> None:
    """Delete the connection, refused (``ConnectionInUseError``) while a verified domain is
    bound to it.

    A domain bound to no connection may be asserted by any connection of the organization
    (``sso.signin.domains.domain_allowed``): unbinding a verified one here would hand
    ``ceo@example.com`` to a partner's IdP. Pending claims route nothing and are unbound.
    """
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        bound = list(
            session.scalars(
                select(SsoEmailDomain.domain)
                .where(
                    SsoEmailDomain.org_id == org_id,
                    SsoEmailDomain.connection_id == conn.id,
                    SsoEmailDomain.verified_at.is_not(None),
                )
                .order_by(SsoEmailDomain.domain)
            )
        )
        if bound:
            raise ConnectionInUseError(bound)
        # Only pending claims: one verified since the check above stays bound to the deleted
        # id, which no connection can sign in as (fail closed), instead of being opened.
        session.execute(
            update(SsoEmailDomain)
            .where(
                SsoEmailDomain.org_id == org_id,
                SsoEmailDomain.connection_id == conn.id,
                SsoEmailDomain.verified_at.is_(None),
            )
            .values(connection_id=None)
        )
        _audit(session, conn, "sso.connection.delete", {})
        session.delete(conn)


def apply_metadata(
    session: Session, org_id: str, connection_id: str, meta: IdpMetadata, source: str | None
) -> SsoConnection:
    """Take the IdP's entity id, SSO URL and signing certificates from its metadata."""
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        if conn.protocol != "saml":
            raise InvalidValueError("IdP metadata is for SAML connections.")
        before = [c["fingerprint"] for c in conn.idp_certificates]
        other_idp = conn.idp_entity_id != meta.entity_id
        conn.idp_entity_id = meta.entity_id
        conn.idp_sso_url = meta.sso_url
        conn.idp_certificates = meta.certificates
        conn.metadata_url = source
        conn.updated_at = utcnow()
        changes: dict[str, Any] = {
            "idp_entity_id": meta.entity_id,
            "idp_sso_url": meta.sso_url,
            "certificates": {
                "before": before,
                "after": [c["fingerprint"] for c in meta.certificates],
            },
            "metadata_url": source,
        }
        if other_idp:
            changes["identity_links_removed"] = _forget_links(session, conn)
        _audit(session, conn, "sso.connection.metadata", changes)
    return conn


def add_certificate(session: Session, org_id: str, connection_id: str, pem: str) -> dict[str, Any]:
    """Trust one more IdP signing certificate (rotation: old and new side by side)."""
    try:
        info = describe(pem)
    except SsoError as err:
        raise InvalidValueError(err.detail) from None
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        if conn.protocol != "saml":
            raise InvalidValueError("Certificates are for SAML connections.")
        if any(c["fingerprint"] == info["fingerprint"] for c in conn.idp_certificates):
            raise UniquenessError("This certificate is already trusted by the connection.")
        conn.idp_certificates = [*conn.idp_certificates, info]
        conn.updated_at = utcnow()
        _audit(session, conn, "sso.certificate.add", {"fingerprint": info["fingerprint"]})
    return info


def remove_certificate(session: Session, org_id: str, connection_id: str, fingerprint: str) -> None:
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        kept = [c for c in conn.idp_certificates if c["fingerprint"] != fingerprint.lower()]
        if len(kept) == len(conn.idp_certificates):
            raise NotFoundError(f"No certificate {fingerprint!r} on this connection.")
        conn.idp_certificates = kept
        conn.updated_at = utcnow()
        _audit(session, conn, "sso.certificate.remove", {"fingerprint": fingerprint.lower()})


def read_metadata(xml: Any, url: Any) -> IdpMetadata:
    """IdP metadata from its XML text, or fetched from its https URL (checked, size-limited)."""
    if isinstance(xml, str | bytes) and xml:
        return parse_idp_metadata(xml.encode() if isinstance(xml, str) else xml)
    if isinstance(url, str) and url:
        return parse_idp_metadata(fetch_metadata(url))
    raise InvalidValueError("Send the metadata as an XML string, or its https URL.")


def fetch_metadata_text(url: str) -> str:
    """The IdP metadata at ``url`` as text, so an admin can preview exactly what is then stored."""
    return fetch_metadata(url).decode("utf-8", "replace")


def metadata_view(meta: IdpMetadata) -> dict[str, Any]:
    """What an admin checks before trusting metadata: entity id, SSO URL, certificates' expiry."""
    return {
        "idp_entity_id": meta.entity_id,
        "idp_sso_url": meta.sso_url,
        "certificates": [expiry_view(c) for c in meta.certificates],
    }


def _audit(session: Session, conn: SsoConnection, action: str, changes: dict[str, Any]) -> None:
    record(
        session,
        conn.org_id,
        action,
        resource_type="SsoConnection",
        resource_id=conn.id,
        detail=conn.name,
        changes=changes,
    )


def connection_view(conn: SsoConnection, base_url: str) -> dict[str, Any]:
    """The admin API's view: everything but the secrets, plus the URLs to paste into the IdP."""
    out: dict[str, Any] = {
        "id": conn.id,
        "name": conn.name,
        "protocol": conn.protocol,
        "enabled": conn.enabled,
        "jit_enabled": conn.jit_enabled,
        # Its latest disabling: sign-ins before it stay over, even once enabled again.
        "disabled_at": conn.disabled_at.isoformat() if conn.disabled_at else None,
        "created_at": conn.created_at.isoformat(),
        "updated_at": conn.updated_at.isoformat(),
    }
    if conn.protocol == "saml":
        out |= {
            "idp_initiated_allowed": conn.idp_initiated_allowed,
            "want_encrypted_assertions": conn.want_encrypted_assertions,
            "idp_entity_id": conn.idp_entity_id,
            "idp_sso_url": conn.idp_sso_url,
            "metadata_url": conn.metadata_url,
            "certificates": [expiry_view(c) for c in conn.idp_certificates],
            "sp_entity_id": conn.sp_entity_id,
            "acs_url": f"{base_url}{conn.acs_path}",
            "sp_metadata_url": f"{base_url}/sso/saml/{conn.id}/metadata",
            "login_url": f"{base_url}/sso/saml/{conn.id}/start",
            "sp_certificate": conn.sp_certificate,
        }
    else:
        out |= {
            "issuer": conn.issuer,
            "client_id": conn.client_id,
            "client_secret_set": bool(conn.client_secret),
            "scopes": conn.scopes,
            "redirect_uri": f"{base_url}/sso/oidc/{conn.id}/callback",
            "login_url": f"{base_url}/sso/oidc/{conn.id}/start",
        }
    return out
