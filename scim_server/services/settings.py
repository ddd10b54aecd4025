"""Per-organization identity settings, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from scim_server.errors import InvalidValueError
from scim_server.models import Organization

MATCH_KEYS = ("externalId", "email")


@dataclass(frozen=True)
class IdentitySettings:
    # None: the internal username is the IdP's userName.
    username_format: str | None = None
    # How a new SCIM user finds its existing person contact, in order.
    match_keys: tuple[str, ...] = MATCH_KEYS
    # Strict: a create that needs a license with no seat left fails; lenient
    # (default): the user is created without it and the shortage is visible.
    strict_seats: bool = False
    default_license: str | None = None
    default_roles: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "username_format": self.username_format,
            "match_keys": list(self.match_keys),
            "strict_seats": self.strict_seats,
            "default_license": self.default_license,
            "default_roles": list(self.default_roles),
        }


def load(org: Organization) -> IdentitySettings:
    raw = org.settings or {}
    return IdentitySettings(
        username_format=raw.get("username_format"),
        match_keys=tuple(raw.get("match_keys") or MATCH_KEYS),
        strict_seats=bool(raw.get("strict_seats", False)),
        default_license=raw.get("default_license"),
        default_roles=tuple(raw.get("default_roles") or ()),
    )


def get_settings(session: Session, org_id: str) -> IdentitySettings:
    org = session.get(Organization, org_id)
    return load(org) if org is not None else IdentitySettings()


def validate_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Check a settings document; return it normalised."""
    allowed = set(IdentitySettings().as_dict())
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidValueError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    out = IdentitySettings().as_dict()
    out.update(raw)
    if out["username_format"] is not None and not isinstance(out["username_format"], str):
        raise InvalidValueError("username_format must be a string template or null.")
    keys = out["match_keys"]
    if not isinstance(keys, list) or not keys or any(k not in MATCH_KEYS for k in keys):
        raise InvalidValueError(
            f"match_keys must be a non-empty list drawn from {list(MATCH_KEYS)}."
        )
    if not isinstance(out["strict_seats"], bool):
        raise InvalidValueError("strict_seats must be true or false.")
    if out["default_license"] is not None and not isinstance(out["default_license"], str):
        raise InvalidValueError("default_license must be a license name or null.")
    roles = out["default_roles"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidValueError("default_roles must be a list of role names.")
    return out
