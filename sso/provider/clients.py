"""Registering the product (and other relying parties) as clients of the OIDC provider."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import Organization
from scim_server.text import has_control
from sso.provider.models import OAuthClient, secret_hash
from sso.provider.server import SCOPES

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def check_redirect_uri(uri: str) -> str:
    """RFC 6749 §3.1.2: absolute, no fragment; https except on the local machine (RFC 8252 §7.3).

    Compared exactly at each request (``OAuthClient.check_redirect_uri``), so it must be the
    URI the browser goes to: no whitespace or control character (a tab or a space matched
    here, but ``urlsplit`` and browsers drop or encode it and go elsewhere), a host, and a
    port that is a number."""
    # RFC 3986 §2: a URI holds no space or control character (a C1 or Unicode space neither).
    if any(ch.isspace() for ch in uri) or has_control(uri):
        raise InvalidValueError(f"{uri!r} holds whitespace or a control character.")
    # RFC 6749 §3.1.2: "MUST NOT include a fragment component", an empty one neither.
    if "#" in uri:
        raise InvalidValueError(f"{uri!r} has a fragment (#): a redirect URI may not.")
    try:
        parts = urlsplit(uri)
    except ValueError:  # an IPv6 host without its "]"
        raise InvalidValueError(f"{uri!r} is not a valid URI.") from None
    if not parts.scheme:
        raise InvalidValueError(f"{uri!r} is not an absolute URI.")
    if not parts.hostname:
        raise InvalidValueError(f"{uri!r} names no host.")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port on reading it)
    except ValueError:
        raise InvalidValueError(
            f"{uri!r} has a port that is not a number from 0 to 65535."
        ) from None
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS):
        raise InvalidValueError(f"{uri!r} must use https (http only for localhost).")
    return uri


def create_client(
    session: Session,
    name: str,
    redirect_uris: list[str],
    *,
    public: bool = False,
    org_id: str | None = None,
    scope: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """Register a client; return it and its secret (None for a public client), shown once.

    Its name is shown in lists, on the consent page and in the log: no control character
    (a newline or tab would forge lines), as organization, token, license and role names.
    """
    if has_control(name):  # before trimming: a trailing tab or NEL is refused, not dropped
        raise InvalidValueError("A client name cannot hold control characters.")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidValueError("A client name must be 1 to 200 characters.")
    if not redirect_uris:
        raise InvalidValueError("A client needs at least one redirect URI.")
    uris = [check_redirect_uri(u) for u in redirect_uris]
    wanted = (scope or " ".join(SCOPES)).split()
    if "openid" not in wanted or set(wanted) - set(SCOPES):
        raise InvalidValueError(f"Scopes must include openid and be among: {' '.join(SCOPES)}.")
    secret = None if public else secrets.token_urlsafe(32)
    with session.begin():
        if org_id is not None and session.get(Organization, org_id) is None:
            raise NotFoundError(f"No organization {org_id!r}.")
        client = OAuthClient(
            client_id=secrets.token_urlsafe(18),
            org_id=org_id,
            name=name,
            secret_hash=secret_hash(secret) if secret else None,
            redirect_uris=uris,
            scope=" ".join(wanted),
        )
        session.add(client)
        session.flush()
        if org_id is not None:
            record(
                session,
                org_id,
                "oauth.client_create",
                resource_type="OAuthClient",
                resource_id=client.client_id,
                detail=f"{name} ({'public' if public else 'confidential'}): {' '.join(uris)}",
            )
    return client, secret


def origin_of(uri: str) -> str | None:
    """The origin a page at ``uri`` sends (RFC 6454 §6.2: scheme://host[:port], the port only
    when it is not the scheme's default, the host lowercase); None for a URI that is not
    http(s) or cannot be read."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def is_public_origin(session: Session, origin: str) -> bool:
    """Is ``origin`` the origin of a redirect URI of an active public client (a SPA)?

    Only such a page may read the token endpoint's and userinfo's answers in a browser
    (CORS). A confidential client's origin may not: its secret never belongs in a
    browser."""
    uris = session.scalars(
        select(OAuthClient.redirect_uris).where(
            OAuthClient.secret_hash.is_(None), OAuthClient.revoked_at.is_(None)
        )
    )
    return any(origin_of(uri) == origin for registered in uris for uri in registered)


def list_clients(session: Session) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.created_at)))


def list_org_clients(session: Session, org_id: str) -> list[OAuthClient]:
    """The clients bound to one organization (global clients belong to the operator)."""
    return list(
        session.scalars(
            select(OAuthClient).where(OAuthClient.org_id == org_id).order_by(OAuthClient.created_at)
        )
    )


def revoke_client(session: Session, org_id: str | None, client_id: str) -> OAuthClient:
    """Stop a client: no new codes or tokens (``server.query_client``). ``org_id``: an
    organization's client (its log records it); None: a client of all organizations (the
    product's own, registered by the operator without ``--org``; no organization's log
    holds it, as none holds its creation)."""
    with session.begin():
        client = session.get(OAuthClient, client_id)
        if client is None or client.org_id != org_id:
            where = "in this organization" if org_id is not None else "of all organizations"
            raise NotFoundError(f"No client {client_id!r} {where}.")
        if client.revoked_at is None:
            client.revoked_at = utcnow()
            if org_id is not None:
                record(
                    session,
                    org_id,
                    "oauth.client_revoke",
                    resource_type="OAuthClient",
                    resource_id=client.client_id,
                    detail=client.name,
                )
    return client
