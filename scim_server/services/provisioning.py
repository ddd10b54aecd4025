"""The one provisioning path: an external identity, through the rules, onto the internal model.

SCIM writes (and SSO just-in-time creation) call ``provision``: it finds or
creates the person contact, sets the internal username, and applies what the
organization's mapping rules say about license, roles, contact fields and
initial status. Admin decisions (manual license and roles) are never
overwritten. The returned explanation (which rule gave what) goes into the
provisioning log with the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

import mappings
from scim_server.db import Batch, insert_now, utcnow
from scim_server.models import (
    Contact,
    Group,
    GroupMember,
    License,
    Role,
    User,
)
from scim_server.services import contacts, licenses, roles, rule_inputs
from scim_server.services.lifecycle import DEACTIVATED, PROVISIONED, STATUSES
from scim_server.services.org_config import active_rule_set, identity_config, settings_for
from scim_server.services.settings import IdentitySettings
from scim_server.text import fold

log = logging.getLogger(__name__)
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTACT_FIELD_NAMES = {
    "givenName": "given_name",
    "familyName": "family_name",
    "email": "email",
    "phone": "phone",
    "title": "title",
    "department": "department",
}


def user_groups(session: Session, org_id: str, user_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Group.id, Group.display_name, Group.external_id)
        .join(
            GroupMember, (GroupMember.org_id == Group.org_id) & (GroupMember.group_id == Group.id)
        )
        .where(GroupMember.org_id == org_id, GroupMember.member_id == user_id)
    )
    return [{"id": i, "displayName": n, "externalId": e} for i, n, e in rows]


def contact_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What the IdP says about the person, as contact fields."""
    name = doc.get("name") or {}
    emails = doc.get("emails") or []
    email = (
        next((e.get("value") for e in emails if e.get("primary")), None)
        or next((e.get("value") for e in emails if e.get("type") == "work"), None)
        or (emails[0].get("value") if emails else None)
    )
    phones = doc.get("phoneNumbers") or []
    # As the e-mail: the primary one, else a work one, else the first.
    phone = (
        next((p.get("value") for p in phones if p.get("primary")), None)
        or next((p.get("value") for p in phones if p.get("type") == "work"), None)
        or (phones[0].get("value") if phones else None)
    )
    enterprise = doc.get(ENTERPRISE) or {}
    return {
        "given_name": name.get("givenName"),
        "family_name": name.get("familyName"),
        "email": email,
        "phone": phone,
        "title": doc.get("title"),
        "department": enterprise.get("department"),
        "external_id": doc.get("externalId"),
    }


@dataclass(frozen=True)
class ContactMatch:
    """The person contact the caller's own statement found (``contacts.person_match``) for
    these usable match keys (``contacts.usable_keys``); None: no match."""

    keys: tuple[str, ...]
    contact_id: str | None


def _contact_name(doc: dict[str, Any]) -> str:
    name = doc.get("name") or {}
    parts = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p)
    return doc.get("displayName") or name.get("formatted") or parts or doc["userName"]


