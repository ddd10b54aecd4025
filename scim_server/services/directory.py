"""The organization's directory as an admin edits it: settings, contacts, and the guard
that keeps licenses and roles the settings or the active rules still name.

Compositions of the other services: each takes a session, owns its
transaction and writes its audit event in it, so a refused request changes
nothing. User accounts are in ``accounts``, rule sets in ``rule_sets``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import mappings
from scim_server.audit import record
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import Contact, License, Organization, Role, RuleSet, User
from scim_server.services import (
    availability,
    contacts,
    groups,
    licenses,
    mail,
    provisioning,
    roles,
    settings,
)
from scim_server.text import fold

# -- settings -------------------------------------------------------------------------


def settings_view(session: Session, org_id: str) -> dict[str, Any]:
    """The settings document and, read-only beside it, what it means today: the sign-in
    methods that apply and each default group's displayName."""
    current = settings.get_settings(session, org_id)
    names = groups.names_of(session, org_id, current.default_groups)
    return {
        **current.as_dict(),
        settings.EFFECTIVE_METHODS: settings.sign_in_methods(session, org_id, current),
        settings.DEFAULT_GROUPS_DISPLAY: [
            {"id": gid, "displayName": names[gid]} for gid in current.default_groups if gid in names
        ],
    }


def update_settings(session: Session, org_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Replace the organization's identity settings; defaults must name what exists."""
    new = settings.validate_settings(raw)
    with session.begin():
        # Before the organization row, as a group delete takes them (group, then
        # organization): kept until commit, so a delete waits and then drops its group.
        named = groups.names_of(session, org_id, new["default_groups"], keep=True)
        unknown = [gid for gid in new["default_groups"] if gid not in named]
        if unknown:
            raise InvalidValueError(
                f"default_groups: no group with id {', '.join(map(repr, unknown))} "
                "in this organization."
            )
        # FOR NO KEY UPDATE: two saves take turns, but the foreign-key check of every
        # audited write's audit INSERT (FOR KEY SHARE on this row, taken while that write
        # holds the audit head, which this save takes at its commit) does not wait: with
        # FOR UPDATE the two would deadlock.
        org = session.scalar(
            select(Organization).where(Organization.id == org_id).with_for_update(key_share=True)
        )
        if org is None:
            raise NotFoundError(f"Organization {org_id!r} not found.")
        # The license and roles named are kept (FOR KEY SHARE) until the commit: a delete
        # or rename of one (``delete_license``, ``update_license``, ``delete_role``) waits
        # and then sees the settings name it, or this finds it gone.
        if new["default_license"]:
            found_license = licenses.find_license(
                session, org_id, new["default_license"], keep=True
            )
            if found_license is None:
                raise InvalidValueError(
                    f"default_license: unknown license {new['default_license']!r}."
                )
            # Stored as the license is named (``e3`` for ``E3``), as default_roles are.
            new["default_license"] = found_license.name
        found = roles.find_roles(session, org_id, new["default_roles"], keep=True)
        missing = [r for r in new["default_roles"] if fold(r) not in found]
        if missing:
            raise InvalidValueError(
                f"default_roles: unknown role(s) {', '.join(map(repr, missing))}."
            )
        before = settings.load(org).as_dict()
        org.settings = new
        changes = {k: {"before": before[k], "after": v} for k, v in new.items() if before[k] != v}
        if changes:  # a save that changed nothing: no event saying it did
            record(
                session,
                org_id,
                "settings.update",
                resource_type="Organization",
                resource_id=org_id,
                changes=changes,
            )
    return new


# -- contacts -------------------------------------------------------------------------


def _check_company(session: Session, org_id: str, contact: Contact | None, company_id: Any) -> None:
    # "" is no id (the foreign key would refuse it at flush): None says "no organization".
    if not isinstance(company_id, str) or not company_id:
        raise InvalidValueError("organization_contact_id must be a contact id, or null for none.")
    company = contacts.get_contact(session, org_id, company_id)
    if company.kind != "organization":
        raise InvalidValueError("organization_contact_id must name an organization contact.")
    if contact is not None and (contact.kind != "person" or contact.id == company_id):
        raise InvalidValueError("Only a person contact belongs to an organization contact.")


def _checked_email(fields: dict[str, Any]) -> dict[str, Any]:
    """An admin's contact e-mail is one plain address, stored trimmed (``mail.check_recipient``):
    "not an email" became an account's userName through Enable access, and its mail went
    nowhere. An IdP's e-mails reach contacts through provisioning, as sent."""
    email = fields.get("email")
    if not isinstance(email, str):
        return fields
    if not email.strip():
        return {**fields, "email": None}
    try:
        return {**fields, "email": mail.check_recipient(email)}
    except InvalidValueError as err:
        raise InvalidValueError(f"email: {err.detail}") from None


def create_contact(
    session: Session, org_id: str, kind: str, name: str, fields: dict[str, Any]
) -> Contact:
    fields = _checked_email(fields)
    with session.begin():
        if fields.get("organization_contact_id") is not None:
            if kind != "person":
                raise InvalidValueError("Only a person contact belongs to an organization contact.")
            _check_company(session, org_id, None, fields["organization_contact_id"])
        return contacts.create_contact(session, org_id, kind, name, **fields)


def update_contact(
    session: Session, org_id: str, contact_id: str, fields: dict[str, Any]
) -> Contact:
    fields = _checked_email(fields)
    with session.begin():
        contact = contacts.get_contact(session, org_id, contact_id)
        if fields.get("organization_contact_id") is not None:
            _check_company(session, org_id, contact, fields["organization_contact_id"])
        changes = contacts.update_fields(contact, fields)
        if "resource_system" in changes:
            changes |= availability.clear_if_not_resource(session, contact)
        if not changes:
            return contact  # a save that changed nothing: no event saying it did
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


def update_license(
    session: Session, org_id: str, license_id: str, fields: dict[str, Any]
) -> License:
    """Change a license (``licenses.change_license``); a rename the settings or the active
    rules depend on is refused (409), checked in the same transaction with the license
    locked (``FOR UPDATE``): a settings save or an activation naming it by its old name
    (which lock it ``FOR KEY SHARE``) either committed before the check, which then sees
    it, or waits and then finds no license of that name."""
    with session.begin():
        lic = licenses.get_license(session, org_id, license_id, for_update=True)
        if "name" in fields:
            _check_references(session, org_id, license_rename=(lic.name, fields["name"]))
        return licenses.change_license(session, org_id, lic, fields)


def delete_license(session: Session, org_id: str, license_id: str) -> None:
    """Delete a license (``licenses.remove_license``), refused (409) while the settings or
    the active rules name it: checked in the delete's transaction, the license locked
    first, as ``update_license``."""
    with session.begin():
        lic = licenses.get_license(session, org_id, license_id, for_update=True)
        _check_references(session, org_id, license_rename=(lic.name, None))
        licenses.remove_license(session, org_id, lic)


def delete_role(session: Session, org_id: str, role_id: str) -> None:
    """Delete a role (``roles.remove_role``), refused (409) while the settings or the active
    rules name it: checked in the delete's transaction, the role locked first
    (``roles.lock_role``), as ``delete_license``."""
    with session.begin():
        role = roles.lock_role(session, org_id, role_id)
        _check_references(session, org_id, role_removed=role.name)
        roles.remove_role(session, org_id, role)


def _check_references(
    session: Session,
    org_id: str,
    *,
    license_rename: tuple[str, str | None] | None = None,
    role_removed: str | None = None,
) -> None:
    """Refuse renaming or deleting a license or role the settings or active rules still name.

    Otherwise every later SCIM write would fail on rules that no longer validate.
    ``license_rename`` is (old name, new name or None for a delete). In the caller's
    transaction, after the license or role is locked: the settings and rules read here
    are those committed by then, and a save or an activation naming it after waits.
    """
    current = provisioning.settings_for(session, org_id)
    names_l = set(session.scalars(select(License.name).where(License.org_id == org_id)))
    names_r = set(session.scalars(select(Role.name).where(Role.org_id == org_id)))
    if license_rename is not None:
        old, new = license_rename
        new = new.strip() if isinstance(new, str) else new  # as ``licenses`` stores it
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
