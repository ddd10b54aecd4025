"""Enabling access for an existing person contact: the account its rules and settings give it.

The admin API (``POST /api/v1/contacts/<id>/access``) and the console's Enable access
form call ``enable_access``; the console shows ``preview`` first. The account is made
the way a SCIM create makes one (``users.insert_user``: mapping rules and the defaults
for license and roles, the status, the welcome credentials, the count, the
``user.create`` event), from what the contact says, with three decisions of the
admin's: the contact itself (not matched by e-mail), the username, and optionally a
manual license.

Before anything is written the plan is checked, in the create's transaction with
the contact locked, so what it counts is what the create sees:
- errors, which nothing overrides: an organization contact (only persons get access),
  a contact that already has an account (the answer names it: open it), a username
  that is taken (another account's username or userName: a password sign-in compares
  both) or cannot be built (give another), no seat left in strict seat mode (but for an
  account the rules create deactivated, which asks none);
- warnings, which refuse unless the admin overrides them deliberately
  (``override=True``, written into the event with the warnings): no seat left on the
  license it would assign (the account then waits for a seat, as a SCIM create's
  would), the e-mail is another contact's too.

The account joins the settings' default groups (``default_groups``, by id; a SCIM
create never does: its groups are the IdP's); the plan lists them and the rules see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

import mappings
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import Contact, License, User
from scim_server.services import groups as group_service
from scim_server.services import licenses, users
from scim_server.services.credentials import Delivery
from scim_server.services.lifecycle import DEACTIVATED
from scim_server.services.org_config import identity_config
from scim_server.services.users import ENTERPRISE, ForContact
from scim_server.text import fold

MAX_USERNAME = 256


@dataclass(frozen=True)
class Problem:
    """One warning or error of a plan; ``user_id``: the account a ``has_account`` names."""

    code: str
    message: str
    user_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.user_id:
            out["user_id"] = self.user_id
        return out


@dataclass(frozen=True)
class AccessPlan:
    """What enabling access would do, and what stands in the way."""

    contact_id: str
    username: str | None  # the product's username (the login name)
    user_name: str | None  # the SCIM userName: the e-mail when there is one
    username_from: str  # "given", "format" (a rule's or the settings'), "email", "none"
    license: str | None  # the license it would assign, by name
    license_from: str | None  # "manual" (the admin's choice) or "rules" (rules, defaults)
    roles: tuple[str, ...] = ()
    groups: tuple[tuple[str, str], ...] = ()  # (id, displayName): the default groups it joins
    warnings: tuple[Problem, ...] = ()
    errors: tuple[Problem, ...] = ()
    seats_left: int | None = None  # on that license; None: unlimited or no license

    @property
    def blocked(self) -> bool:
        return bool(self.errors or self.warnings)


class AccessRefusedError(ConflictError):
    """Enabling access is refused: errors, or warnings the caller did not override."""

    def __init__(self, plan: AccessPlan) -> None:
        if plan.errors:
            detail = " ".join(p.message for p in plan.errors)
        else:
            detail = (
                " ".join(p.message for p in plan.warnings)
                + " Send override: true to enable access anyway."
            )
        super().__init__(detail)
        self.plan = plan


def clean_username(raw: str | None) -> str | None:
    """The username an admin typed, trimmed; None when empty. Bad text is a clear 400."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidValueError("username must be a string.")
    value = raw.strip()
    if not value:
        return None
    if len(value) > MAX_USERNAME:
        raise InvalidValueError(f"A username is at most {MAX_USERNAME} characters.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidValueError("A username has no spaces or control characters.")
    return value


def _doc(contact: Contact, user_name: str, company: str | None) -> dict[str, Any]:
    """The account's SCIM document (the stored form a SCIM create of it would keep). The
    company (``_company``) is in it, as an IdP's ``organization`` would be: every later
    evaluation of the rules (a SCIM write, ``rules apply``, a group's change) reads the
    stored document, and must see what the create saw."""
    doc: dict[str, Any] = {"userName": user_name, "active": True, "displayName": contact.name}
    name = {
        k: v
        for k, v in (("givenName", contact.given_name), ("familyName", contact.family_name))
        if v
    }
    if name:
        doc["name"] = name
    if contact.email:
        doc["emails"] = [{"value": contact.email, "type": "work", "primary": True}]
    if contact.phone:
        doc["phoneNumbers"] = [{"value": contact.phone, "type": "work"}]
    if contact.title:
        doc["title"] = contact.title
    enterprise = {
        k: v for k, v in (("department", contact.department), ("organization", company)) if v
    }
    if enterprise:
        doc[ENTERPRISE] = enterprise
    return doc


def _company(session: Session, contact: Contact) -> str | None:
    """The name of the organization contact the person belongs to, if any."""
    if not contact.organization_contact_id:
        return None
    company = session.get(Contact, (contact.org_id, contact.organization_contact_id))
    return company.name if company is not None else None


def _resolve(rules: Any, doc: dict[str, Any], groups: list[dict[str, Any]]) -> Any:
    """What the rules make of the account (None without rules): its document and the
    default groups it joins (the create adds them itself)."""
    if rules is None:
        return None
    return mappings.resolve(mappings.ExternalIdentity.from_scim(doc, groups), rules)


def _named(session: Session, org_id: str, name: str) -> bool:
    """Whether an account of the organization has ``name`` as its username or userName."""
    key = fold(name)
    return (
        session.scalar(
            select(User.id)
            .where(
                User.org_id == org_id, or_(User.login_name_key == key, User.user_name_key == key)
            )
            .limit(1)
        )
        is not None
    )


def _refused(contact: Contact, error: Problem) -> AccessPlan:
    return AccessPlan(
        contact_id=contact.id,
        username=None,
        user_name=None,
        username_from="none",
        license=None,
        license_from=None,
        errors=(error,),
    )


def plan_access(
    session: Session,
    org_id: str,
    contact: Contact,
    *,
    username: str | None = None,
    license: License | None = None,
) -> AccessPlan:
    """The plan for ``contact``, in the caller's transaction (read-only)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    if contact.kind != "person":
        return _refused(
            contact,
            Problem(
                "organization_contact",
                f"{contact.name} is an organization contact: only persons get access.",
            ),
        )
    existing = session.scalar(
        select(User.id).where(User.org_id == org_id, User.contact_id == contact.id).limit(1)
    )
    if existing is not None:
        return _refused(
            contact,
            Problem("has_account", f"{contact.name} already has an account.", user_id=existing),
        )
    settings, rules = identity_config(session, org_id)
    names = group_service.names_of(session, org_id, settings.default_groups)
    joins = [
        {"id": gid, "displayName": names[gid]} for gid in settings.default_groups if gid in names
    ]
    # What the rules make of this person (the same resolve a SCIM create runs), first to
    # find the username format, then (below) with the userName the account gets.
    company = _company(session, contact)
    draft = _doc(contact, username or contact.email or contact.name, company)
    result = _resolve(rules, draft, joins)
    template = (result.username_template if result else None) or settings.username_format

    login: str | None = username
    login_from = "given" if username else "none"
    if login is None and template:
        try:
            login = mappings.render_username(
                template, mappings.ExternalIdentity.from_scim(draft, [])
            )
            login_from = "format"
        except mappings.TemplateError as err:
            if not contact.email:
                errors.append(
                    Problem(
                        "no_username",
                        f"The username format cannot be filled for {contact.name} ({err}) "
                        "and the contact has no e-mail: give a username.",
                    )
                )
    if login is None and not errors and contact.email:
        login, login_from = contact.email, "email"
    if login is None and not errors:
        errors.append(
            Problem(
                "no_username", f"{contact.name} has no e-mail to sign in with: give a username."
            )
        )
    # Without a format the product's username is the SCIM userName (as for SCIM accounts);
    # with one, the userName is the e-mail, which an identity provider pushing this
    # person later finds (its create is refused as a duplicate, never a second account).
    # A password sign-in is compared with every account's username and userName
    # (``sso.local.accounts``): neither of the new account's may be another's either, or
    # that name would sign neither in.
    user_name = login
    if (
        login is not None
        and template
        and contact.email
        and login_from != "email"
        and not _named(session, org_id, contact.email)
    ):
        user_name = contact.email
    if login is not None and _named(session, org_id, login):
        hint = "give another one" if login_from == "given" else "give a different one"
        errors.append(Problem("username_taken", f"The username {login} is taken: {hint}."))
    if result is not None and user_name is not None and user_name != draft["userName"]:
        draft = _doc(contact, user_name, company)
        result = _resolve(rules, draft, joins)

    # The license: the admin's, else what the rules (and the settings' defaults) give.
    lic_name = license.name if license is not None else (result.license if result else None)
    lic = license
    if lic is None and lic_name:
        lic = licenses.find_license(session, org_id, lic_name)
    seats_left = None
    if lic is not None and lic.seat_limit is not None:
        seats_left = max(0, lic.seat_limit - licenses.used(session, org_id, lic.id))
        # An account the rules create deactivated never asks for a seat (as a SCIM
        # create's: ``provisioning.apply_result``): it waits for one, whatever the mode.
        leaving = result is not None and result.initial_status == DEACTIVATED
        if seats_left == 0:
            if settings.strict_seats and not leaving:
                errors.append(
                    Problem(
                        "no_seat",
                        f"No seat left on license {lic.name} ({lic.seat_limit} of "
                        f"{lic.seat_limit} used) and the organization's strict seat mode "
                        "refuses an account without one: free a seat or choose another license.",
                    )
                )
            else:
                warnings.append(
                    Problem(
                        "no_seat",
                        f"No seat left on license {lic.name} ({lic.seat_limit} of "
                        f"{lic.seat_limit} used): the account waits for a seat and cannot "
                        "sign in until one frees up.",
                    )
                )
    if contact.email_key:
        others = session.execute(
            select(Contact.name, func.count().over())
            .where(
                Contact.org_id == org_id,
                Contact.email_key == contact.email_key,
                Contact.id != contact.id,
            )
            .order_by(Contact.created_at)
            .limit(1)
        ).first()
        if others is not None:
            name, count = others
            more = f" and {count - 1} more" if count > 1 else ""
            warnings.append(
                Problem(
                    "email_in_use",
                    f"The e-mail {contact.email} is also the e-mail of {name}{more}.",
                )
            )
    return AccessPlan(
        contact_id=contact.id,
        username=login,
        user_name=user_name,
        username_from=login_from,
        license=lic.name if lic is not None else lic_name,
        license_from=("manual" if license is not None else "rules") if lic_name else None,
        roles=tuple(result.roles) if result else (),
        groups=tuple((j["id"], j["displayName"]) for j in joins),
        warnings=tuple(warnings),
        errors=tuple(errors),
        seats_left=seats_left,
    )


def _license(session: Session, org_id: str, name: str | None) -> License | None:
    if name is None or not name.strip():
        return None
    found = licenses.find_license(session, org_id, name.strip())
    if found is None:
        raise InvalidValueError(f"Unknown license {name.strip()!r}.")
    return found


def preview(
    session: Session,
    org_id: str,
    contact_id: str,
    *,
    username: str | None = None,
    license: str | None = None,
) -> AccessPlan:
    """The plan as it stands now (the console shows it before the admin decides)."""
    with session.begin():
        contact = _contact(session, org_id, contact_id, lock=False)
        return plan_access(
            session,
            org_id,
            contact,
            username=clean_username(username),
            license=_license(session, org_id, license),
        )


def _contact(session: Session, org_id: str, contact_id: str, *, lock: bool) -> Contact:
    stmt = select(Contact).where(Contact.org_id == org_id, Contact.id == contact_id)
    contact = session.scalar(stmt.with_for_update() if lock else stmt)
    if contact is None:
        raise NotFoundError(f"Contact {contact_id!r} not found.")
    return contact


def enable_access(
    session: Session,
    org_id: str,
    contact_id: str,
    *,
    username: str | None = None,
    license: str | None = None,
    override: bool = False,
    delivery: Delivery | None = None,
) -> User:
    """Create the account of a person contact, the way its rules and settings say.

    Refused (``AccessRefusedError``, 409, nothing written) on any error, and on
    warnings unless ``override``; an override is written into the ``user.create``
    event with the warnings it overrode. ``delivery``: the welcome credentials, as
    for a SCIM create.
    """
    given = clean_username(username)
    try:
        with session.begin():
            # Locked: two admins enabling the same contact make one account, not two.
            contact = _contact(session, org_id, contact_id, lock=True)
            chosen = _license(session, org_id, license)
            plan = plan_access(session, org_id, contact, username=given, license=chosen)
            if plan.errors or (plan.warnings and not override):
                raise AccessRefusedError(plan)
            assert plan.username is not None and plan.user_name is not None
            doc = _doc(contact, plan.user_name, _company(session, contact))
            access: dict[str, Any] = {
                "contact_id": contact.id,
                "username_from": plan.username_from,
                "override": bool(override and plan.warnings),
            }
            if plan.warnings:
                access["warnings"] = [p.as_dict() for p in plan.warnings]
            return users.insert_user(
                session,
                org_id,
                doc,
                delivery=delivery,
                source="manual",
                default_groups=True,
                for_contact=ForContact(
                    contact_id=contact.id,
                    login_name=plan.username,
                    license=chosen,
                    explanation={"contact": "access enabled for this contact", "access": access},
                ),
            )
    except users.LostRaceError:
        raise ConflictError(
            "Another account took this username a moment ago: look at the contact again."
        ) from None
