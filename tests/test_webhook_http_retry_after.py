"""Retry-After in a receiver's answer (RFC 9110 §10.2.3): read by ``webhook_http.post``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scim_server.webhook_http import OutboundPolicy, post, retry_after


@contextmanager
def _answering(status: int, headers: dict[str, str]) -> Iterator[str]:
    """A receiver on 127.0.0.1 answering every POST with ``status`` and ``headers``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_answer_carries_retry_after_in_seconds():
    """A 429 with ``Retry-After: 120`` (RFC 9110 §10.2.3, delay-seconds): the answer says 120."""
    with _answering(429, {"Retry-After": "120"}) as url:
        answer = post(url, b"{}", {}, OutboundPolicy(development=True))
    assert answer.status == 429 and answer.retry_after == 120


def test_an_answer_without_retry_after_has_none():
    """No header: retry_after is None (the worker's own backoff applies)."""
    with _answering(503, {}) as url:
        answer = post(url, b"{}", {}, OutboundPolicy(development=True))
    assert answer.status == 503 and answer.retry_after is None


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        (" 30 ", 30),
        ("0", 1),  # at least a second
        ("86400", 3600),  # at most an hour
        ("99999999999999999999999", 3600),
        (formatdate(NOW + 90, usegmt=True), 90),  # RFC 9110 §10.2.3: an HTTP-date
        (formatdate(NOW - 90, usegmt=True), 1),  # past: at least a second
        (formatdate(NOW + 7 * 86400, usegmt=True), 3600),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 1),  # obsolete RFC 850 form, long past
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values(value, seconds):
    """Seconds or an HTTP-date, clamped to 1 s - 1 h; anything else is no value."""
    assert retry_after(value, NOW) == seconds
