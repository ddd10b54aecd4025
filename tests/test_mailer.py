"""The SMTP transport: STARTTLS and implicit TLS (certificates checked), one deadline for the
whole exchange, international addresses."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scim_server.config import SmtpSettings
from scim_server.mailer import Mailer, Outgoing
from tests.support import SmtpRecorder, free_port

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
MAIL = Outgoing(
    id="m1",
    recipient="bob@example.com",
    subject="Welcome",
    body_text="Hello Bob",
    body_html="<p>Hello Bob</p>",
    message_id="<m1@acme.example>",
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool, ip: str | None = None
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA, a server certificate for 127.0.0.1 it signed, and a stranger CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("Test relay CA", ca_key, "Test relay CA", ca_key, ca=True)
    other = _certificate("Someone else", other_key, "Someone else", other_key, ca=True)
    server = _certificate(
        "127.0.0.1", server_key, "Test relay CA", ca_key, ca=False, ip="127.0.0.1"
    )
    paths = {name: folder / f"{name}.pem" for name in ("ca", "other", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["other"].write_bytes(other.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@contextmanager
def tls_server(pki: dict[str, Path], *, implicit: bool) -> Iterator[tuple[SmtpRecorder, int]]:
    """aiosmtpd with our certificate: implicit TLS (smtps) or STARTTLS required before AUTH."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        return AuthResult(success=data == LoginPassword(b"relay", b"s3cret"), handled=False)

    recorder = SmtpRecorder()
    recorder.require_login = True
    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": True}
    if implicit:
        # The whole connection is TLS; aiosmtpd only counts STARTTLS for auth_require_tls.
        kwargs.update(ssl_context=context, auth_require_tls=False)
    else:
        kwargs.update(tls_context=context, require_starttls=True)
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


def _mailer(tmp_path: Path, port: int, security: str, ca: Path | None) -> Mailer:
    smtp = SmtpSettings("127.0.0.1", port, security, "relay", "s3cret")
    return Mailer(
        sender="it@acme.example",
        smtp=smtp,
        mail_dir=tmp_path,
        timeout=5,
        ca_file=str(ca) if ca else None,
    )


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_delivery_with_the_configured_ca(pki, tmp_path, security):
    with tls_server(pki, implicit=security == "ssl") as (recorder, port):
        where = _mailer(tmp_path, port, security, pki["ca"]).send(MAIL, NOW)
    assert where == f"127.0.0.1:{port}"
    (message,) = recorder.messages
    assert message["Subject"] == "Welcome" and message["To"] == "bob@example.com"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_certificate_we_cannot_verify_gets_no_mail(pki, tmp_path, security):
    with tls_server(pki, implicit=security == "ssl") as (recorder, port):
        for ca in (pki["other"], None):  # a stranger's CA, and the system's trust store
            with pytest.raises(ssl.SSLCertVerificationError):
                _mailer(tmp_path, port, security, ca).send(MAIL, NOW)
    assert recorder.messages == []


def test_ca_file_comes_from_configuration(tmp_path):
    mailer = Mailer.from_config(
        {"MAIL_FROM": "it@acme.example", "SMTP": None, "MAIL_DIR": tmp_path, "SMTP_CA_FILE": "/x"}
    )
    assert mailer.ca_file == "/x"


def _tarpit(stop: threading.Event) -> int:
    """A TCP server that answers a very long 220 greeting one byte every 0.2 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port: int = listener.getsockname()[1]

    def serve() -> None:
        conn = None
        while not stop.is_set() and conn is None:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
        try:
            while conn is not None and not stop.is_set():
                conn.sendall(b"2")
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            if conn is not None:
                conn.close()
            listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return port


def test_one_mail_send_has_a_deadline(tmp_path):
    """A relay trickling its greeting a byte at a time is cut off at ``timeout`` for the whole
    exchange (each byte would reset a socket's own timeout: the worker held for ever, and the
    mail's lease expiring meanwhile, another worker sending it too)."""
    stop = threading.Event()
    port = _tarpit(stop)
    mailer = Mailer(
        sender="it@acme.example",
        smtp=SmtpSettings(host="127.0.0.1", port=port, security="plain"),
        mail_dir=tmp_path,
        timeout=1,
    )
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            mailer.send(MAIL, NOW)
    finally:
        stop.set()
    assert time.monotonic() - started < 3


def test_the_deadline_is_well_under_the_mail_lease():
    """A send given up is retried; one still running when its lease ends is sent twice."""
    from scim_server.services.mail_delivery import LEASE

    assert Mailer("it@acme.example", None, Path(".")).timeout * 3 <= LEASE.total_seconds()


def test_an_idn_domain_is_written_as_its_a_label(tmp_path):
    """bob@bücher.example: the domain in IDNA (xn--), so the development .eml's To is plain
    ASCII (not an encoded word inside an address, which no mail client reads)."""
    mailer = Mailer(sender="it@acme.example", smtp=None, mail_dir=tmp_path)
    path = Path(mailer.send(replace(MAIL, recipient="bob@bücher.example"), NOW))
    headers = path.read_bytes().split(b"\n\n", 1)[0]
    assert b"\nTo: bob@xn--bcher-kva.example\n" in headers and b"=?" not in headers


def test_a_non_ascii_local_part_is_written_in_utf8(tmp_path):
    """jösé@bücher.example has no ASCII form: the .eml's To is UTF-8 (RFC 6532)."""
    mailer = Mailer(sender="it@acme.example", smtp=None, mail_dir=tmp_path)
    path = Path(mailer.send(replace(MAIL, recipient="jösé@bücher.example"), NOW))
    message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
    assert message["To"] == "jösé@bücher.example"
    assert "jösé@bücher.example".encode() in path.read_bytes()


def test_a_non_ascii_local_part_goes_with_smtputf8(tmp_path):
    """A relay offering SMTPUTF8 (RFC 6531) gets the address as it is."""
    from aiosmtpd.controller import Controller

    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    try:
        smtp = SmtpSettings("127.0.0.1", controller.port, "plain")
        mailer = Mailer(sender="it@acme.example", smtp=smtp, mail_dir=tmp_path, timeout=5)
        mailer.send(replace(MAIL, recipient="jösé@bücher.example"), NOW)
    finally:
        controller.stop()
    assert [m["To"] for m in recorder.messages] == ["jösé@bücher.example"]
