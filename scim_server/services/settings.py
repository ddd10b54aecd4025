"""Per-organization identity settings, with their defaults.

Besides provisioning (username format, matching, seats, defaults), the local
credentials of people who sign in without SSO: which sign-in methods apply,
how first credentials are delivered, the password policy, lockout and MFA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import column, exists, select, table, true
from sqlalchemy.orm import Session

from mappings.templates import TemplateError, parse_template
from scim_server.errors import InvalidValueError
from scim_server.models import Organization
from scim_server.services.passwords import MAX_INPUT_CHARS, PasswordPolicy
from scim_server.text import fold

MATCH_KEYS = ("externalId", "email")
MAX_DEFAULT_GROUPS = 100
# Who may use a local password. Unset: ``sso_only`` while the organization has an
# enabled SSO connection, else ``password_allowed``.
SIGN_IN_METHODS = ("sso_only", "password_allowed", "password_only")
CREDENTIALS_DELIVERY = ("temporary_password", "activation_link")

# The SSO connections table, read without importing ``sso`` (services sit below it);
# tests/services/test_settings.py checks these names against sso's model.
SSO_CONNECTIONS = table("sso_connections", column("org_id"), column("enabled"))

# Integer settings: (default, smallest, largest).
_NUMBERS: dict[str, tuple[int, int, int]] = {
    "temporary_password_days": (7, 1, 90),
    "activation_link_days": (7, 1, 30),
    "password_min_length": (12, 8, 128),
    "password_max_length": (128, 64, MAX_INPUT_CHARS),
    "password_history": (5, 0, 24),
    "lockout_threshold": (10, 0, 1000),  # 0: lockout off
    "lockout_window_minutes": (15, 1, 1440),
    "lockout_minutes": (15, 1, 1440),
    "lockout_max_minutes": (1440, 1, 10080),
}


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
    # Group ids (stable across the IdP's renames) an account joins when it is made outside
    # SCIM: enable access, an import, a first sign-in. A SCIM create joins none: the IdP
    # owns its memberships and its next group PUT would undo ours.
    default_groups: tuple[str, ...] = field(default_factory=tuple)
    # Local credentials (see the module docstring).
    sign_in_methods: str | None = None
    credentials_delivery: str = "temporary_password"
    must_change_on_first_login: bool = True
    refuse_common_passwords: bool = True
    require_mfa: bool = False
    numbers: tuple[tuple[str, int], ...] = ()
    # Not a setting: whether an enabled SSO connection existed when these were read
    # (``services.org_config`` knows it from its fingerprint); None: not known, ask.
    sso_connected: bool | None = field(default=None, compare=False)

    def number(self, name: str) -> int:
        """One of the integer settings (``_NUMBERS``), its default when unset."""
        return dict(self.numbers).get(name, _NUMBERS[name][0])

    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy(
            min_length=self.number("password_min_length"),
            max_length=self.number("password_max_length"),
            history=self.number("password_history"),
            refuse_common=self.refuse_common_passwords,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "username_format": self.username_format,
            "match_keys": list(self.match_keys),
            "strict_seats": self.strict_seats,
            "default_license": self.default_license,
            "default_roles": list(self.default_roles),
            "default_groups": list(self.default_groups),
            "sign_in_methods": self.sign_in_methods,
            "credentials_delivery": self.credentials_delivery,
            "must_change_on_first_login": self.must_change_on_first_login,
            "refuse_common_passwords": self.refuse_common_passwords,
            "require_mfa": self.require_mfa,
            **{name: self.number(name) for name in _NUMBERS},
        }


def load(org: Organization) -> IdentitySettings:
    return load_raw(org.settings or {})


def load_raw(raw: dict[str, Any]) -> IdentitySettings:
    """Settings from a stored (already validated) document."""
    return IdentitySettings(
        username_format=raw.get("username_format"),
        match_keys=tuple(raw.get("match_keys") or MATCH_KEYS),
        strict_seats=bool(raw.get("strict_seats", False)),
        default_license=raw.get("default_license"),
        default_roles=tuple(raw.get("default_roles") or ()),
        default_groups=tuple(raw.get("default_groups") or ()),
        sign_in_methods=raw.get("sign_in_methods"),
        credentials_delivery=raw.get("credentials_delivery") or "temporary_password",
        must_change_on_first_login=bool(raw.get("must_change_on_first_login", True)),
        refuse_common_passwords=bool(raw.get("refuse_common_passwords", True)),
        require_mfa=bool(raw.get("require_mfa", False)),
        numbers=tuple((k, int(raw[k])) for k in _NUMBERS if isinstance(raw.get(k), int)),
    )


def get_settings(session: Session, org_id: str) -> IdentitySettings:
    org = session.get(Organization, org_id)
    return load(org) if org is not None else IdentitySettings()


def has_active_sso(session: Session, org_id: str) -> bool:
    """Whether the organization has an enabled SSO connection."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    SSO_CONNECTIONS.c.org_id == org_id, SSO_CONNECTIONS.c.enabled == true()
                )
            )
        )
    )


