"""Admin operations the services do not offer as one call: settings, contacts, rule sets.

Flask-free like the services: each takes a session, owns its transaction and
writes its audit event in it, so a refused request changes nothing. They are
thin compositions of the services (and candidates to move there). User
accounts are in ``account_operations``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import mappings
from scim_server.admin.common import ConflictError
from scim_server.audit import record
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import Contact, Job, License, Organization, Role, RuleSet, User
from scim_server.services import (
    contacts,
    licenses,
    provisioning,
    roles,
    rulesets,
    settings,
)
from scim_server.text import fold


@contextmanager
def rules_usable() -> Iterator[None]:
    """An active rule set that no longer validates is a conflict to resolve, not a 500."""
    try:
        yield
    except mappings.RuleSetError as err:
        problems = "; ".join(f"{p.path}: {p.message}" for p in err.problems[:10])
        raise ConflictError(
            f"The active rule set no longer validates ({problems}); fix or replace it first."
        ) from None


# -- settings -------------------------------------------------------------------------


def update_settings(session: Session, org_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Replace the organization's identity settings; defaults must name what exists."""
    new = settings.validate_settings(raw)
    with session.begin():
        org = session.scalar(
            select(Organization).where(Organization.id == org_id).with_for_update()
        )
        if org is None:
            raise NotFoundError(f"Organization {org_id!r} not found.")
        if new["default_license"] and not licenses.find_license(
            session, org_id, new["default_license"]
        ):
            raise InvalidValueError(f"default_license: unknown license {new['default_license']!r}.")
        found = roles.find_roles(session, org_id, new["default_roles"])
        missing = [r for r in new["default_roles"] if fold(r) not in found]
        if missing:
            raise InvalidValueError(
                f"default_roles: unknown role(s) {', '.join(map(repr, missing))}."
            )
        before = settings.load(org).as_dict()
        org.settings = new
        record(
            session,
            org_id,
            "settings.update",
            resource_type="Organization",
            resource_id=org_id,
            changes={
                k: {"before": before[k], "after": v} for k, v in new.items() if before[k] != v
            },
        )
    return new


# -- contacts -------------------------------------------------------------------------


def _check_company(session: Session, org_id: str, contact: Contact | None, company_id: str) -> None:
    company = contacts.get_contact(session, org_id, company_id)
    if company.kind != "organization":
        raise InvalidValueError("organization_contact_id must name an organization contact.")
    if contact is not None and (contact.kind != "person" or contact.id == company_id):
        raise InvalidValueError("Only a person contact belongs to an organization contact.")


def create_contact(
    session: Session, org_id: str, kind: str, name: str, fields: dict[str, Any]
) -> Contact:
    with session.begin():
        if fields.get("organization_contact_id"):
            if kind != "person":
                raise InvalidValueError("Only a person contact belongs to an organization contact.")
            _check_company(session, org_id, None, fields["organization_contact_id"])
        return contacts.create_contact(session, org_id, kind, name, **fields)


def update_contact(
    session: Session, org_id: str, contact_id: str, fields: dict[str, Any]
) -> Contact:
    with session.begin():
        contact = contacts.get_contact(session, org_id, contact_id)
        if fields.get("organization_contact_id"):
            _check_company(session, org_id, contact, fields["organization_contact_id"])
        changes = contacts.update_fields(contact, fields)
        record(
            session,
            org_id,
            "contact.update",
            resource_type="Contact",
            resource_id=contact.id,
            detail=contact.name,
            changes=changes,
        )
    return contact


def account_of(session: Session, org_id: str, contact_id: str) -> User | None:
    return session.scalar(select(User).where(User.org_id == org_id, User.contact_id == contact_id))


# -- licenses and roles: renames and deletes must not break the rules -------------------


def check_references(
    session: Session,
    org_id: str,
    *,
    license_rename: tuple[str, str | None] | None = None,
    role_removed: str | None = None,
) -> None:
    """Refuse renaming or deleting a license or role the settings or active rules still name.

    Otherwise every later SCIM write would fail on rules that no longer validate.
    ``license_rename`` is (old name, new name or None for a delete).
    """
    with session.begin():
        current = provisioning.settings_for(session, org_id)
        names_l = set(session.scalars(select(License.name).where(License.org_id == org_id)))
        names_r = set(session.scalars(select(Role.name).where(Role.org_id == org_id)))
        if license_rename is not None:
            old, new = license_rename
            if new is not None and fold(old) == fold(new):
                return
            if current.default_license and fold(current.default_license) == fold(old):
                raise ConflictError(
                    f"License {old!r} is the default license in the settings; change them first."
                )
            names_l = {n for n in names_l if fold(n) != fold(old)} | ({new} if new else set())
        if role_removed is not None:
            if fold(role_removed) in {fold(r) for r in current.default_roles}:
                raise ConflictError(
                    f"Role {role_removed!r} is a default role in the settings; change them first."
                )
            names_r = {n for n in names_r if fold(n) != fold(role_removed)}
        active = session.scalar(
            select(RuleSet).where(RuleSet.org_id == org_id, RuleSet.active.is_(True))
        )
        if active is None:
            return
        try:
            mappings.validate(active.document, licenses=sorted(names_l), roles=sorted(names_r))
        except mappings.RuleSetError as err:
            problems = "; ".join(f"{p.path}: {p.message}" for p in err.problems[:5])
            raise ConflictError(
                f"The active rule set {active.name!r} (version {active.version}) uses it "
                f"({problems}); change the rules first."
            ) from None


# -- rule sets --------------------------------------------------------------------------


def with_settings_defaults(session: Session, org_id: str, document: Any) -> Any:
    """The document as it would run once active: with the settings' defaults if it has none.

    provisioning.active_rule_set adds them; services.rulesets.preview does not,
    so a preview would otherwise report moves that activation never makes.
    """
    current = provisioning.settings_for(session, org_id)
    defaults = {
        k: v
        for k, v in (("license", current.default_license), ("roles", list(current.default_roles)))
        if v
    }
    if not isinstance(document, dict) or "defaults" in document or not defaults:
        return document
    return {**document, "defaults": defaults}


def check_storable(document: Any) -> None:
    """Refuse NUL characters (YAML can spell them "\\0"): PostgreSQL cannot store them in JSON."""
    stack: list[tuple[Any, str]] = [(document, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            raise rulesets.RuleSetInvalidError(
                [{"path": path, "message": "NUL characters are not allowed"}]
            )
        if isinstance(node, dict):
            for key, item in node.items():
                stack.append((key, path))
                stack.append((item, f"{path}.{key}" if path != "$" else str(key)))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node))


def start_apply(session: Session, org_id: str) -> Job:
    """Queue a re-evaluation of every user for ``scim-server worker``; 409 if nothing to apply.

    Checked here so that the admin hears at once; the job checks again when it runs.
    """
    with session.begin():
        with rules_usable():
            rules = provisioning.active_rule_set(
                session, org_id, provisioning.settings_for(session, org_id)
            )
        if rules is None:
            raise ConflictError(
                "Nothing to apply: no active rule set and no default license or roles."
            )
        active_id = session.scalar(
            select(RuleSet.id).where(RuleSet.org_id == org_id, RuleSet.active.is_(True))
        )
        return rulesets.enqueue_apply(session, org_id, active_id)
