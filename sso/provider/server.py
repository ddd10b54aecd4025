"""authlib's authorization server, wired to our storage: the code grant, PKCE, OIDC, userinfo.

The checks the grant adds to authlib's on each request are ``sso.provider.checks``.
One server per application (``app.extensions["oauth_server"]``), so that no
state is shared between apps. Everything it remembers is in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oidc.core import OpenIDCode, UserInfoEndpoint
from authlib.oidc.core import UserInfo as UserInfoClaims
from flask import Flask, current_app, g
from joserfc.jwk import RSAKey
from sqlalchemy import select, update

from scim_server.db import db, utcnow
from scim_server.models import User
from sso.extension import sso_extension
from sso.provider.checks import (
    HonouredOnly,
    NoRequestObjects,
    S256CodeChallenge,
    authenticate_client_basic,
    refuse_repeated,
    refuse_two_clients,
)
from sso.provider.claims import refusal_reason, user_claims
from sso.provider.context import issuer, record_event
from sso.provider.keys import active_key, create_key, encryption_secret, private_key
from sso.provider.models import OAuthClient, OAuthCode, OAuthToken, secret_hash
from sso.signin.session import connection_open, ended_id, local_allowed

SCOPES = ["openid", "profile", "email"]
MAX_NONCE = 255
# RFC 6749 §4.1.2.1: error_description is printable ASCII without a quote or backslash, and
# authlib raises ValueError (a 500) for any other: never the request's own words in one.
UNSUPPORTED_RESPONSE_TYPE = "Only the response_type code is supported."
UNREGISTERED_REDIRECT_URI = "The redirect_uri is not registered for this client."


@dataclass(frozen=True)
class SignedIn:
    """The person the SSO session vouches for, and when they authenticated."""

    user: User
    auth_time: int
    amr: tuple[str, ...] = ()  # RFC 8176 methods of that sign-in (``sso.signin.amr``)
    session_id: str | None = None  # the sign-in session's random id (``sso.signin.session``)
    connection_id: str | None = None  # the SSO connection it came through; None: a password


def still_current(
    user: User | None,
    epoch: int,
    session_id: str | None,
    connection_id: str | None,
    auth_time: int | None,
) -> User | None:
    """``user``, if it may still sign in and the sign-in session a code or token came from
    was not ended since: by a password set or removed (``passwords.end_sessions`` moves the
    epoch on), by its sign-out (``session_id`` recorded as ended; one read by primary
    key; None, a row from before ids were kept: not checked), or by its SSO connection
    disabled or deleted (``connection_open``: one read by primary key; enabled again, it
    vouches only for sign-ins, ``auth_time``, after its disabling; None, a password
    sign-in or a row from before 0042: not checked), or, made without a connection, by the
    organization going SSO-only (``local_allowed``). One rule for codes and tokens: a
    leaver's, an intruder's, a signed-out session's or a distrusted IdP's grant stops at
    once, checked on each use as the SSO session is (``sso.signin.session.speaks_for``)."""
    if user is None or refusal_reason(user) is not None or user.session_epoch != epoch:
        return None
    if session_id is not None and ended_id(db.session, user.org_id, session_id):
        return None
    if not connection_open(db.session, user.org_id, connection_id, auth_time):
        return None
    if not local_allowed(db.session, user.org_id, connection_id):
        return None  # a password sign-in's, and the organization has gone SSO-only since
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
            # authenticate_user checked the code's epoch is still the account's, that its
            # session was not signed out and that its connection still vouches for it.
            session_epoch=user.session_epoch,
            session_id=code.session_id if code is not None else None,
            connection_id=code.connection_id if code is not None else None,
            auth_time=code.auth_time if code is not None else None,
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


def signer() -> RSAKey:
    """The current signing key, made on first use (in the request's own transaction)."""
    key = g.get("_oauth_signer")
    if key is None:
        secret = encryption_secret(current_app)
        row = active_key(db.session) or create_key(db.session, secret)
        key = g._oauth_signer = private_key(row, secret, sso_extension().signing_keys)
    return key


class CodeGrant(AuthorizationCodeGrant):
    """RFC 6749 §4.1 with codes in the database: single use, short-lived, hashed."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    @staticmethod
    def validate_no_multiple_request_parameter(request: OAuth2Request) -> None:
        # authlib checks five parameters; a second max_age or nonce is as ambiguous.
        refuse_repeated(request)

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: ClientMixin) -> str:
        """RFC 6749 §3.1.2.3: the redirect_uri must be registered for the client; OIDC
        Core §3.1.2.1: it is required (no default). A refusal raised here is shown on our
        page, never redirected; its description is fixed (authlib's carried the URI: a
        quote, a tab or a non-ASCII character in it made authlib's own check a 500)."""
        assert request.payload is not None  # authlib's Flask request always has one
        uri: str | None = request.payload.redirect_uri
        if not uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if not client.check_redirect_uri(uri):
            raise InvalidRequestError(UNREGISTERED_REDIRECT_URI)
        return uri

    def validate_token_request(self) -> None:
        """RFC 6749 §3.2 and §2.3 before authlib's checks: no repeated parameter, and one
        client, authenticated one way (``checks.refuse_two_clients``)."""
        refuse_repeated(self.request)
        refuse_two_clients(self.request)
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
                # And so does its connection's disabling or deletion (``still_current``).
                connection_id=signed_in.connection_id,
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
            _revoke_reused(Redeemed.of(row))
            return None
        return row if row.expires_at > utcnow() else None

    def delete_authorization_code(self, authorization_code: OAuthCode) -> None:
        """Atomic claim: of two nodes redeeming one code at once, exactly one wins. The
        loser read the code unused before the winner committed: that is a code redeemed
        twice, as a later reuse (``query_authorization_code``) is. RFC 6749 §4.1.2: its own
        token and event are rolled back, the winner's tokens revoked (committed), and it
        gets invalid_grant."""
        code = Redeemed.of(authorization_code)
        claimed = db.session.execute(
            update(OAuthCode)
            .where(OAuthCode.code_hash == code.code_hash)
            .where(OAuthCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.session.rollback()
            _revoke_reused(code)
            raise InvalidGrantError("The authorization code was already used.")

    def authenticate_user(self, authorization_code: OAuthCode) -> User | None:
        # The person may have been deactivated, or the session ended (its connection
        # disabled or deleted too), since the code was issued.
        code = authorization_code
        user = db.session.get(User, (code.org_id, code.user_id))
        return still_current(
            user, code.session_epoch, code.session_id, code.connection_id, code.auth_time
        )


@dataclass(frozen=True)
class Redeemed:
    """What revoking a code's tokens needs of it, read before a rollback expires the row."""

    code_hash: str
    org_id: str
    client_id: str
    user_id: str

    @classmethod
    def of(cls, row: OAuthCode) -> Redeemed:
        return cls(row.code_hash, row.org_id, row.client_id, row.user_id)


def _revoke_reused(code: Redeemed) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes the tokens it produced; logged, committed."""
    s = db.session
    s.execute(
        update(OAuthToken)
        .where(OAuthToken.code_hash == code.code_hash, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    record_event(
        code.org_id,
        "oauth.token",
        "client",
        code.client_id,
        None,
        outcome="failure",
        resource_type="User",
        resource_id=code.user_id,
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
    and its sign-in session not ended by a password set or removed, nor signed out, nor by
    its SSO connection's disabling or deletion."""

    def authenticate_token(self, token_string: str) -> OAuthToken | None:
        row = db.session.get(OAuthToken, secret_hash(token_string))
        if row is None or query_client(row.client_id) is None:
            return None
        user = db.session.get(User, (row.org_id, row.user_id))
        # A leaver's token, an intruder's after the owner's reset, one of a session signed
        # out or of a connection disabled or deleted, stops working at once.
        current = still_current(
            user, row.session_epoch, row.session_id, row.connection_id, row.auth_time
        )
        return row if current is not None else None


class UserInfo(UserInfoEndpoint):
    """OIDC Core §5.3, with the same claims as the id_token."""

    def get_issuer(self) -> str:
        return issuer()

    def generate_user_info(self, user: User, scope: str) -> UserInfoClaims:
        return UserInfoClaims(user_claims(db.session, user, scope))


class Server(AuthorizationServer):
    """authlib's Flask authorization server, answering an unsupported response_type in
    fixed words."""

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        """RFC 6749 §4.1.2.1: unsupported_response_type, to the redirect_uri only once the
        client and the redirect_uri are known good (else our page). authlib's error carried
        the response_type as its description: a quote, a backslash, a tab or a non-ASCII
        character in it made authlib's own character check a 500."""
        if CodeGrant.check_authorization_endpoint(request):
            return super().get_authorization_grant(request)
        assert request.payload is not None  # authlib's Flask request always has one
        raise UnsupportedResponseTypeError(
            request.payload.response_type,
            description=UNSUPPORTED_RESPONSE_TYPE,
            redirect_uri=_known_redirect_uri(request),
        )


def _known_redirect_uri(request: OAuth2Request) -> str | None:
    """The request's redirect_uri if it is registered for its client (an active one)."""
    assert request.payload is not None  # authlib's Flask request always has one
    client_id, uri = request.payload.client_id, request.payload.redirect_uri
    client = query_client(client_id) if client_id else None
    return uri if client is not None and uri and client.check_redirect_uri(uri) else None


def build_server(app: Flask) -> AuthorizationServer:
    """The application's authorization server and its resource protector."""
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", SCOPES)
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN", {"authorization_code": app.config["OAUTH_ACCESS_TOKEN_SECONDS"]}
    )
    server = Server()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.register_client_auth_method("client_secret_basic", authenticate_client_basic)
    server.register_grant(
        CodeGrant,
        [
            NoRequestObjects(),
            HonouredOnly(),
            S256CodeChallenge(required=True),
            OpenIDCodeExtension(),
        ],
    )
    protector = ResourceProtector()
    protector.register_token_validator(BearerValidator())
    # The stubs do not declare UserInfoEndpoint an Endpoint; authlib registers it by ENDPOINT_NAME.
    server.register_endpoint(UserInfo(resource_protector=protector))  # type: ignore[arg-type]
    return server
