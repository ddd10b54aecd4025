"""The token request: the authorization code and PKCE verifier for an id_token (RFC 6749 §4.1.3)."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from sso.oidc.config import OidcConnectionConfig, OidcError, wire_text
from sso.oidc.http import fetch, json_object


def exchange_code(
    config: OidcConnectionConfig,
    doc: Mapping[str, Any],
    code: str,
    state_data: Mapping[str, Any],
    http: requests.Session,
) -> dict[str, Any]:
    """The token request (RFC 6749 §4.1.3, OIDC Core §3.1.3.1) with the PKCE verifier."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": state_data.get("redirect_uri"),
        "code_verifier": state_data.get("code_verifier"),  # RFC 7636 §4.5
    }
    headers = {"Accept": "application/json"}
    # OIDC Discovery §3: token_endpoint_auth_methods_supported defaults to client_secret_basic.
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if not config.client_secret:
        data["client_id"] = config.client_id
    elif "client_secret_basic" in methods:
        # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
        pair = f"{quote(config.client_id, safe='')}:{quote(config.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode()
    elif "client_secret_post" in methods:
        data.update(client_id=config.client_id, client_secret=config.client_secret)
    else:
        raise OidcError("token_request_failed", f"no supported client auth method in {methods}")
    url = doc["token_endpoint"]
    status, _, body = fetch(
        http, "POST", url, "token_request_failed", "token endpoint", data=data, headers=headers
    )
    if status != 200:
        try:
            err = json_object(body, "token_request_failed", "token error")
            text = f"{wire_text(err.get('error'))} ({wire_text(err.get('error_description'))})"
        except OidcError:
            text = "no error body"
        raise OidcError("token_request_failed", f"token endpoint answered HTTP {status}: {text}")
    token = json_object(body, "token_request_failed", "token response")
    # OIDC Core §3.1.3.3: a successful response MUST carry an id_token and a Bearer token.
    if not isinstance(token.get("id_token"), str):
        raise OidcError("missing_id_token", "token response has no id_token")
    if not isinstance(token.get("access_token"), str):
        raise OidcError("token_request_failed", "token response has no access_token")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise OidcError("token_request_failed", "token_type is not Bearer")
    return token
