"""What the mapping rules read for one user, hashed, so that a re-apply can skip the user.

``rules apply`` re-evaluates every user of an organization. Most of them come
out as they were: same rules, same attributes, same groups. Each path that
evaluates the rules for a user from its SCIM data (a SCIM create or update, a
group membership change, ``rules apply``) stores this hash on the user; the
next apply compares and skips the user when it is unchanged.

The hash covers, besides the inputs (the rules as they run, with the settings'
defaults and seat mode, the user's SCIM document and its groups), the state
the rules decide (license, rule roles, the contact fields rules may set):
anything that changed that state behind the rules' back (an admin, a sign-in
with claims) makes the hash differ, so the user is evaluated again, as before.
A user waiting for a seat (``license_wanted_id``) has no hash: seats free up
without any of this changing. Comparing too much only costs a re-evaluation;
comparing too little would skip a user who should change, so when in doubt a
field is in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

import mappings
from scim_server.services.settings import IdentitySettings

# The contact fields rules may set (provisioning.CONTACT_FIELD_NAMES and the organization).
CONTACT_STATE = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "title",
    "department",
    "organization_contact_id",
)


def _digest(value: Any) -> str:
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(text).hexdigest()


def rules_digest(rules: mappings.RuleSet, settings: IdentitySettings) -> str:
    """The rules as they run: their canonical document (defaults included) and the seat mode.

    By content rather than by rule-set id: a new version that says something
    else differs, and so does a change of the settings' default license or
    roles (which an id would miss); activating an identical copy changes
    nothing for anyone, and skipping is then right.
    """
    return _digest({"rules": rules.to_document(), "strict_seats": settings.strict_seats})


def input_hash(
    digest: str,
    data: Mapping[str, Any],
    groups: Iterable[Mapping[str, Any]],
    license_state: tuple[str | None, str | None, str | None, str | None],
    rule_roles: Mapping[str, str | None],
    contact_state: Iterable[Any],
) -> str | None:
    """The hash to store after an evaluation (or to compare before one); None: always evaluate.

    ``license_state`` is (license_id, license_source, license_rule, license_wanted_id);
    ``rule_roles`` role id -> rule of the user's ``rule`` roles; ``contact_state``
    the values of ``CONTACT_STATE`` in order.
    """
    if license_state[3] is not None:
        return None
    return _digest(
        [
            digest,
            data,
            sorted([g["id"], g.get("displayName"), g.get("externalId")] for g in groups),
            list(license_state[:3]),
            sorted(rule_roles.items()),
            list(contact_state),
        ]
    )


def contact_state(contact: Any) -> list[Any]:
    """``CONTACT_STATE`` of a contact (an ORM object or a row with those attributes)."""
    return [getattr(contact, name) for name in CONTACT_STATE]


def license_state(user: Any) -> tuple[str | None, str | None, str | None, str | None]:
    return (user.license_id, user.license_source, user.license_rule, user.license_wanted_id)