def provision(
    session: Session,
    org_id: str,
    user: User,
    doc: dict[str, Any],
    *,
    creating: bool,
    identity: Any = None,
    config: tuple[IdentitySettings, Any] | None = None,
    login_name_free: bool = False,
    joins: Sequence[dict[str, Any]] = (),
    contact: Contact | None = None,
    match: ContactMatch | None = None,
    batch: Batch | None = None,
    before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bring the internal model in line with ``doc`` (a SCIM user); return the explanation.

    ``config``: the organization's (settings, rules) when the caller read them already.
    ``login_name_free``: the caller found no account whose internal username is the
    ``userName`` (``services.users`` asks with its own uniqueness check, one query).
    ``joins``: the groups (``user_groups``' dicts) a user being created joins (the
    settings' default groups): the rules see them as they would see the IdP's.
    ``contact``: the user's person contact when the caller read it with the user
    (``services.users.update_user``: one statement for both); else it is read here.
    ``match``: the caller looked for a person contact to match (``services.users``, in
    its create's first statement); used when it looked with the keys the settings say.
    ``before``: the stored document an update replaces (``services.users.update_user``):
    in strict seat mode a license with no seat left refuses the update only when the
    update's own change asks for it (``OwnChange``).

    When ``creating``, a ``user.contact_id`` already set is the person contact (an admin
    enabling access for it), a ``user.login_name`` already set is kept, and a
    ``license_source`` of "manual" leaves the license to the caller.

    When ``creating``, ``user`` is not in the session yet: it is inserted once its
    contact, internal username and what the rules give are known, once and whole
    (with a new person contact, as Core INSERTs: ``db.insert_now``, or added to the
    caller's ``batch`` to be written with its other rows; through the ORM where rules
    add roles, whose rows refer to it). The person contact created for it is part of
    the user's own event (its explanation), not an event of its own.
    """
    settings, rules = config if config is not None else identity_config(session, org_id)
    explanation: dict[str, Any] = {}
    fields = contact_fields(doc)
    result = groups = None
    if rules is not None:
        if identity is None:
            groups = list(joins) if creating else user_groups(session, org_id, user.id)
            identity = mappings.ExternalIdentity.from_scim(doc, groups)
        elif joins:
            extra = mappings.ExternalIdentity.from_scim({}, joins).groups
            identity = replace(identity, groups=tuple(dict.fromkeys((*identity.groups, *extra))))
        result = mappings.resolve(identity, rules)
    # The contact fields the rules set are theirs (``apply_result``), not the IdP's: written
    # once, with the rules' value. Writing the IdP's first logged a change there and back
    # on every write of such a user, and moved the contact's updated_at.
    ruled = _ruled_contact_fields(result)
    scim_fields = {k: v for k, v in fields.items() if k not in ruled}
    if contact is None and user.contact_id:
        contact = session.get(Contact, (org_id, user.contact_id))
    new_contact: Contact | None = None
    if contact is None:
        keys = contacts.usable_keys(settings.match_keys, fields["external_id"], fields["email"])
        if match is not None and match.keys == keys:
            contact = contacts.matched_person(session, org_id, match.contact_id)
        else:
            contact = contacts.find_person(
                session, org_id, settings.match_keys, fields["external_id"], fields["email"]
            )
        explanation["contact"] = "matched existing person" if contact else "created person"
        if contact is None:
            # Made with its fields at once (a new contact's None fields change nothing).
            new_contact, contact_changes = contacts.new_person(
                org_id, _contact_name(doc), scim_fields
            )
            contact = new_contact
        user.contact_id = contact.id
    if new_contact is None:
        contact_changes = contacts.update_fields(
            contact, {k: v for k, v in scim_fields.items() if v is not None or not creating}
        )
    enterprise_org = (doc.get(ENTERPRISE) or {}).get("organization")
    if "organization_contact_id" in ruled:
        enterprise_org = None
    if enterprise_org and not _in_company(session, org_id, contact, enterprise_org):
        company = contacts.organization_contact(session, org_id, enterprise_org)
        contact_changes |= contacts.update_fields(contact, {"organization_contact_id": company.id})
    # Without a username format the internal username follows userName; with one,
    # it is set once at creation (below) and stays stable.
    follows = not settings.username_format or (not creating and not user.login_name)
    if follows and user.login_name != doc["userName"]:
        _set_username(session, org_id, user, doc["userName"], free=login_name_free)
    if creating and rules is not None:
        session.add_all([*([new_contact] if new_contact else []), user])
    elif not creating and new_contact is not None:
        session.add(new_contact)

    if result is not None:  # rules are active
        explanation["rules"] = list(result.explanation)
        own: Lookups | None = None
        if before is not None and groups is not None and settings.strict_seats:
            own = OwnChange(session, org_id, update_asks_seat(rules, before, doc, groups))
        changes, rule_roles = apply_result(
            session, org_id, user, contact, result, settings, creating, doc, own
        )
        # Only an evaluation of the SCIM data alone is one ``rules apply`` can skip.
        user.rules_input_hash = (
            inputs_hash(rules, settings, doc, groups, user, rule_roles, contact)
            if groups is not None
            else None
        )
        if changes:
            explanation["changes"] = changes
    else:
        user.rules_input_hash = None
        if creating and settings.username_format and not user.login_name:
            _templated_username(session, org_id, user, settings.username_format, doc)
    if contact_changes:
        explanation["contact_changes"] = contact_changes
    if creating and rules is None:
        new = (*([new_contact] if new_contact else []), user)
        if batch is not None:
            batch.add(*new)
        else:
            insert_now(session, *new)
    return explanation


def _ruled_contact_fields(result: Any) -> set[str]:
    """The contact columns a rules result sets (``apply_result``); none without rules."""
    if result is None or not result.contact:
        return set()
    ruled = {CONTACT_FIELD_NAMES[k] for k in result.contact if k in CONTACT_FIELD_NAMES}
    if result.contact.get("organization"):
        ruled.add("organization_contact_id")
    return ruled


def _in_company(session: Session, org_id: str, contact: Contact, name: str) -> bool:
    """Whether the person belongs to an organization contact of that name already: it stays
    (the lookup by name finds the oldest of a name, maybe another company's contact)."""
    if not contact.organization_contact_id:
        return False
    company = session.get(Contact, (org_id, contact.organization_contact_id))
    return company is not None and company.name_key == fold(name)


def inputs_hash(
    rules: Any,
    settings: IdentitySettings,
    doc: dict[str, Any],
    groups: list[dict[str, Any]],
    user: User,
    rule_roles: dict[str, str | None],
    contact: Contact,
    digest: str | None = None,
) -> str | None:
    """``rule_inputs.input_hash`` of a user just evaluated from its SCIM data and groups."""
    return rule_inputs.input_hash(
        digest or rule_inputs.rules_digest(rules, settings),
        doc,
        groups,
        rule_inputs.license_state(user),
        rule_roles,
        rule_inputs.contact_state(contact),
    )


class Lookups(Protocol):
    """Where applying a result finds licenses, roles and companies and writes roles.

    One user at a time: queries (``Direct``). Many in one transaction (``rules
    apply``): read once per batch, the writes queued (``services.rule_apply``).
    """

    def license(self, name: str) -> License | None: ...

    def license_by_id(self, license_id: str) -> License | None: ...

    def roles(self, names: list[str]) -> dict[str, Role]: ...

    def assign_license(
        self, user: User, lic: License | None, rule: str | None, strict: bool, source: str = "rule"
    ) -> dict[str, Any]: ...

    def set_rule_roles(self, user_id: str, wanted: dict[str, str | None]) -> dict[str, Any]: ...

    def organization_contact(self, name: str) -> Contact: ...


class Direct:
    """``Lookups`` by the services, one query each: for one user's change."""

    def __init__(self, session: Session, org_id: str) -> None:
        self.session, self.org_id = session, org_id

    def license(self, name: str) -> License | None:
        return licenses.find_license(self.session, self.org_id, name)

    def license_by_id(self, license_id: str) -> License | None:
        return self.session.get(License, (self.org_id, license_id))

    def roles(self, names: list[str]) -> dict[str, Role]:
        return roles.find_roles(self.session, self.org_id, names)

    def assign_license(
        self, user: User, lic: License | None, rule: str | None, strict: bool, source: str = "rule"
    ) -> dict[str, Any]:
        return licenses.assign(
            self.session, self.org_id, user, lic, source=source, rule=rule, strict=strict
        )

    def set_rule_roles(self, user_id: str, wanted: dict[str, str | None]) -> dict[str, Any]:
        self.session.flush()
        return roles.set_source_roles(self.session, self.org_id, user_id, "rule", wanted)

    def organization_contact(self, name: str) -> Contact:
        return contacts.organization_contact(self.session, self.org_id, name)


def rules_want(
    rules: Any, doc: dict[str, Any], groups: Sequence[dict[str, Any]], lic: License
) -> bool:
    """Whether the rules give ``lic`` to a user of SCIM document ``doc`` in ``groups``: what
    strict seat mode asks of a change, with the user as it was, to tell whether the change
    is what asks for the seat (``update_asks_seat``, ``_asked_by_joining``,
    ``rule_apply._asked_by_group``)."""
    wanted = mappings.resolve(mappings.ExternalIdentity.from_scim(doc, groups), rules).license
    return wanted is not None and fold(wanted) == lic.name_key


def update_asks_seat(
    rules: Any, before: dict[str, Any], doc: dict[str, Any], groups: list[dict[str, Any]]
) -> Callable[[License], bool]:
    """Whether an update (``before`` -> ``doc``, the same groups) asks for a seat of a license:
    it reactivates the user, or the rules would not have given that license before it (the
    rules are resolved again only when a seat is refused). The import's preview asks the
    same (``user_import.rows``)."""

    def asks(lic: License) -> bool:
        if before.get("active") is False and doc.get("active") is not False:
            return True  # a reactivated user needs its license (strict: or no reactivation)
        return not rules_want(rules, before, groups, lic)

    return asks


def _asked_by_joining(
    rules: Any, user: User, groups: list[dict[str, Any]], joined: str
) -> Callable[[License], bool]:
    """Whether joining the group ``joined`` asks for a seat of a license (``reevaluate``):
    the user does not wait for it already, and the rules would not want it for the user
    outside that group."""

    def asks(lic: License) -> bool:
        if user.license_wanted_id == lic.id:
            return False  # waiting for it already: no new seat asked
        return not rules_want(rules, user.data, [g for g in groups if g["id"] != joined], lic)

    return asks


class OwnChange(Direct):
    """``Direct`` for an update in strict seat mode: a license with no seat left refuses the
    update only when the update itself asks for it (``asks``). A new rule set not yet applied,
    or a lowered seat limit, must not refuse an IdP's write of another attribute (its retries
    would never pass): the user then waits for the seat, as in lenient mode (the shortage
    shown, ``rules apply`` hands the seat out once one is free)."""

    def __init__(self, session: Session, org_id: str, asks: Callable[[License], bool]) -> None:
        super().__init__(session, org_id)
        self.asks = asks

    def assign_license(
        self, user: User, lic: License | None, rule: str | None, strict: bool, source: str = "rule"
    ) -> dict[str, Any]:
        try:
            return super().assign_license(user, lic, rule, strict, source)
        except licenses.SeatsExhaustedError:
            if lic is None or self.asks(lic):
                raise
        # ``assign`` refuses before it changes anything: the lenient assignment starts clean.
        return super().assign_license(user, lic, rule, False, source)


def apply_result(
    session: Session,
    org_id: str,
    user: User,
    contact: Contact,
    result: Any,
    settings: IdentitySettings,
    creating: bool,
    doc: dict[str, Any],
    lookups: Lookups | None = None,
    *,
    asks_seat: bool = True,
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """Apply a rules result; return (what changed, the rule roles now held: role id -> rule).

    A DEACTIVATED user (a leaver, or one the IdP creates inactive) never asks for a seat:
    its license is assigned leniently whatever the seat mode (a shortage is recorded, the
    license it holds stays), so that strict seats never refuse, nor roll back, the write
    that deactivates someone. Nor does a user the write only took out of a group
    (``asks_seat`` False, ``reevaluate``): access an IdP ends is never refused over seats.
    """
    find = lookups or Direct(session, org_id)
    changes: dict[str, Any] = {}
    if user.license_source != "manual":
        lic = find.license(result.license) if result.license else None
        leaving = user.status == DEACTIVATED or (
            creating and user.status == PROVISIONED and result.initial_status == DEACTIVATED
        )
        strict = settings.strict_seats and asks_seat and not leaving
        held = user.license_id
        changes |= find.assign_license(user, lic, result.license_rule, strict)
        licenses.end_sessions_if_lost(user, held)
    elif user.license_id is None and user.license_wanted_id is not None:
        # An admin's choice that found no seat (Enable access, overridden) waits as a rule's
        # does: given when a seat is free at the user's next evaluation (``rules apply``).
        wanted_license = find.license_by_id(user.license_wanted_id)
        if wanted_license is not None:
            changes |= find.assign_license(user, wanted_license, None, False, source="manual")
    found = find.roles(list(result.roles))
    wanted = {}
    for name in result.roles:
        role = found.get(fold(name))
        if role is not None:
            wanted[role.id] = roles.rule_label(result, name)
    changes |= find.set_rule_roles(user.id, wanted)
    if result.contact:
        mapped = {
            CONTACT_FIELD_NAMES[k]: v for k, v in result.contact.items() if k in CONTACT_FIELD_NAMES
        }
        company = result.contact.get("organization")
        if company:
            mapped["organization_contact_id"] = find.organization_contact(company).id
        changes |= {f"contact.{k}": v for k, v in contacts.update_fields(contact, mapped).items()}
    if creating:
        template = result.username_template or settings.username_format
        # A username set before provisioning (an admin enabling access) is kept.
        if template and not user.login_name:
            _templated_username(session, org_id, user, template, doc)
        if result.initial_status in STATUSES and user.status == PROVISIONED:
            user.status = result.initial_status
            user.active = user.status != DEACTIVATED
            # The stored document says so too (as ``lifecycle.change_status`` keeps it): a
            # later write compares with it, and an IdP's PATCH of another attribute must
            # not read as ``active`` going from false to true (a reactivation).
            user.data = {**user.data, "active": user.active}
            changes["status"] = {"before": PROVISIONED, "after": user.status}
    return changes, wanted


def _templated_username(
    session: Session, org_id: str, user: User, template: str, doc: dict[str, Any]
) -> None:
    identity = mappings.ExternalIdentity.from_scim(doc, [])
    try:
        base = mappings.render_username(template, identity)
    except mappings.TemplateError:
        # A template this identity cannot fill: fall back, never fail the create.
        base = doc["userName"]
    _set_username(session, org_id, user, base)


_LOGIN_NAME_HOLDER = select(User.id).where(
    User.org_id == bindparam("org_id"),
    User.login_name_key == bindparam("key"),
    User.id != bindparam("user_id"),
)


def _set_username(
    session: Session, org_id: str, user: User, base: str, *, free: bool = False
) -> None:
    """Set the internal username, suffixing 2, 3, ... on collision (``free``: ``base``
    is known to be free)."""
    candidate, n = base, 1
    if free:
        user.login_name, user.login_name_key = candidate, fold(candidate)
        return
    while True:
        key = fold(candidate)
        params = {"org_id": org_id, "key": key, "user_id": user.id}
        clash = session.connection().execute(_LOGIN_NAME_HOLDER, params).first()
        if clash is None:
            user.login_name, user.login_name_key = candidate, key
            return
        n += 1
        candidate = f"{base}{n}"


def reevaluate(
    session: Session,
    org_id: str,
    user_ids: list[str],
    *,
    left: Collection[str] = (),
    joined: str | None = None,
) -> dict[str, Any]:
    """Recompute license and roles after group membership changes; return per-user changes.

    ``left``: users the change only took out of a group (or whose group was deleted). In
    strict seat mode they never ask for a seat (``apply_result``): a removal is access the
    IdP ends, and refusing it (the rules now want a full license) kept the membership and
    every role and license it gave; a group's DELETE was refused for all its members. They
    are evaluated as in lenient mode: the roles follow at once, a license with no seat left
    is waited for (``licenseShortage``), the one held is kept meanwhile.

    ``joined``: the group the others were added to. In strict seat mode one asks for a seat
    only when joining it is what makes the rules want the license (``OwnChange``): a user
    already waiting for it, or whom the rules want on it outside that group (rules activated
    and not yet applied), is not refused for joining a group no rule names. Those in
    ``left`` are evaluated first: the seats they give back go to those who joined."""
    if not user_ids:
        return {}  # a group's write that moved no one: no read of the rules
    settings = settings_for(session, org_id)
    rules = active_rule_set(session, org_id, settings)
    if rules is None:
        return {}
    out = {}
    moved = session.scalars(select(User).where(User.org_id == org_id, User.id.in_(user_ids)))
    # Those who left first: a seat they give back is free when a joiner of the same write
    # asks for it (strict seats refuse only a write that leaves a license over its limit).
    # In id order otherwise, so that the outcome never depends on how the database reads.
    for user in sorted(moved, key=lambda u: (u.id not in left, u.id)):
        asks_seat = user.id not in left
        outcome = _reevaluate_one(
            session, org_id, user, rules, settings, None, asks_seat, joined if asks_seat else None
        )
        if outcome:
            # Its event names the user, as every event about a user does.
            out[user.id] = {**outcome, "user_name": user.user_name, "external_id": user.external_id}
    return out


def reevaluate_at_sign_in(
    session: Session, org_id: str, user: User, signed_in: mappings.ExternalIdentity
) -> dict[str, Any]:
    """Re-apply the rules to a known user signing in; return ``{changes, rules}`` or ``{}``.

    The identity is the union of what the account has from SCIM (its stored
    attributes and group memberships) and what the sign-in says (its
    attributes win for single-valued names, groups are unioned), so a license
    a rule gives for a SAML group claim reaches an existing user too. License
    and roles go through the same services as any re-evaluation: seats and manual
    assignments alike. A license with no seat left is waited for in either seat mode
    (``licenseShortage``, the license held kept): strict mode refuses an IdP's write that
    asks for a seat, and a person signing in is no IdP's write; refusing the sign-in
    locked out someone who held a license (the caller refuses one who holds none). In
    the caller's transaction, which also writes the audit event; nothing changes when
    nothing differs.
    """
    settings = settings_for(session, org_id)
    rules = active_rule_set(session, org_id, settings)
    if rules is None:
        return {}
    identity = sign_in_identity(session, org_id, user, signed_in)
    outcome = _reevaluate_one(session, org_id, user, rules, settings, identity, asks_seat=False)
    if outcome:
        # The SCIM view shows license and roles (product extension): its version moves.
        user.version += 1
        user.updated_at = utcnow()
    return outcome


def sign_in_identity(
    session: Session, org_id: str, user: User, signed_in: mappings.ExternalIdentity
) -> mappings.ExternalIdentity:
    """The account's SCIM identity (attributes, group memberships) merged with a sign-in's."""
    stored = mappings.ExternalIdentity.from_scim(user.data, user_groups(session, org_id, user.id))
    return mappings.merge_identities(stored, signed_in)


def _reevaluate_one(
    session: Session,
    org_id: str,
    user: User,
    rules: Any,
    settings: IdentitySettings,
    identity: mappings.ExternalIdentity | None,
    asks_seat: bool = True,
    joined: str | None = None,
) -> dict[str, Any]:
    contact = session.get(Contact, (org_id, user.contact_id)) if user.contact_id else None
    if contact is None:
        user.rules_input_hash = None
        return {}
    groups = None
    if identity is None:
        groups = user_groups(session, org_id, user.id)
        identity = mappings.ExternalIdentity.from_scim(user.data, groups)
    result = mappings.resolve(identity, rules)
    lookups: Lookups | None = None
    if joined is not None and groups is not None and settings.strict_seats:
        lookups = OwnChange(session, org_id, _asked_by_joining(rules, user, groups, joined))
    changes, rule_roles = apply_result(
        session,
        org_id,
        user,
        contact,
        result,
        settings,
        False,
        user.data,
        lookups,
        asks_seat=asks_seat,
    )
    user.rules_input_hash = (
        inputs_hash(rules, settings, user.data, groups, user, rule_roles, contact)
        if groups is not None
        else None
    )
    return {"changes": changes, "rules": list(result.explanation)} if changes else {}
