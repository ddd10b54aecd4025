"""Which product events an audit event stands for: a pure mapping, no database.

Every change already writes its audit event (``scim_server.audit.record``) in
its own transaction; the product events are derived from those, so no service
writes them itself and none can forget to. One audit event gives zero or more
product events (a SCIM PATCH that renames and deactivates a user gives
``user.updated`` from ``user.patch`` and ``user.deactivated`` from the
``user.deactivate`` transition it also records).
"""

from __future__ import annotations

from typing import Any, NamedTuple

TYPES = (
    "user.created",
    "user.updated",
    "user.deactivated",
    "user.reactivated",
    "user.deleted",
    "user.status_changed",
    "user.license_changed",
    "user.roles_changed",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.member_added",
    "group.member_removed",
    "connection.activated",
    "connection.deactivated",
)

# Status transitions (services.lifecycle) with an event of their own; the others
# are ``user.status_changed``.
_TRANSITIONS = {"user.deactivate": "user.deactivated", "user.activate": "user.reactivated"}
_STATUS_ACTIONS = frozenset(
    {
        "user.lock",
        "user.unlock",
        "user.auto_lock",
        "user.require_new_password",
        "user.start_recovery",
        "user.complete_recovery",
        "user.first_sign_in",
    }
)
# Audit actions whose changes (or the rules' changes in the explanation) may move
# a user's SCIM attributes, license, roles or status.
_USER_CHANGES = frozenset(
    {"user.patch", "user.replace", "user.mapping", "user.license", "user.roles"}
)
_SIMPLE = {
    "user.create": "user.created",
    "user.delete": "user.deleted",
    "group.create": "group.created",
    "group.delete": "group.deleted",
}
_MEMBERS = {"group.member.add": "group.member_added", "group.member.remove": "group.member_removed"}


class Derived(NamedTuple):
    """One product event to write: its type, the resource it is about, what changed.
    (A named tuple: made on every write, without a frozen dataclass's ``__setattr__``s.)"""

    type: str
    resource_type: str
    resource_id: str
    changes: dict[str, Any]
    member: dict[str, Any] | None = None


def _user_change_types(action: str, changes: dict[str, Any]) -> list[str]:
    kinds: list[str] = []
    scim = [k for k in changes if not k.startswith(("license", "roles", "status", "contact."))]
    if action in ("user.patch", "user.replace"):
        # ``active`` is reported by the transition the change also records.
        scim = [k for k in scim if k != "active"]
    if scim or any(k.startswith("contact.") for k in changes):
        kinds.append("user.updated")
    if any(k.startswith("license") for k in changes):
        kinds.append("user.license_changed")
    if any(k.startswith("roles") for k in changes):
        kinds.append("user.roles_changed")
    if "status" in changes and action not in ("user.patch", "user.replace"):
        kinds.append("user.status_changed")
    return kinds


def derive(
    action: str,
    outcome: str,
    resource_type: str | None,
    resource_id: str | None,
    changes: dict[str, Any] | None,
    explanation: dict[str, Any] | None,
) -> list[Derived]:
    """The product events of one audit event (none for failures, reads and other actions)."""
    if outcome != "success" or not resource_id:
        return []
    changes = changes or {}
    if action == "user.delete":
        # The groups it was in lost a member (``changes.groups.before``): each its
        # member_removed, as a PATCH removing the member or the group's deletion gives.
        left = (changes.get("groups") or {}).get("before") or ()
        leaver = {"type": "User", "id": resource_id}
        return [
            *(Derived("group.member_removed", "Group", gid, {}, member=leaver) for gid in left),
            Derived("user.deleted", "User", resource_id, changes),
        ]
    if action in _SIMPLE:
        return [Derived(_SIMPLE[action], resource_type or "", resource_id, changes)]
    if action in _TRANSITIONS:
        return [Derived(_TRANSITIONS[action], "User", resource_id, changes)]
    if action in _STATUS_ACTIONS:
        return [Derived("user.status_changed", "User", resource_id, changes)]
    if action in _USER_CHANGES:
        # The mapping rules' outcome of a create or patch is in the explanation.
        rules = (explanation or {}).get("changes") or {}
        merged = {**changes, **{k: v for k, v in rules.items() if k not in changes}}
        return [
            Derived(kind, "User", resource_id, merged)
            for kind in _user_change_types(action, merged)
        ]
    if action in ("group.patch", "group.replace"):
        # Member changes have their own events, one per member.
        if any(k != "members" for k in changes):
            kept = {k: v for k, v in changes.items() if k != "members"}
            return [Derived("group.updated", "Group", resource_id, kept)]
        return []
    if action in _MEMBERS:
        group = changes.get("group") or {}
        if not group.get("id"):
            return []
        member = {"type": resource_type, "id": resource_id}
        return [Derived(_MEMBERS[action], "Group", group["id"], {}, member=member)]
    if action == "sso.connection.delete":
        return [Derived("connection.deactivated", "Connection", resource_id, changes)]
    if action in ("sso.connection.create", "sso.connection.update"):
        enabled = changes.get("enabled")
        if action == "sso.connection.create":
            if isinstance(enabled, dict) and not enabled.get("after"):
                return []  # made disabled: nothing is activated (its enabling will say so)
            return [Derived("connection.activated", "Connection", resource_id, changes)]
        if isinstance(enabled, dict) and enabled.get("before") != enabled.get("after"):
            kind = "connection.activated" if enabled.get("after") else "connection.deactivated"
            return [Derived(kind, "Connection", resource_id, changes)]
    return []
