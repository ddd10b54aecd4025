"""Back-channel HTTP to the provider: bounded in size and time, never following redirects,
and only to addresses the outbound policy allows (``checked_session``)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from scim_server.webhook_http import (
    OutboundPolicy,
    OutboundRefusedError,
    connect_checked,
    parse_networks,
)
from sso.oidc.config import OidcError

HTTP_TIMEOUT = 5.0  # seconds per connect / read


HTTP_DEADLINE = 10.0  # seconds for a whole response body


MAX_RESPONSE_BYTES = 512 * 1024


def checked_session(config: Mapping[str, Any]) -> requests.Session:
    """A session whose connections go only where a production server may send: a tenant's
    admin chooses the issuer, and discovery names the token, JWKS and userinfo URLs, so
    without this an admin could make the server call its own loopback or private services
    (SSRF). Each resolved address is checked before the connection is made (DNS rebinding
    gets nowhere), as webhooks are (``webhook_http.connect_checked``): public addresses, or
    ``SCIM_IDP_ALLOWED_NETWORKS`` (an IdP inside the network); plain http only to loopback,
    in development."""
    policy = OutboundPolicy(
        development=config.get("SCIM_ENV", "development") == "development",
        allowed_networks=parse_networks(config.get("IDP_ALLOWED_NETWORKS") or ""),
        timeout=HTTP_TIMEOUT,
    )
    http = requests.Session()
    adapter = _CheckedAdapter(policy)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


class _CheckedAdapter(HTTPAdapter):
    """requests' adapter with pools whose connections are made by ``connect_checked``."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy  # before HTTPAdapter's __init__, which makes the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        policy = self.policy

        class Plain(HTTPConnection):
            def _new_conn(self) -> Any:
                return connect_checked(self._dns_host, self.port or 80, policy, plain=True)

        class Tls(HTTPSConnection):
            def _new_conn(self) -> Any:
                return connect_checked(self._dns_host, self.port or 443, policy, plain=False)

        self.poolmanager.pool_classes_by_scheme = {
            "http": type("CheckedPool", (HTTPConnectionPool,), {"ConnectionCls": Plain}),
            "https": type("CheckedTlsPool", (HTTPSConnectionPool,), {"ConnectionCls": Tls}),
        }


def fetch(
    http: requests.Session, method: str, url: str, reason: str, what: str, **kwargs: Any
) -> tuple[int, str, bytes]:
    """One back-channel request with a size and time bound; never follows redirects."""
    started = time.monotonic()
    try:
        with http.request(
            method, url, timeout=HTTP_TIMEOUT, allow_redirects=False, stream=True, **kwargs
        ) as resp:
            body = bytearray()
            # The deadline is checked between chunks: a provider that drips bytes just
            # under the read timeout can still hold a worker for a while.
            for chunk in resp.iter_content(4096):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise OidcError(reason, f"{what}: response over {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() - started > HTTP_DEADLINE:
                    raise OidcError(reason, f"{what}: response took over {HTTP_DEADLINE} s")
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return resp.status_code, ctype, bytes(body)
    except requests.RequestException as exc:
        raise OidcError(reason, f"{what}: {type(exc).__name__} from {url}") from exc
    except OutboundRefusedError as exc:
        raise OidcError(reason, f"{what}: {url} refused: {exc}") from None


def json_object(body: bytes, reason: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise OidcError(reason, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise OidcError(reason, f"{what} is not a JSON object")
    return value
