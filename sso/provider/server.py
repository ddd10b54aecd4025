"""authlib's authorization server, wired to our storage: the code grant, PKCE, OIDC, userinfo.

One server per application (``app.extensions["oauth_server"]``), so that no
state is shared between apps. Everything it remembers is in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfoEndpoint
from authlib.oidc.core import UserInfo as UserInfoClaims
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError
from flask import Flask, current_app, g
from joserfc.jwk import RSAKey
from sqlalchemy import select, update

from scim_server.db import db, utcnow
from scim_server.models import User
from sso.extension import sso_extension
from sso.provider.claims import refusal_reason, user_claims
from sso.provider.context import issuer, record_event
from sso.provider.keys import active_key, create_key, encryption_secret, private_key
from sso.provider.models import OAuthClient, OAuthCode, OAuthToken, secret_hash
from sso.signin.session import ended_id

SCOPES = ["openid", "profile", "email"]
MAX_NONCE = 255


@dataclass(frozen=True)
class SignedIn:
    """The person the SSO session vouches for, and when they authenticated."""

    user: User
    auth_time: int
    amr: tuple[str, ...] = ()  # RFC 8176 methods of that sign-in (``sso.signin.amr``)
    session_id: str | None = None  # the sign-in session's random id (``sso.signin.session``)


def still_current(user: User | None, epoch: int, session_id: str | None) -> User | None:
    """``user``, if it may still sign in and the sign-in session a code or token came from
    was not ended since: by a password set or removed (``passwords.end_sessions`` moves the
    epoch on) or by its sign-out (``session_id`` recorded as ended; one read by primary
    key; None, a row from before ids were kept: not checked). One rule for codes and
    tokens: a leaver's, an intruder's or a signed-out session's grant stops at once,
    checked on each use as the SSO session is (``sso.signin.session.speaks_for``)."""
    if user is None or refusal_reason(user) is not None or user.session_epoch != epoch:
        return None
    if session_id is not None and ended_id(db.session, user.org_id, session_id):
        return None
    return user


def query_client(client_id: str) -> OAuthClient | None:
    client = db.session.get(OAuthClient, client_id)
    return client if client is not None and client.revoked_at is None else None


def save_token(token: dict[str, Any], request: OAuth2Request) -> None:
    """Keep the access token's hash; any node can then check it."""
    user, client = request.user, request.client
    # The code grant authenticated both (authenticate_user, query_client) before this.
    assert isinstance(user, User) and isinstance(client, OAuthClient)
    code: OAuthCode | None = request.authorization_code
    now = utcnow()
    db.session.add(
        OAuthToken(
            token_hash=secret_hash(token["access_token"]),
            client_id=client.client_id,
            org_id=user.org_id,
            user_id=user.id,
            scope=token.get("scope") or "",
            code_hash=code.code_hash if code is not None else None,
            # authenticate_user checked the code's epoch is still the account's, and that
            # its session was not signed out.
            session_epoch=user.session_epoch,
            session_id=code.session_id if code is not None else None,
            issued_at=now,
            expires_at=now + timedelta(seconds=int(token["expires_in"])),
        )
    )
    record_event(
        user.org_id,
        "oauth.token",
        "client",
        client.client_id,
        client.name,
        resource_type="User",
        resource_id=user.id,
        user_name=user.user_name,
        detail=f"tokens issued to {client.name} (scope: {token.get('scope')})",
    )


def repeated_parameter(request: OAuth2Request) -> str | None:
    """The name of a parameter sent more than once (query and body together), or None."""
    assert request.payload is not None  # authlib's Flask request always has one
    return next((k for k, v in request.payload.datalist.items() if len(v) > 1), None)


def _refuse_repeated(request: OAuth2Request) -> None:
    """RFC 6749 §3.1 / §3.2: no parameter more than once, at either endpoint; §5.2
    invalid_request. The name is only echoed when it is a plain one (error_description
    is printable ASCII)."""
    name = repeated_parameter(request)
    if name is None:
        return
    shown = f" {name!r}" if name.isascii() and name.isidentifier() and len(name) <= 40 else ""
    raise InvalidRequestError(f"Parameter{shown} repeated: each may be sent once.")


