"""The checks our code grant adds to authlib's, request by request.

At the authorization endpoint: what discovery does not offer is refused, never ignored
(``HonouredOnly``, ``NoRequestObjects``), PKCE is S256 for every client
(``S256CodeChallenge``). At both endpoints no parameter comes twice
(``refuse_repeated``). At the token endpoint one client authenticates, one way
(``refuse_two_clients``, ``authenticate_client_basic``). No refusal's error_description
carries the request's words, a plain parameter name aside (RFC 6749 §4.1.2.1: printable
ASCII without a quote or backslash; authlib raises ValueError, a 500, for any other).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.errors import (
    AccountSelectionRequiredError,
    ConsentRequiredError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)

from sso.provider.models import OAuthClient


def repeated_parameter(request: OAuth2Request) -> str | None:
    """The name of a parameter sent more than once (query and body together), or None."""
    assert request.payload is not None  # authlib's Flask request always has one
    return next((k for k, v in request.payload.datalist.items() if len(v) > 1), None)


def refuse_repeated(request: OAuth2Request) -> None:
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


def _basic_client_id(request: OAuth2Request) -> str | None:
    """The client_id of the Basic credentials; None if they cannot be read (authenticating
    them answers that: ``authenticate_client_basic``)."""
    try:
        client_id, _ = extract_basic_authorization(request.headers)  # type: ignore[arg-type]
    except ValueError:
        return None
    return client_id or None


def refuse_two_clients(request: OAuth2Request) -> None:
    """RFC 6749 §2.3: one client authentication method per request; §5.2 invalid_request.
    HTTP Basic and a client_secret in the body are two. A client_id in the body beside
    Basic is no second method (authlib's own clients send it), but only when it names the
    same client: another is a bad request (authlib ignored it)."""
    if not _uses_basic(request):
        return
    assert request.payload is not None  # authlib's Flask request always has one
    data = request.payload.data
    if "client_secret" in data:
        raise InvalidRequestError(
            "Use one client authentication method: HTTP Basic or client_secret, not both."
        )
    named, basic = data.get("client_id"), _basic_client_id(request)
    if named is not None and basic is not None and named != basic:
        raise InvalidRequestError(
            "The client_id in the body is not the client of the Basic credentials."
        )


# ``prompt_values_supported``: what a request's ``prompt`` may hold (and consent and
# select_account, refused with their own errors above).
PROMPTS = ("none", "login")


class HonouredOnly:
    """What discovery does not offer is refused to the client (with its state: the
    redirect_uri is known good by then), before any sign-in, never silently ignored:

    - a ``response_mode`` other than query (``response_modes_supported``): invalid_request;
    - OIDC Core §3.1.2.1: ``prompt`` consent or select_account (``prompt_values_supported``
      is none and login): "If it cannot obtain [it], it MUST return an error",
      consent_required / account_selection_required. No consent is ever asked and no
      account offered to choose, so neither can be obtained, with a session or after a
      sign-in (which drops the prompt on its way back: ``endpoints.SATISFIED_BY_SIGN_IN``).
    """

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.refuse)

    @staticmethod
    def refuse(grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        # RFC 6749 §3.1: a parameter sent without a value is as if omitted.
        mode = data.get("response_mode")
        if mode and mode != "query":
            raise InvalidRequestError("Only response_mode=query is supported.")
        prompts = (data.get("prompt") or "").split()
        if "none" in prompts:
            # Alone it asks for nothing; with another value authlib's check answers
            # invalid_request (``validate_request_prompt``).
            return
        if "consent" in prompts:
            raise ConsentRequiredError(
                description="prompt=consent is not supported: no consent is asked here."
            )
        if "select_account" in prompts:
            raise AccountSelectionRequiredError(
                description="prompt=select_account is not supported: no account choice here."
            )
        unknown = [p for p in prompts if p not in PROMPTS]
        if unknown:
            # ``create`` (OIDC Initiating User Registration §4.1: invalid_request when not
            # offered) and anything else discovery does not list: authlib would drop them.
            raise InvalidRequestError(
                f"prompt={unknown[0]} is not supported (supported: {', '.join(PROMPTS)})."
            )


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
