"""Webhook URLs are stored as the URI they are sent as (RFC 3987 §3.1: IRI to URI).

http.client can put only ASCII on the request line: a subscription URL with a non-ASCII
path (``/hooks/événements``) accepted as typed failed every delivery for 3 days, then
was disabled. It is percent-encoded when saved, so the URL an admin reads is the one sent;
what cannot become a URI (or be sent) is a 400 that creates nothing."""

from __future__ import annotations

import socket

import pytest

from scim_server.webhook_http import OutboundPolicy, OutboundRefusedError, as_uri
from tests.support.admin_api import ok, person
from tests.support.raw_http import raw_receiver
from tests.support.webhooks import webhook_worker


@pytest.mark.parametrize(
    ("iri", "uri"),
    [
        ("https://hooks.example.com/in", "https://hooks.example.com/in"),
        ("https://hooks.example.com/in/%C3%A9", "https://hooks.example.com/in/%C3%A9"),
        (
            "https://hooks.example.com/événements?tag=ü&x=1#à",
            "https://hooks.example.com/%C3%A9v%C3%A9nements?tag=%C3%BC&x=1#%C3%A0",
        ),
        ("https://BÜCHER.example:8443/in", "https://xn--bcher-kva.example:8443/in"),
        ("https://[2001:db8::1]:8443/é", "https://[2001:db8::1]:8443/%C3%A9"),
    ],
)
def test_an_iri_becomes_the_uri_it_stands_for(iri, uri):
    """Host in IDNA, other non-ASCII as UTF-8 %XX; ASCII (and existing escapes) unchanged."""
    assert as_uri(iri) == uri


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/\ud800",  # a lone surrogate: no UTF-8 for it
        "https://é..example/in",  # an empty IDNA label
        "https://hooks.example.com/in\tx",  # urlsplit would drop the tab silently
        "https://hooks.example.com/é\nx",
        "https://hooks.example.com/in\x01",
        "https://hooks.example.com/in\x7f",
    ],
)
def test_what_cannot_be_sent_is_refused(url):
    """No URI, or a control character http.client refuses on the request line."""
    with pytest.raises(OutboundRefusedError):
        OutboundPolicy().check_url(as_uri(url))


def _accepting(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def test_a_non_ascii_path_is_stored_percent_encoded_and_delivered(app, scim, admin):
    """POST /api/v1/webhooks with an IRI: 201 with the URI, and deliveries go to that path."""
    with raw_receiver(_accepting) as receiver:
        sub = ok(admin.post("/api/v1/webhooks", {"url": receiver.url + "/événements"}), 201)
        assert sub["url"] == receiver.url + "/%C3%A9v%C3%A9nements"
        assert ok(admin.get(f"/api/v1/webhooks/{sub['id']}"))["url"] == sub["url"]
        person(scim, "ann@example.com")
        webhook_worker(app).send_webhooks()
        lines = list(receiver.request_lines)
    assert lines == [b"POST /hooks/%C3%A9v%C3%A9nements HTTP/1.1"]
    (entry,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert entry["state"] == "delivered"


def test_an_update_to_an_iri_stores_the_uri(admin):
    """PATCH stores the URL as POST does."""
    sub = ok(admin.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/in"}), 201)
    view = ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"url": "http://127.0.0.1:9/ünd"}))
    assert view["url"] == "http://127.0.0.1:9/%C3%BCnd"
    assert ok(admin.get(f"/api/v1/webhooks/{sub['id']}"))["url"] == view["url"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/in\tx",
        "http://127.0.0.1:9/in\x01",
        "https://é..example/in",
        "http://127.0.0.1:9/" + "é" * 400,  # 2,419 characters once percent-encoded
    ],
)
def test_a_url_that_cannot_be_sent_is_a_400_that_creates_nothing(admin, url):
    """A clear 400 naming the url; no subscription made, none changed."""
    sub = ok(admin.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/in"}), 201)
    before = ok(admin.get("/api/v1/webhooks"))
    created = admin.post("/api/v1/webhooks", {"url": url})
    updated = admin.patch(f"/api/v1/webhooks/{sub['id']}", {"url": url})
    for resp in (created, updated):
        assert resp.status_code == 400, resp.get_data(as_text=True)
        assert resp.get_json()["detail"].startswith("url: ")
    assert ok(admin.get("/api/v1/webhooks")) == before