def authenticate_client_basic(
    query_client: Callable[[str], OAuthClient | None], request: OAuth2Request
) -> OAuthClient | None:
    """``client_secret_basic`` (RFC 6749 §2.3.1) as authlib's, except that credentials that
    are not base64 of UTF-8 text are §5.2's 401 invalid_client: authlib let the decoding
    error through (a 500)."""
    try:
        # The stubs want a dict; authlib only calls .get("Authorization") on it.
        client_id, secret = extract_basic_authorization(request.headers)  # type: ignore[arg-type]
    except ValueError:  # UnicodeDecodeError; b64decode of a str that is not ASCII
        raise InvalidClientError(
            status_code=401, description="The Basic credentials are not base64 of UTF-8 text."
        ) from None
    if not client_id or not secret:
        return None
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(
            status_code=401, description="The client does not exist on this server."
        )
    return client if client.check_client_secret(secret) else None


def _uses_basic(request: OAuth2Request) -> bool:
    scheme = ((request.headers or {}).get("Authorization") or "").split(None, 1)
    return bool(scheme) and scheme[0].lower() == "basic"


class NoRequestObjects:
    """OIDC Core §6.1 / §6.2: ``request`` and ``request_uri`` are not supported, and a
    request carrying one is refused (to the client: the redirect_uri is known good by
    then), never answered from the outer parameters alone."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.refuse)

    @staticmethod
    def refuse(grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if "request" in data:
            raise RequestNotSupportedError(description="Request objects are not supported.")
        if "request_uri" in data:
            raise RequestURINotSupportedError(description="request_uri is not supported.")


def signer() -> RSAKey:
    """The current signing key, made on first use (in the request's own transaction)."""
    key = g.get("_oauth_signer")
    if key is None:
        secret = encryption_secret(current_app)
        row = active_key(db.session) or create_key(db.session, secret)
        key = g._oauth_signer = private_key(row, secret, sso_extension().signing_keys)
    return key


class S256CodeChallenge(CodeChallenge):
    """PKCE for every client, S256 only (RFC 9700 §2.1.1: plain and no PKCE are refused)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        # RFC 7636 §4.3: an absent method means "plain", which we do not accept.
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):
    """RFC 6749 §4.1 with codes in the database: single use, short-lived, hashed."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    @staticmethod
    def validate_no_multiple_request_parameter(request: OAuth2Request) -> None:
        # authlib checks five parameters; a second max_age or nonce is as ambiguous.
        _refuse_repeated(request)

    def validate_token_request(self) -> None:
        """RFC 6749 §3.2 and §2.3 before authlib's checks: no repeated parameter, and one
        client authentication method (HTTP Basic and a client_secret in the body are two;
        §5.2 invalid_request). A client_id in the body beside Basic is no second method."""
        _refuse_repeated(self.request)
        assert self.request.payload is not None  # authlib's Flask request always has one
        if _uses_basic(self.request) and "client_secret" in self.request.payload.data:
            raise InvalidRequestError(
                "Use one client authentication method: HTTP Basic or client_secret, not both."
            )
        super().validate_token_request()

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        signed_in, client, payload = request.user, request.client, request.payload
        # authorize() passes the SignedIn as grant_user; authlib checked the client and payload.
        assert isinstance(signed_in, SignedIn) and isinstance(client, OAuthClient)
        assert payload is not None
        user = signed_in.user
        now = utcnow()
        db.session.add(
            OAuthCode(
                code_hash=secret_hash(code),
                client_id=client.client_id,
                org_id=user.org_id,
                user_id=user.id,
                redirect_uri=payload.redirect_uri,
                scope=request.scope,
                nonce=payload.data.get("nonce"),
                code_challenge=payload.data["code_challenge"],
                code_challenge_method="S256",
                auth_time=signed_in.auth_time,
                amr=list(signed_in.amr) or None,
                # The session's (``_signed_in`` checked it is the account's): a password set
                # or removed before redemption ends the code with the session.
                session_epoch=user.session_epoch,
                # Its sign-out, before redemption or after, ends the code and its tokens.
                session_id=signed_in.session_id,
                expires_at=now + timedelta(seconds=current_app.config["OAUTH_CODE_SECONDS"]),
                created_at=now,
            )
        )
        record_event(
            user.org_id,
            "oauth.authorize",
            "user",
            user.id,
            user.login_name or user.user_name,
            resource_type="User",
            resource_id=user.id,
            user_name=user.user_name,
            detail=f"signed in to {client.name}",
        )

    def query_authorization_code(self, code: str, client: ClientMixin) -> OAuthCode | None:
        row = db.session.get(OAuthCode, secret_hash(code))
        if row is None or row.client_id != client.get_client_id():
            return None
        if row.used_at is not None:
            _revoke_reused(row)
            return None
        return row if row.expires_at > utcnow() else None

    def delete_authorization_code(self, authorization_code: OAuthCode) -> None:
        # Atomic claim: of two nodes redeeming one code at once, exactly one wins.
        claimed = db.session.execute(
            update(OAuthCode)
            .where(OAuthCode.code_hash == authorization_code.code_hash)
            .where(OAuthCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidGrantError("The authorization code was already used.")

    def authenticate_user(self, authorization_code: OAuthCode) -> User | None:
        # The person may have been deactivated, or the session ended, since the code was issued.
        code = authorization_code
        user = db.session.get(User, (code.org_id, code.user_id))
        return still_current(user, code.session_epoch, code.session_id)


def _revoke_reused(row: OAuthCode) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes the tokens it produced; logged, committed."""
    s = db.session
    s.execute(
        update(OAuthToken)
        .where(OAuthToken.code_hash == row.code_hash, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    record_event(
        row.org_id,
        "oauth.token",
        "client",
        row.client_id,
        None,
        outcome="failure",
        resource_type="User",
        resource_id=row.user_id,
        detail="authorization code reused; the tokens it produced are revoked",
    )
    s.commit()


class OpenIDCodeExtension(OpenIDCode):
    """OIDC Core §3.1: the id_token, signed RS256 with the current key."""

    def validate_openid_authorization_request(self, grant: Any, redirect_uri: str) -> None:
        nonce = grant.request.payload.data.get("nonce")
        if nonce and len(nonce) > MAX_NONCE:
            raise InvalidRequestError(f"'nonce' is longer than {MAX_NONCE} characters.")
        super().validate_openid_authorization_request(grant, redirect_uri)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        assert request.payload is not None  # the authorization request was parsed
        client_id: str = request.payload.client_id
        stmt = select(OAuthCode.code_hash).where(
            OAuthCode.client_id == client_id, OAuthCode.nonce == nonce
        )
        return db.session.scalar(stmt.limit(1)) is not None

    def resolve_client_private_key(self, client: OAuthClient) -> RSAKey:
        return signer()

    def get_client_algorithm(self, client: OAuthClient) -> str:
        return "RS256"

    def get_encode_header(self, client: OAuthClient) -> dict[str, Any]:
        return {"alg": "RS256", "kid": signer().kid}

    def get_client_claims(self, client: OAuthClient) -> dict[str, Any]:
        now = int(utcnow().timestamp())
        lifetime = current_app.config["OAUTH_ID_TOKEN_SECONDS"]
        return {"iss": issuer(), "aud": client.client_id, "iat": now, "exp": now + lifetime}

    def generate_user_info(self, user: User, scope: str) -> UserInfoClaims:
        return UserInfoClaims(user_claims(db.session, user, scope))


class BearerValidator(BearerTokenValidator):
    """RFC 6750: the token's hash must be stored, unexpired, unrevoked, its user still allowed
    and its sign-in session not ended by a password set or removed, nor signed out."""

    def authenticate_token(self, token_string: str) -> OAuthToken | None:
        row = db.session.get(OAuthToken, secret_hash(token_string))
        if row is None or query_client(row.client_id) is None:
            return None
        user = db.session.get(User, (row.org_id, row.user_id))
        # A leaver's token, an intruder's after the owner's reset, or one of a session
        # signed out, stops working at once.
        return row if still_current(user, row.session_epoch, row.session_id) is not None else None


class UserInfo(UserInfoEndpoint):
    """OIDC Core §5.3, with the same claims as the id_token."""

    def get_issuer(self) -> str:
        return issuer()

    def generate_user_info(self, user: User, scope: str) -> UserInfoClaims:
        return UserInfoClaims(user_claims(db.session, user, scope))


def build_server(app: Flask) -> AuthorizationServer:
    """The application's authorization server and its resource protector."""
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", SCOPES)
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN", {"authorization_code": app.config["OAUTH_ACCESS_TOKEN_SECONDS"]}
    )
    server = AuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.register_client_auth_method("client_secret_basic", authenticate_client_basic)
    server.register_grant(
        CodeGrant, [NoRequestObjects(), S256CodeChallenge(required=True), OpenIDCodeExtension()]
    )
    protector = ResourceProtector()
    protector.register_token_validator(BearerValidator())
    # The stubs do not declare UserInfoEndpoint an Endpoint; authlib registers it by ENDPOINT_NAME.
    server.register_endpoint(UserInfo(resource_protector=protector))  # type: ignore[arg-type]
    return server
