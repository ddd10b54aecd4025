"""Back-channel HTTP to the provider: bounded in size and time, never following redirects."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from sso.oidc.config import OidcError

HTTP_TIMEOUT = 5.0  # seconds per connect / read


HTTP_DEADLINE = 10.0  # seconds for a whole response body


MAX_RESPONSE_BYTES = 512 * 1024


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


def json_object(body: bytes, reason: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise OidcError(reason, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise OidcError(reason, f"{what} is not a JSON object")
    return value
