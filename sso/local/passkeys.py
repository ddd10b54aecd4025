"""Passkeys (WebAuthn Level 2) as a second factor, through the ``webauthn`` package.

Registration and authentication each take two requests: options (a random
challenge kept in the person's signed session, with a deadline), then the
browser's answer, verified here against that challenge, our origin and
relying-party id. No attestation is asked for (``none``): a passkey proves
possession of a key, which is what a second factor needs. A counter that goes
backwards refuses the sign-in (a cloned authenticator), as the specification
suggests. A challenge is used once (``spend_challenge``): the cookie that
holds it can be sent again, and a synced passkey's counter stays at 0.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy.orm import Session
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from scim_server.models import MfaFactor, User
from sso.state import remember_assertion

MAX_RESPONSE = 64 * 1024
# The replay cache's ``connection_id`` for used challenges (a connection's id is a UUID).
REPLAY_KIND = "webauthn"


class PasskeyError(ValueError):
    """A browser answer we cannot accept (its detail is for the log)."""


@dataclass(frozen=True)
class RelyingParty:
    """Who we are to the authenticator: the rp id (a domain), the origin, a display name."""

    rp_id: str
    origin: str
    name: str

    @classmethod
    def from_base_url(cls, base_url: str, name: str, rp_id: str | None = None) -> RelyingParty:
        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        return cls(rp_id=rp_id or (parts.hostname or "localhost"), origin=origin, name=name)


def registration_options(
    rp: RelyingParty, user: User, existing: list[MfaFactor]
) -> tuple[str, str]:
    """(options JSON for ``navigator.credentials.create``, the challenge base64url)."""
    options = webauthn.generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user.id.encode(),
        user_name=user.login_name or user.user_name,
        user_display_name=user.display_name or user.user_name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(f.credential_id))
            for f in existing
            if f.credential_id
        ],
    )
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


def spend_challenge(session: Session, org_id: str, challenge: str, until: datetime) -> bool:
    """Mark ``challenge`` used (caller's transaction); False if it was already: a replay.

    The challenge lives in the signed session cookie, which whoever copied it (a proxy
    log, a HAR file) can send again with the same answer; a synced passkey keeps its
    counter at 0, so only this makes a challenge single use (WebAuthn L2 §13.4.3). Its
    SHA-256 is kept in the replay cache with SAML's assertion ids (``sso.state``, expired
    rows deleted a hundred at a time at each insert) until ``until``, past the challenge's
    own deadline.
    """
    digest = hashlib.sha256(challenge.encode()).hexdigest()
    return remember_assertion(session, org_id, REPLAY_KIND, digest, until)


def _credential(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        raise PasskeyError("the body must be an object with a credential object")
    text = json.dumps(body["credential"])
    if len(text) > MAX_RESPONSE:
        raise PasskeyError("the credential is too large")
    return text


def verify_registration(rp: RelyingParty, challenge: str, body: Any) -> tuple[str, str, int]:
    """(credential id, public key, sign count), all base64url but the count."""
    try:
        verified = webauthn.verify_registration_response(
            credential=_credential(body),
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as err:
        raise PasskeyError(f"registration refused: {err}") from None
    return (
        bytes_to_base64url(verified.credential_id),
        bytes_to_base64url(verified.credential_public_key),
        verified.sign_count,
    )


def authentication_options(rp: RelyingParty, factors: list[MfaFactor]) -> tuple[str, str]:
    """(options JSON for ``navigator.credentials.get``, the challenge base64url)."""
    options = webauthn.generate_authentication_options(
        rp_id=rp.rp_id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(f.credential_id))
            for f in factors
            if f.credential_id
        ],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


def verify_authentication(
    rp: RelyingParty, challenge: str, body: Any, factors: list[MfaFactor]
) -> tuple[MfaFactor, int]:
    """(the passkey that signed, its new counter); ``PasskeyError`` otherwise."""
    text = _credential(body)
    raw_id = body["credential"].get("rawId") or body["credential"].get("id")
    factor = next((f for f in factors if f.credential_id == raw_id), None)
    if factor is None or not factor.public_key:
        raise PasskeyError("not one of the account's passkeys")
    try:
        verified = webauthn.verify_authentication_response(
            credential=text,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=webauthn.base64url_to_bytes(factor.public_key),
            credential_current_sign_count=factor.sign_count,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as err:
        raise PasskeyError(f"authentication refused: {err}") from None
    return factor, verified.new_sign_count
