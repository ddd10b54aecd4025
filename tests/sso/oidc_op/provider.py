"""A real OpenID provider on 127.0.0.1, built from Authlib's server side.

Authorization code flow with PKCE (``CodeChallenge``), OpenID Connect
(``OpenIDCode``) and RFC 9207 (``IssuerParameter``), auto-consenting one user.
Tests steer it through plain attributes: extra or removed discovery fields,
a hook that rewrites the token response (to serve tokens signed by the test),
the published and the signing keys, and userinfo overrides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, jsonify, request
from joserfc.jwk import Key, RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server

CLIENT_ID = "rp-client"
CLIENT_SECRET = "rp-secret with spaces:and+symbols"
REDIRECT_URI = "http://127.0.0.1/sso/oidc/callback"


def rsa_key(kid: str) -> RSAKey:
    """A fresh signing key, made here: no key material is fetched or shipped."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256"}, private=True)


@dataclass
class Client(ClientMixin):
    """The one registered relying party."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return REDIRECT_URI

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == REDIRECT_URI

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    """An issued authorization code and what it was issued for."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: dict[str, Any]
    amr: list[Any] | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> None:
        return None

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[Any] | None:
        return self.amr


@dataclass
class LocalOP:
    """The provider's state; every attribute may be changed by a test."""

    keys: list[Key]
    issuer: str = ""
    user: dict[str, Any] = field(default_factory=dict)
    client: Client = field(default_factory=Client)
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    token_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    userinfo_overrides: dict[str, Any] = field(default_factory=dict)
    deny: bool = False
    send_iss: bool = True
    amr: list[Any] | None = None  # the id_token's amr (OIDC Core §2), when set
    published: list[Key] = field(default_factory=list)
    signing_key: Key | None = None
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    jwks_requests: int = 0
    token_requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        """Back to a well-behaved provider with the first key."""
        self.user = {
            "sub": "user-42",
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice Liddell",
            "given_name": "Alice",
            "family_name": "Liddell",
            "groups": ["Engineering"],
        }
        self.client = Client()
        self.discovery_overrides = {}
        self.token_hook = None
        self.userinfo_overrides = {}
        self.deny = False
        self.send_iss = True
        self.amr = None
        self.published = [self.keys[0]]
        self.signing_key = self.keys[0]
        self.jwks_requests = 0
        self.token_requests = []

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(self.client.auth_methods),
            "authorization_response_iss_parameter_supported": True,
        }
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v is not None}


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    op: LocalOP

    def save_authorization_code(self, code: str, req: Any) -> None:
        data = req.payload.data
        self.op.codes[code] = Code(
            code=code,
            client_id=req.client.get_client_id(),
            redirect_uri=req.payload.redirect_uri,
            scope=req.payload.scope,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            user=req.user,
            amr=self.op.amr,
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = self.op.codes.get(code)
        return found if found and found.client_id == client.get_client_id() else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.op.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> dict[str, Any]:
        return authorization_code.user


class _OpenIDCode(OpenIDCode):
    def __init__(self, op: LocalOP) -> None:
        super().__init__(require_nonce=True)
        self.op = op

    def exists_nonce(self, nonce: str, req: Any) -> bool:
        return False

    def resolve_client_private_key(self, client: Client) -> Key | None:
        return self.op.signing_key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, Any]:
        assert self.op.signing_key is not None
        return {"alg": "RS256", "kid": self.op.signing_key.kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": self.op.issuer, "aud": [client.get_client_id()]}

    def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
        return UserInfo(user)


class _Issuer(IssuerParameter):
    def __init__(self, op: LocalOP) -> None:
        self.op = op

    def get_issuer(self) -> str | None:
        return self.op.issuer if self.op.send_iss else None


def create_op_app(op: LocalOP) -> Flask:
    """The provider's Flask app: discovery, authorize (auto-consent), token, userinfo, JWKS."""
    app = Flask(__name__)

    def save_token(token: dict[str, Any], req: Any) -> None:
        op.tokens[token["access_token"]] = req.user

    server = AuthorizationServer(app, query_client=lambda cid: op.client, save_token=save_token)
    grant_cls = type("CodeGrant", (_CodeGrant,), {"op": op})
    server.register_grant(grant_cls, [CodeChallenge(required=True), _OpenIDCode(op)])
    server.register_extension(_Issuer(op))

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(op.discovery())

    @app.get("/authorize")
    def authorize() -> Response:
        user = None if op.deny else dict(op.user)
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        return server.create_authorization_response(grant_user=user, grant=grant)

    @app.post("/token")
    def token() -> Response:
        op.token_requests.append(
            {"form": request.form.to_dict(), "authorization": request.headers.get("Authorization")}
        )
        response = server.create_token_response()
        if op.token_hook is not None and response.status_code == 200:
            return jsonify(op.token_hook(response.get_json()))
        return response

    @app.get("/userinfo")
    def userinfo() -> tuple[Response, int]:
        user = op.tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:
            return jsonify(error="invalid_token"), 401
        return jsonify({**user, **op.userinfo_overrides}), 200

    @app.get("/jwks")
    def jwks() -> Response:
        op.jwks_requests += 1
        return jsonify({"keys": [k.as_dict(private=False) for k in op.published]})

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: the test output stays readable."""


@contextmanager
def running_op() -> Iterator[LocalOP]:
    """The provider served on an ephemeral 127.0.0.1 port for the duration of the block."""
    op = LocalOP(keys=[rsa_key("k1"), rsa_key("k2"), rsa_key("k3")])
    op.reset()
    server = make_server(
        "127.0.0.1", 0, create_op_app(op), threaded=True, request_handler=_QuietHandler
    )
    op.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield op
    finally:
        server.shutdown()
        thread.join(5)
