"""Outbound webhook HTTP: ``SCIM_WEBHOOK_TIMEOUT_SECONDS`` bounds the whole exchange.

A socket's own timeout is per read: a receiver (its URL is an organization admin's choice)
sending its answer a byte at a time would reset it with each byte and hold the single
worker, and every organization's mail, jobs and webhooks, as long as it liked."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scim_server.webhook_http import OutboundPolicy, post
from tests.support.admin_api import ok, person
from tests.support.raw_http import raw_receiver
from tests.support.webhooks import subscribe, webhook_worker

TIMEOUT = 0.5
POLICY = OutboundPolicy(development=True, timeout=TIMEOUT)
# Well within the 10 x TIMEOUT a dripped answer below takes, with room for a slow machine.
CUT_OFF_BY = 3 * TIMEOUT


def drip_headers(conn: socket.socket) -> None:
    """A status line and a header a byte every 0.1 s (each byte within the timeout): 5 s."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 25:
        conn.sendall(bytes([byte]))
        time.sleep(0.1)
    conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")


def drip_body(conn: socket.socket) -> None:
    """Status and headers at once, then a 50-byte body a byte every 0.1 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
    for _ in range(50):
        conn.sendall(b"x")
        time.sleep(0.1)


def silent(conn: socket.socket) -> None:
    """Reads the request and says nothing."""
    time.sleep(10 * TIMEOUT)


def _post(url: str) -> float:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post(url + "/x", b"{}", {}, POLICY)
    return time.monotonic() - started


@pytest.mark.parametrize("answer", [drip_headers, drip_body, silent])
def test_an_answer_slower_than_the_timeout_is_cut_off_at_it(answer):
    """Status line, headers or body dripped, or no answer: TimeoutError at the timeout."""
    with raw_receiver(answer) as receiver:
        elapsed = _post(receiver.url)
    assert TIMEOUT <= elapsed < CUT_OFF_BY


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


@pytest.fixture
def tls(tmp_path: Path, monkeypatch) -> ssl.SSLContext:
    """A server context for 127.0.0.1 whose private CA the client trusts (SSL_CERT_FILE)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)

    def certificate(subject: str, public: object, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name("Test receiver CA"))
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(
        certificate("Test receiver CA", ca_key.public_key(), True).public_bytes(pem)
    )
    (tmp_path / "cert.pem").write_bytes(
        certificate("127.0.0.1", key.public_key(), False).public_bytes(pem)
    )
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_over_https_a_dripped_answer_is_cut_off_too(tls):
    """TLS reads go through the TLS socket, not the plain one: they are bounded the same."""
    with raw_receiver(drip_headers, tls=tls) as receiver:
        elapsed = _post(receiver.url)
    assert TIMEOUT <= elapsed < CUT_OFF_BY


def test_over_https_a_prompt_answer_is_read(tls):
    """The deadline leaves a receiver that answers in time alone."""

    def prompt(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    with raw_receiver(prompt, tls=tls) as receiver:
        answer = post(receiver.url + "/x", b"{}", {}, POLICY)
    assert answer.status == 204


def test_the_worker_records_a_dripping_receiver_as_a_failure_at_the_timeout(app, scim, admin):
    """The worker is held no longer than the timeout; the delivery is retried later, the
    timeout in its log (a dripped 200 is not a delivery)."""
    with raw_receiver(drip_headers) as receiver:
        sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        worker = webhook_worker(app)
        worker.outbound = POLICY
        started = time.monotonic()
        assert worker.send_webhooks() == 1
        elapsed = time.monotonic() - started
    (entry,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert elapsed < CUT_OFF_BY + 1  # the rest: the claim, the record, a SCIM event's fan-out
    assert entry["state"] == "pending" and entry["last_status"] is None
    assert entry["log"][0]["error"] == f"TimeoutError: no complete answer within {TIMEOUT:g} s"
