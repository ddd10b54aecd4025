"""Sending one mail: SMTP from ``SCIM_SMTP_URL``, or an ``.eml`` file when none is configured.

Used by ``scim-server worker`` only (never inside a web request). The message
is a text part with an HTML alternative, with its own Message-ID and Date.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from scim_server.config import SmtpSettings


@dataclass(frozen=True)
class Outgoing:
    """What the transport needs of an outbox row."""

    id: str
    recipient: str
    subject: str
    body_text: str
    body_html: str
    message_id: str


@dataclass(frozen=True)
class Mailer:
    """The transport: ``smtp`` when configured, else ``.eml`` files in ``mail_dir``."""

    sender: str
    smtp: SmtpSettings | None
    mail_dir: Path
    timeout: float = 30.0
    # The CA certificates (PEM file) that sign the SMTP server's certificate, when it is
    # not a public CA (an internal relay); None: the system's trust store.
    ca_file: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Mailer:
        return cls(
            sender=config["MAIL_FROM"],
            smtp=config["SMTP"],
            mail_dir=Path(config["MAIL_DIR"]),
            ca_file=config.get("SMTP_CA_FILE"),
        )

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name always checked: a relay we cannot verify gets no mail."""
        return ssl.create_default_context(cafile=self.ca_file)

    def build(self, mail: Outgoing, now: datetime) -> EmailMessage:
        """Text first, HTML as the alternative a mail client prefers (RFC 2046 §5.1.4)."""
        message = EmailMessage()
        message["Subject"] = mail.subject
        message["From"] = self.sender
        message["To"] = mail.recipient
        message["Date"] = format_datetime(now)
        message["Message-ID"] = mail.message_id
        message.set_content(mail.body_text)
        message.add_alternative(mail.body_html, subtype="html")
        return message

    def send(self, mail: Outgoing, now: datetime) -> str:
        """Send (or write) one mail; returns where it went. Raises on any failure."""
        message = self.build(mail, now)
        if self.smtp is None:
            return str(self._write_eml(mail.id, message))
        smtp = self.smtp
        client: smtplib.SMTP
        if smtp.security == "ssl":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=self.timeout, context=self.tls_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=self.tls_context())
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password)
            client.send_message(message)
        return f"{smtp.host}:{smtp.port}"

    def _write_eml(self, mail_id: str, message: EmailMessage) -> Path:
        """Development: the mail as a file a mail client opens; written whole or not at all."""
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        path = self.mail_dir / f"{mail_id}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(message.as_bytes())
        os.replace(partial, path)
        return path