def sign_in_methods(session: Session, org_id: str, current: IdentitySettings) -> str:
    """The methods that apply: the admin's choice, else by whether SSO is connected."""
    if current.sign_in_methods:
        return current.sign_in_methods
    connected = current.sso_connected
    if connected is None:
        connected = has_active_sso(session, org_id)
    return "sso_only" if connected else "password_allowed"


def passwords_allowed(session: Session, org_id: str, current: IdentitySettings) -> bool:
    """Whether people of this organization may have (and are mailed) a local password."""
    return sign_in_methods(session, org_id, current) != "sso_only"


# Shown by GET beside the document; a PUT of what GET returned may carry them back.
EFFECTIVE_METHODS = "effective_sign_in_methods"
DEFAULT_GROUPS_DISPLAY = "default_groups_display"  # [{id, displayName}] of default_groups
READ_ONLY = (EFFECTIVE_METHODS, DEFAULT_GROUPS_DISPLAY)


def validate_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Check a settings document; return it normalised."""
    raw = {k: v for k, v in raw.items() if k not in READ_ONLY}
    allowed = set(IdentitySettings().as_dict())
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidValueError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    out = IdentitySettings().as_dict()
    out.update(raw)
    out["username_format"] = _username_format(out["username_format"])
    keys = out["match_keys"]
    if not isinstance(keys, list) or not keys or any(k not in MATCH_KEYS for k in keys):
        raise InvalidValueError(
            f"match_keys must be a non-empty list drawn from {list(MATCH_KEYS)}."
        )
    if not isinstance(out["strict_seats"], bool):
        raise InvalidValueError("strict_seats must be true or false.")
    if out["default_license"] is not None and not isinstance(out["default_license"], str):
        raise InvalidValueError("default_license must be a license name or null.")
    if out["default_license"] is not None:
        out["default_license"] = out["default_license"].strip() or None  # names are trimmed
    roles = out["default_roles"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidValueError("default_roles must be a list of role names.")
    out["default_roles"] = _role_names(roles)
    group_ids = out["default_groups"]
    if not isinstance(group_ids, list) or not all(
        isinstance(i, str) and 0 < len(i) <= 64 for i in group_ids
    ):
        raise InvalidValueError("default_groups must be a list of group ids.")
    if len(set(group_ids)) > MAX_DEFAULT_GROUPS:
        raise InvalidValueError(f"default_groups lists at most {MAX_DEFAULT_GROUPS} groups.")
    out["default_groups"] = list(dict.fromkeys(group_ids))
    if out["sign_in_methods"] is not None and out["sign_in_methods"] not in SIGN_IN_METHODS:
        raise InvalidValueError(
            f"sign_in_methods must be null (automatic) or one of: {', '.join(SIGN_IN_METHODS)}."
        )
    if out["credentials_delivery"] not in CREDENTIALS_DELIVERY:
        raise InvalidValueError(
            f"credentials_delivery must be one of: {', '.join(CREDENTIALS_DELIVERY)}."
        )
    for flag in ("must_change_on_first_login", "refuse_common_passwords", "require_mfa"):
        if not isinstance(out[flag], bool):
            raise InvalidValueError(f"{flag} must be true or false.")
    for name, (_default, low, high) in _NUMBERS.items():
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidValueError(f"{name} must be a whole number from {low} to {high}.")
    if out["password_min_length"] > out["password_max_length"]:
        raise InvalidValueError("password_min_length must not exceed password_max_length.")
    if out["lockout_minutes"] > out["lockout_max_minutes"]:
        raise InvalidValueError("lockout_minutes must not exceed lockout_max_minutes.")
    return out


def _username_format(value: Any) -> str | None:
    """The template, checked as a create would use it (``parse_template``): a broken one
    stored here would make every later create fall back to the IdP's userName, unseen.
    Blank means none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueError("username_format must be a string template or null.")
    if not value.strip():
        return None
    try:
        parse_template(value)
    except TemplateError as err:
        raise InvalidValueError(f"username_format {err}.") from None
    return value


def _role_names(names: list[str]) -> list[str]:
    """Each name trimmed (role names are stored trimmed), blanks dropped, and names that fold
    to one role (``Planner``, `` planner``) kept once, in the first spelling given."""
    kept: dict[str, str] = {}
    for name in names:
        name = name.strip()
        if name:
            kept.setdefault(fold(name), name)
    return list(kept.values())
