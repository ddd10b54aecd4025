"""Secrets at rest: keys derived from the server secret, never the server secret itself.

Two kinds of secret live in the database and must be useless in a dump or a
backup: the OIDC provider's signing keys (``sso.provider.keys``, PKCS#8 with a
purpose-bound password) and each SSO connection's own secrets, the OIDC client
secret and the SAML SP private key (here: AES-256-GCM).

The sealing itself (``enc:v1:`` + base64url(nonce ‖ ciphertext ‖ tag), a key per
purpose by HKDF) is ``scim_server.sealing``, shared with the host's own secrets
(webhook signing secrets); its names are re-exported here for sso's code. This
module keeps the connections' purpose label and associated data, unchanged, so
every value sealed before the move still opens. Anything without the ``enc:``
prefix is a value written before encryption existed (read as it is, and sealed
by the next write or ``scim-server sso encrypt-secrets``). The associated data
binds a ciphertext to its organization, connection and field: copied to another
row or column, it no longer opens.
"""

from __future__ import annotations

from scim_server.sealing import PREFIX as PREFIX
from scim_server.sealing import V1 as V1
from scim_server.sealing import SealedSecretError as SealedSecretError
from scim_server.sealing import encryption_secret as encryption_secret
from scim_server.sealing import is_sealed as is_sealed
from scim_server.sealing import reseal as reseal
from scim_server.sealing import seal as seal
from scim_server.sealing import unseal as unseal

# HKDF "info" (RFC 5869 §3.2): distinct from the signing keys' "scim-server oauth signing keys v1".
CONNECTION_SECRETS = b"scim-server sso connection secrets v1"


def current_secret() -> bytes:
    """The encryption secret of the running application (request or CLI app context)."""
    from flask import current_app

    return encryption_secret(current_app)


# -- SSO connection secrets -----------------------------------------------------------


def _connection_context(org_id: str, connection_id: str, field: str) -> bytes:
    return f"sso_connections\x00{org_id}\x00{connection_id}\x00{field}".encode()


def seal_connection_secret(
    secret: bytes, org_id: str, connection_id: str, field: str, value: str
) -> str:
    """The stored form of a connection's ``field`` (``client_secret``, ``sp_private_key``)."""
    return seal(
        secret,
        value,
        purpose=CONNECTION_SECRETS,
        context=_connection_context(org_id, connection_id, field),
    )


def open_connection_secret(
    secret: bytes, org_id: str, connection_id: str, field: str, stored: str
) -> str:
    """The clear value of a sealed connection secret; ``SealedSecretError`` with the likely cause.

    Legacy clear values are the caller's to recognise (``is_sealed``).
    """
    try:
        return unseal(
            secret,
            stored,
            purpose=CONNECTION_SECRETS,
            context=_connection_context(org_id, connection_id, field),
        )
    except SealedSecretError as err:
        raise SealedSecretError(
            f"the connection's {field} cannot be decrypted ({err}): SCIM_SECRET_KEY changed "
            "since it was stored, or the value was copied from another connection? Run "
            "`scim-server sso encrypt-secrets` with SCIM_PREVIOUS_SECRET_KEY set to the old "
            f"secret, or {_RECOVERY.get(field, 'enter the secret again')}."
        ) from None


_RECOVERY = {
    "client_secret": "enter the client_secret again (PATCH the connection)",
    "sp_private_key": "create the connection again (a new SP certificate for the IdP)",
}
