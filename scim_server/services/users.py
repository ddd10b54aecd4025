"""Users: create, read, update and delete, with their search index and memberships."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    String,
    bindparam,
    delete,
    exists,
    literal_column,
    null,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import mappings
from scim_server.audit import record, recorder
from scim_server.audit.diff import diff
from scim_server.db import (
    AFTER_WRITE_INFO,
    WRITTEN_INFO,
    Batch,
    KeyRead,
    UTCDateTime,
    attach_loaded,
    from_row,
    read_before_lock,
    reuse_plan,
    row_columns,
    snapshot,
    utcnow,
    write_changed,
)
from scim_server.errors import NotFoundError, UniquenessError
from scim_server.fixed import Fixed
from scim_server.models import (
    AttributeValue,
    AuditHead,
    Contact,
    Group,
    GroupMember,
    License,
    User,
)
from scim_server.services import (
    contacts,
    counts,
    idp_credentials,
    licenses,
    lifecycle,
    provisioning,
)
from scim_server.services.common import check_if_match, check_if_none_match
from scim_server.services.credentials import Delivery
from scim_server.services.groups import join_new_user, lock_defaults
from scim_server.services.indexing import drop_index, index_rows, reindex_change
from scim_server.services.lifecycle import DEACTIVATED, PROVISIONED
from scim_server.services.org_config import (
    FINGERPRINT,
    FINGERPRINT_COLUMNS,
    cached_settings,
    identity_config,
)
from scim_server.services.passwords import Hashing
from scim_server.services.roles import hold
from scim_server.services.settings import IdentitySettings
from scim_server.text import exact, fold

Doc = dict[str, Any]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class UserChange(Protocol):
    """A parsed write (a PATCH, a PUT): a value whose ``apply`` is pure.

    The service applies it to the stored document under the user's row lock,
    so that If-Match and the change see the same version. It must not change
    ``current`` (a copy of the stored document whose nested values are the stored ones).
    """

    def apply(self, current: Doc) -> Doc: ...


def _stored_form(doc: Doc) -> Doc:
    """The document as stored: no password, defaults explicit, derived values dropped.

    Comparing stored forms is what makes an echoed resource (Okta's PUT of what
    it read) a no-change that keeps the version.
    """
    out = {k: v for k, v in doc.items() if k != "password"}
    out["active"] = doc.get("active", True) is not False
    enterprise = out.get(ENTERPRISE)
    if isinstance(enterprise, dict) and isinstance(enterprise.get("manager"), dict):
        # manager.$ref is derived from the id on every read.
        manager = {k: v for k, v in enterprise["manager"].items() if k != "$ref"}
        enterprise = {k: v for k, v in enterprise.items() if k != "manager"}
        if manager:
            enterprise["manager"] = manager
        if enterprise:
            out[ENTERPRISE] = enterprise
        else:
            out.pop(ENTERPRISE)
    return out


def _without_password(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "password"}


def _document_columns(stored: Doc) -> dict[str, Any]:
    """The user's columns that follow its stored document (``_stored_form``), by name."""
    return {
        "user_name": stored["userName"],
        "user_name_key": fold(stored["userName"]),
        "external_id": exact(stored["externalId"]) if stored.get("externalId") else None,
        "display_name": stored.get("displayName"),
        "data": stored,
    }


def _taken(user_name: str, existing_id: str | None) -> UniquenessError:
    held = f" by the User with id {existing_id!r}" if existing_id else ""
    return UniquenessError(
        f"userName {user_name!r} is already taken{held}.",
        existing_id=existing_id,
        resource_type="User",
    )


_HOLDER = reuse_plan(
    select(User.id).where(
        User.org_id == bindparam("org_id"), User.user_name_key == bindparam("key")
    )
)


def _holder(session: Session, org_id: str, user_name: str) -> str | None:
    """The id of the user whose userName clashes with ``user_name`` (same folding as the index)."""
    params = {"org_id": org_id, "key": fold(user_name)}
    return session.connection().execute(_HOLDER, params).scalar()


def _check_unique(session: Session, org_id: str, doc: Doc, user_id: str | None) -> None:
    clash = _holder(session, org_id, doc["userName"])
    if clash is not None and clash != user_id:
        raise _taken(doc["userName"], clash)


# A create's first statement asks everything it must know before it writes, in one
# round trip: who holds the userName; whether an account's internal username is the
# same text (the new account's login name follows userName); the organization's
# settings fingerprint (``org_config``); and which person contact the match keys find
# (``contacts.person_match``), with the keys of the settings this process holds for the
# organization (``provision`` matches again in the rare case that the settings read
# here say other keys). One statement per tuple of keys, built once.
# On SQLite the same statement also reads the organization's audit head (``with_head``):
# the writer holds the database's write lock from ``BEGIN IMMEDIATE``, so that head is the
# one the create's audit event is written onto (``recorder.hold_head``, as DELETE's first
# read): one statement less at the commit.
# Run from its compiled form (``db.KeyRead``): the statement is large (the settings
# fingerprint, the match's subqueries), and ``execute`` would walk and hash it for its
# cache key on every create.
_PREFLIGHTS: dict[tuple[tuple[str, ...], bool], KeyRead] = {}


def _preflight_statement(keys: tuple[str, ...], with_head: bool = False) -> KeyRead:
    found = _PREFLIGHTS.get((keys, with_head))
    if found is not None:
        return found
    org_id: Any = bindparam("org_id")
    key: Any = bindparam("key")
    holder = select(User.id).where(User.org_id == org_id, User.user_name_key == key).limit(1)
    login_taken = exists().where(User.org_id == org_id, User.login_name_key == key)
    match = contacts.person_match(keys) if keys else null()
    stmt = select(
        *FINGERPRINT.c,
        holder.scalar_subquery().label("holder"),
        login_taken.label("login_taken"),
        match.label("match"),
    ).select_from(FINGERPRINT)
    if with_head:  # no head row yet (the organization's first event): NULLs
        stmt = stmt.add_columns(*recorder.head_columns()).outerjoin(
            AuditHead, AuditHead.org_id == org_id
        )
    # By unique keys (the userName, the username, the organization) and the match keys'
    # indexes, a contact or two: one plan whatever the values, reused.
    found = _PREFLIGHTS[(keys, with_head)] = KeyRead(reuse_plan(stmt))
    return found


@dataclass(frozen=True)
class _Preflight:
    login_name_free: bool  # no account's internal username is the userName
    config: tuple[IdentitySettings, Any]  # ``identity_config``
    match: provisioning.ContactMatch | None


def _check_new(
    session: Session, org_id: str, doc: Doc, *, match_contact: bool = True
) -> _Preflight:
    """Refuse a taken userName (409 naming its holder); read what the create needs."""
    keys: tuple[str, ...] = ()
    if match_contact:
        fields = provisioning.contact_fields(doc)
        guess = cached_settings(session, org_id) or IdentitySettings()
        keys = contacts.usable_keys(guess.match_keys, fields["external_id"], fields["email"])
        params = contacts.match_params(org_id, fields["external_id"], fields["email"])
    else:  # the statement does not use them; a KeyRead is given the same names each time
        params = contacts.match_params(org_id, None, None)
    params["key"] = fold(doc["userName"])
    connection = session.connection()
    with_head = connection.dialect.name == "sqlite" and recorder.may_take_head(session, org_id)
    preflight = _preflight_statement(keys, with_head)
    row = preflight.execute(connection, params).mappings().first()
    if row is None:  # no such organization: nothing to match, the default settings
        clash, free = _holder(session, org_id, doc["userName"]), True
        fingerprint, match = None, None
    else:
        clash, free = row["holder"], not row["login_taken"]
        fingerprint = tuple(row[name] for name in FINGERPRINT_COLUMNS)
        match = provisioning.ContactMatch(keys, row["match"]) if match_contact else None
    if clash is not None:
        raise _taken(doc["userName"], clash)
    if with_head and row is not None:
        recorder.hold_head(session, org_id, row)
    return _Preflight(free, identity_config(session, org_id, fingerprint), match)


class LostRaceError(Exception):
    """A concurrent create took the userName or username between our check and our insert."""


@dataclass(frozen=True)
class ForContact:
    """What an admin enabling access for an existing person contact decided
    (``services.access``): the contact, the username (kept as given), a manual license
    (None: the rules decide) and what the create's event adds to its explanation."""

    contact_id: str
    login_name: str
    license: License | None
    explanation: dict[str, Any]


def create_user(
    session: Session,
    org_id: str,
    doc: Doc,
    *,
    identity: Any = None,
    delivery: Delivery | None = None,
    source: str = "scim",
    default_groups: bool = False,
) -> User:
    """Create a user. A retried create (same userName) gets a uniqueness error, never a twin.

    The error names the existing user's id, so that a client whose first create
    was stored but unanswered (the connection died after the commit) can link it.
    ``identity`` (a ``mappings.ExternalIdentity``) is what the rules see when the
    creation comes from a sign-in (JIT) rather than SCIM: its groups and claims.
    ``delivery`` (SCIM creates): where passwords are allowed, the welcome mail is
    queued in the create transaction, or the IdP's ``password`` is set
    (``services.idp_credentials.on_create``). ``source`` (scim, jit, manual) is kept
    on the account for the console's filter. ``default_groups``: the account joins the
    settings' default groups (creates outside SCIM: a first sign-in, an import).
    """
    try:
        with session.begin():
            return insert_user(
                session,
                org_id,
                doc,
                identity=identity,
                delivery=delivery,
                source=source,
                default_groups=default_groups,
                alone=True,
            )
    except LostRaceError:
        # The failed transaction is rolled back: read the winner in a new one.
        raise _taken(doc["userName"], _holder(session, org_id, doc["userName"])) from None
    finally:
        session.info.pop(CREATED_INFO, None)


# A create that is its transaction's only change (``create_user``) and gave the user no
# group, role or license notes it here as (org_id, user id, version): the events writer
# then knows the user's groups, roles and license names (none) without reading them.
CREATED_INFO = "users_created_alone"


def insert_user(
    session: Session,
    org_id: str,
    doc: Doc,
    *,
    identity: Any = None,
    delivery: Delivery | None = None,
    source: str = "scim",
    for_contact: ForContact | None = None,
    default_groups: bool = False,
    alone: bool = False,
) -> User:
    """``create_user`` in the caller's open transaction (``services.access`` checks the
    contact, seats and names in the same one). A lost race on a unique name raises
    ``LostRaceError``: the caller rolls back and says so.

    ``default_groups``: never for a SCIM create, whose groups are the IdP's (its next
    group PUT would undo ours); the groups are locked first, seen by the rules, and
    joined through ``join_new_user`` after the ``user.create`` event.

    ``alone``: nothing else changes in this transaction (``create_user``); a user given
    no group, role or license is then noted under ``CREATED_INFO``."""
    checked = _check_new(session, org_id, doc, match_contact=for_contact is None)
    # Read once (cached per process): provisioning and the welcome both use it.
    config = checked.config
    joining = lock_defaults(session, org_id, config[0].default_groups) if default_groups else []
    joins = _joins(joining)
    now = utcnow()
    stored = _stored_form(doc)
    # The new user, its values put in its dict at once (``from_row``): no instrumented
    # attribute set per column. It is transient as a constructed one; what is not given
    # is the column's default.
    user = from_row(
        User,
        {
            "org_id": org_id,
            "id": str(uuid.uuid4()),
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "source": source,
            **_document_columns(stored),
            "active": stored["active"],
            "status": PROVISIONED if stored["active"] else DEACTIVATED,
        },
    )
    if for_contact is not None:
        user.contact_id = for_contact.contact_id
        user.login_name = for_contact.login_name
        user.login_name_key = fold(for_contact.login_name)
        if for_contact.license is not None:
            user.license_source = "manual"  # the rules leave the admin's choice alone
    # provision adds the user (and a new person contact) to ``batch`` once its contact,
    # internal username and what the rules give are set (through the ORM, flushed below,
    # when rules give roles); its index rows and welcome schedule join them, and the
    # count's change ends the batch's statement (PostgreSQL: one round trip for all).
    # An admin's create for a contact (``for_contact``) writes the user at once: the
    # license assignment after it reads and changes the stored row.
    batch = Batch()
    try:
        explanation = provisioning.provision(
            session,
            org_id,
            user,
            user.data,
            creating=True,
            identity=identity,
            config=config,
            login_name_free=checked.login_name_free,
            joins=joins,
            match=checked.match,
            batch=batch if for_contact is None else None,
        )
        if joins:
            explanation["default_groups"] = [
                {"id": j["id"], "displayName": j["displayName"]} for j in joins
            ]
        if for_contact is not None:
            if for_contact.license is not None:
                assigned = licenses.assign(
                    session,
                    org_id,
                    user,
                    for_contact.license,
                    source="manual",
                    # Created deactivated (the rules' status): no seat asked, as for a rule's.
                    strict=config[0].strict_seats and user.status != DEACTIVATED,
                )
                # Where the rules' license changes are (``explanation.changes``): the
                # billing report and the product events read the seat taken there.
                explanation.setdefault("changes", {}).update(assigned)
                if user.license_id is not None:
                    user.license_source = "manual"
            explanation |= for_contact.explanation
        session.flush()
        batch.add_rows(AttributeValue.__table__, index_rows(org_id, user.id, user.data))
        welcome = idp_credentials.on_create(session, delivery, user, doc, config[0], batch)
        if welcome:
            explanation["credentials"] = welcome
        batch.write(session)
    except IntegrityError:
        raise LostRaceError from None
    # Last, so that the organization's audit head is held for the shortest time.
    record(
        session,
        org_id,
        "user.create",
        **_about(user),
        changes=diff(None, {**_without_password(doc), "active": user.active}),
        explanation=explanation or None,
    )
    join_new_user(session, org_id, user.id, joining)
    idp_credentials.after_create(session, delivery, user, doc)
    counts.changed(session, org_id, "User", +1)  # at the commit, before the audit head
    if (
        alone
        and config[1] is None  # no rules: no roles, no license (``provision``)
        and not joining
        and for_contact is None
        and user.license_id is None
        and user.license_wanted_id is None
    ):
        session.info[CREATED_INFO] = (org_id, user.id, user.version)
    return user


def _joins(groups: Iterable[Group]) -> list[dict[str, Any]]:
    """The default groups a new account joins, as its rules see them (``provision``)."""
    return [
        {"id": g.id, "displayName": g.display_name, "externalId": g.external_id} for g in groups
    ]


@dataclass(frozen=True)
class NewUserRules:
    """The rules as ``insert_user`` evaluates them for a new account, read once for a plan of
    many creates (an import's preview): what the rules would give each, nothing locked or
    written, so the plan and the create cannot disagree on what the rules see."""

    settings: IdentitySettings
    rules: Any  # validated rules, or None: no rules nor defaults apply
    joins: list[dict[str, Any]]

    @classmethod
    def read(cls, session: Session, org_id: str, *, default_groups: bool) -> NewUserRules:
        """``default_groups``: the creates join the settings' default groups (``insert_user``)."""
        settings, rules = identity_config(session, org_id)
        ids = list(settings.default_groups) if default_groups and rules is not None else []
        found: Iterable[Group] = (
            session.scalars(
                select(Group).where(Group.org_id == org_id, Group.id.in_(ids)).order_by(Group.id)
            )
            if ids
            else ()
        )
        return cls(settings, rules, _joins(found))

    def resolve(self, doc: Doc) -> mappings.MappingResult | None:
        """What the rules give a create of ``doc`` (``provision``: its stored form, the default
        groups); None without rules."""
        if self.rules is None:
            return None
        identity = mappings.ExternalIdentity.from_scim(_stored_form(doc), self.joins)
        return mappings.resolve(identity, self.rules)


def _about(user: Any) -> dict[str, Any]:
    return {
        "resource_type": "User",
        "resource_id": user.id,
        "external_id": user.external_id,
        "user_name": user.user_name,
    }


# Reads on the hot path run as prebuilt Core statements returning rows (which
# the renderers read like the ORM objects): no statement building, no identity map.
# Each is keyed by the user's primary key: its plan is reused (``db.reuse_plan``).
_USER_BY_ID = reuse_plan(
    select(*row_columns(User)).where(
        User.org_id == bindparam("org_id"), User.id == bindparam("user_id")
    )
)
_GROUPS_OF_ONE = reuse_plan(
    select(Group.id, Group.display_name)
    .join(GroupMember, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id))
    .where(GroupMember.org_id == bindparam("org_id"), GroupMember.member_id == bindparam("user_id"))
    .order_by(Group.display_name_key)
)


def _groups_and_roles(*more: Any) -> tuple[Any, Any]:
    """The selects of one user's groups (g) and roles with their sources (r), in the
    extras' seven columns (kind, id, name, role_kind, source, rule, sort_key), ``more``
    after them (``_USER_AND_EXTRAS``: the row's columns, NULL)."""
    from scim_server.models import Role, UserRole

    groups: Any = (
        select(
            literal_column("'g'").label("kind"),
            Group.id.label("id"),
            Group.display_name.label("name"),
            null().label("role_kind"),
            null().label("source"),
            null().label("rule"),
            Group.display_name_key.label("sort_key"),
            *more,
        )
        .join(
            GroupMember, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id)
        )
        .where(
            GroupMember.org_id == bindparam("org_id"), GroupMember.member_id == bindparam("user_id")
        )
    )
    roles: Any = (
        select(
            literal_column("'r'"),
            Role.id,
            Role.name,
            Role.kind,
            UserRole.source,
            UserRole.rule,
            Role.name_key,
            *more,
        )
        .join(Role, (Role.org_id == UserRole.org_id) & (Role.id == UserRole.role_id))
        .where(UserRole.org_id == bindparam("org_id"), UserRole.user_id == bindparam("user_id"))
    )
    return groups, roles


def extras_of_one_statement(*more: Any) -> Any:
    """One user's groups, roles and license names in one statement (``_EXTRAS_OF_ONE``);
    ``more``: other selects of the same seven columns to read with them, in the same round
    trip (``events.writer``: the organization's audit head, locked)."""
    groups, roles = _groups_and_roles()
    licenses: Any = select(
        literal_column("'l'"), License.id, License.name, null(), null(), null(), License.id
    ).where(
        License.org_id == bindparam("org_id"),
        License.id.in_([bindparam("license_id"), bindparam("wanted_id")]),
    )
    both: Any = union_all(groups, roles, licenses, *more)
    cols = both.selected_columns
    # One user's rows, by keys (``more``: the audit head, by its organization).
    return reuse_plan(both.order_by(cols.kind, cols.sort_key, cols.source))


# What one user's representation needs beside its row, in one round trip: its
# groups (g), its roles and their sources (r), the names of its licenses (l).
_EXTRAS_OF_ONE = extras_of_one_statement()


Extras = tuple[list[tuple[str, str]], list[dict[str, Any]], dict[str, str]]


def extras_of_one(
    session: Session,
    org_id: str,
    user: Any,
    *,
    remember: bool = False,
    rows: Iterable[Any] | None = None,
) -> Extras:
    """(groups, roles, license names) of one user, as ``groups_of``, ``roles_of`` give them.

    ``remember`` (the events writer, as a write commits): kept for the write's own
    response; ``db.read_after_write`` hands it to the reader session, where it is
    used once, for that user at that version, instead of the same query again.
    ``rows``: the rows of ``_EXTRAS_OF_ONE`` when the caller read them (with more).
    """
    if not remember:
        kept: dict[tuple[str, str, int], Extras] | None = session.info.get(AFTER_WRITE_INFO)
        if kept:
            found = kept.pop((org_id, user.id, user.version), None)
            if found is not None:
                return found
        return _extras_query(session, org_id, user)
    found = _extras_from_rows(rows) if rows is not None else _extras_query(session, org_id, user)
    session.info[WRITTEN_INFO] = {(org_id, user.id, user.version): found}
    return found


def extras_params(org_id: str, user: Any) -> dict[str, Any]:
    """The parameters of ``_EXTRAS_OF_ONE`` (and of ``extras_of_one_statement(...)``)."""
    return {
        "org_id": org_id,
        "user_id": user.id,
        "license_id": user.license_id,
        "wanted_id": user.license_wanted_id,
    }


def _extras_query(session: Session, org_id: str, user: Any) -> Extras:
    rows = session.connection().execute(_EXTRAS_OF_ONE, extras_params(org_id, user))
    return _extras_from_rows(rows)


def _extras_from_rows(rows: Iterable[Any]) -> Extras:
    groups: list[tuple[str, str]] = []
    roles: dict[str, dict[str, Any]] = {}
    licenses: dict[str, str] = {}
    for kind, item_id, name, role_kind, source, rule, _key in rows:
        if kind == "g":
            groups.append((item_id, name))
        elif kind == "r":
            hold(roles, item_id, name, role_kind, source, rule)
        else:
            licenses[item_id] = name
    return groups, list(roles.values()), licenses


def _user_and_extras() -> Any:
    user = row_columns(User)
    blank = [null() for _ in user]

    def license_name(column: Any) -> Any:
        # The name of a license of its row (held, or waited for): a primary-key lookup.
        return (
            select(License.name)
            .where(License.org_id == User.org_id, License.id == column)
            .scalar_subquery()
        )

    # The license names ride on the user's row (two sub-selects), not as rows of their own:
    # two branches fewer to start, each a join of the user's row again with a license, and
    # two columns fewer on every branch (a 29-column UNION branch costs the server's
    # executor start more than a sub-select; 47 -> 40 us of server CPU per statement).
    me: Any = select(
        literal_column("'u'").label("x_kind"),
        null().label("x_id"),
        null().label("x_name"),
        null().label("x_role_kind"),
        null().label("x_source"),
        null().label("x_rule"),
        null().label("x_sort_key"),
        license_name(User.license_id).label("x_license_name"),
        license_name(User.license_wanted_id).label("x_wanted_name"),
        *user,
    ).where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
    groups, roles = _groups_and_roles(null(), null(), *blank)
    both: Any = union_all(me, groups, roles)
    cols = both.selected_columns
    return reuse_plan(both.order_by(cols.x_kind, cols.x_sort_key, cols.x_source))


# GET by id in one round trip: the user's row ('u', with the names of the licenses it
# holds and waits for; the extras' columns NULL) and, as _EXTRAS_OF_ONE gives them, its
# groups (g) and roles (r).
_USER_AND_EXTRAS = _user_and_extras()
# Run from its compiled form (``db.KeyRead``): no cache key walked and hashed per GET.
_USER_AND_EXTRAS_READ = KeyRead(_USER_AND_EXTRAS)


def read_user_and_extras(connection: Connection, org_id: str, user_id: str) -> tuple[Any, Extras]:
    """A user as a read-only row and its (groups, roles, license names) as
    ``extras_of_one`` gives them, in one statement (``_USER_AND_EXTRAS``) on
    ``connection``: GET by id reads on the request's connection without a Session
    (``db.read_connection``)."""
    user = None
    groups: list[tuple[str, str]] = []
    roles: dict[str, dict[str, Any]] = {}
    licenses: dict[str, str] = {}
    rows = _USER_AND_EXTRAS_READ.execute(connection, {"org_id": org_id, "user_id": user_id})
    for row in rows:
        kind = row.x_kind
        if kind == "u":
            user = row
        elif kind == "g":
            groups.append((row.x_id, row.x_name))
        else:
            hold(roles, row.x_id, row.x_name, row.x_role_kind, row.x_source, row.x_rule)
    if user is None:
        raise NotFoundError(f"User {user_id!r} not found.")
    if user.x_license_name is not None:
        licenses[user.license_id] = user.x_license_name
    if user.x_wanted_name is not None:
        licenses[user.license_wanted_id] = user.x_wanted_name
    return user, (groups, list(roles.values()), licenses)


_USER = reuse_plan(
    select(User).where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
)
_USER_FOR_UPDATE = _USER.with_for_update()


def get_user(session: Session, org_id: str, user_id: str, *, for_update: bool = False) -> User:
    stmt = _USER_FOR_UPDATE if for_update else _USER
    user = session.scalar(stmt, {"org_id": org_id, "user_id": user_id})
    if user is None:
        raise NotFoundError(f"User {user_id!r} not found.")
    return user


# A person contact's columns labelled c_<attribute> (NULLs for an account without one:
# older rows), beside the user's or the settings fingerprint's in one row; the pairs map
# them back to the contact's attributes.
_CONTACT_COLUMNS = tuple(c.label(f"c_{c.key}") for c in row_columns(Contact))
_CONTACT_KEYS = tuple((column.key, f"c_{column.key}") for column in row_columns(Contact))


def _contact_and_fingerprint() -> Any:
    # The contact and the organization's settings fingerprint (``org_config.FINGERPRINT``,
    # one row).
    return reuse_plan(
        select(*FINGERPRINT.c, *_CONTACT_COLUMNS)
        .select_from(FINGERPRINT)
        .outerjoin(
            Contact,
            (Contact.org_id == bindparam("org_id")) & (Contact.id == bindparam("contact_id")),
        )
    )


# A write's first reads: its user, the row locked; then, once it is locked (PostgreSQL:
# a fresh snapshot, so nothing committed while the lock was awaited is missed), the
# person contact and the settings fingerprint in one statement.
_USER_FOR_UPDATE_ROW = KeyRead(_USER_BY_ID.with_for_update())
_CONTACT_AND_FINGERPRINT = KeyRead(_contact_and_fingerprint())


def _user_contact_and_fingerprint() -> Any:
    return reuse_plan(
        select(*row_columns(User), *FINGERPRINT.c, *_CONTACT_COLUMNS)
        .select_from(User)
        .join(FINGERPRINT, true())
        .outerjoin(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
        .where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
    )


# SQLite: the three in one statement. The writer holds the database's write lock from
# ``BEGIN IMMEDIATE``, so nothing can change between reading the user and its contact.
_USER_CONTACT_AND_FINGERPRINT = KeyRead(_user_contact_and_fingerprint())
_USER_KEYS = tuple(column.key for column in row_columns(User))
_CONTACT_ATTRIBUTES = tuple(key for key, _label in _CONTACT_KEYS)
# Where each part begins in those rows (``_locked_user`` reads them by position, in the
# order the statements select them: the user's columns, the fingerprint's, the contact's).
_USERS_END = len(_USER_KEYS)
_FINGERPRINT_WIDTH = len(FINGERPRINT_COLUMNS)
_C_ID = _CONTACT_ATTRIBUTES.index("id")


@dataclass
class _Locked:
    """What a user's write reads first (``_locked_user``)."""

    user: User
    contact: Any  # its person contact, None without one
    fingerprint: tuple[Any, ...]  # the organization's (``org_config.identity_config``)


def _locked_user(session: Session, org_id: str, user_id: str) -> _Locked:
    """The user (row locked), then its person contact and its organization's settings
    fingerprint (one statement; on SQLite, one statement for all three); the user and
    contact as objects in no session yet (``db.from_row``): the write changes them as plain
    values and ``db.write_changed`` stores what differs. The rows are read by position
    (their columns' order is the statements'), not by name."""
    connection = session.connection()
    params = {"org_id": org_id, "user_id": user_id}
    if connection.dialect.name == "sqlite":
        more = _USER_CONTACT_AND_FINGERPRINT.execute(connection, params).first()
        if more is None:
            raise NotFoundError(f"User {user_id!r} not found.")
        user = from_row(User, zip(_USER_KEYS, more[:_USERS_END], strict=True))
        more = more[_USERS_END:]
    else:
        row = _USER_FOR_UPDATE_ROW.execute(connection, params).first()
        if row is None:
            raise NotFoundError(f"User {user_id!r} not found.")
        user = from_row(User, zip(_USER_KEYS, row, strict=True))
        params = {"org_id": org_id, "contact_id": user.contact_id}
        more = _CONTACT_AND_FINGERPRINT.execute(connection, params).one()
    fingerprint = tuple(more[:_FINGERPRINT_WIDTH])
    found = more[_FINGERPRINT_WIDTH:]
    if found[_C_ID] is None:
        return _Locked(user, None, fingerprint)
    contact = from_row(Contact, zip(_CONTACT_ATTRIBUTES, found, strict=True))
    return _Locked(user, contact, fingerprint)


_USER_DATA = KeyRead(
    reuse_plan(
        select(User.data).where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
    )
)


def _prepared(
    session: Session, org_id: str, user_id: str, change: UserChange
) -> tuple[Doc, Doc] | None:
    """SQLite: (the stored document, ``change`` applied to it), computed before the write
    lock is taken (``db.read_before_lock``); the write uses it only when the document it
    reads under the lock is still this one. None elsewhere, or when there is nothing to
    reuse: the change is then applied under the lock, as on PostgreSQL."""
    with read_before_lock(session) as connection:
        if connection is None:
            return None
        stored = _USER_DATA.execute(connection, {"org_id": org_id, "user_id": user_id}).scalar()
    if stored is None:
        return None
    try:
        return stored, change.apply(dict(stored))
    except Exception:
        return None


def update_user(
    session: Session,
    org_id: str,
    user_id: str,
    change: UserChange,
    if_match: Sequence[str] | None = None,
    action: str = "user.replace",
    *,
    hashing: Hashing | None = None,
    if_none_match: Sequence[str] | None = None,
) -> User:
    """Replace or patch: ``change`` turns the stored document into the new, validated one.

    A change of ``active`` is the named status transition ``user.deactivate`` or
    ``user.activate``, recorded as its own event: the moment access was removed
    or restored. The user and contact rows are read and written with Core statements
    (``_locked_user``; an UPDATE of the changed columns of each), not the ORM's load and
    flush.
    On SQLite the change is applied before the write lock (``_prepared``) and reused
    when the stored document is unchanged under the lock.
    """
    prepared = _prepared(session, org_id, user_id, change)
    with session.begin():
        locked = _locked_user(session, org_id, user_id)
        user, contact = locked.user, locked.contact
        check_if_match(user.version, if_match)
        check_if_none_match(user.version, if_none_match)
        stored = user.data  # the document the index holds now
        was_active = user.active
        if prepared is not None and prepared[0] == stored:
            # The same document: the one the change was applied to, whose values the new
            # document shares where the change left them (``UserPatch.apply``), so that
            # comparing them below (the index, the audit diff) is by identity.
            stored, new = prepared
        else:
            new = change.apply(dict(stored))
        password = new.pop("password", None)
        document = _stored_form(new)
        if document == stored:
            # Nothing changed: same version, but the request is still evidence.
            user = attach_loaded(session, user)
            record(session, org_id, action, **_about(user), changes={})
            if idp_credentials.on_update(session, hashing, user, password):
                # A new password (its own event, never its value) moves the version.
                user.version += 1
                user.updated_at = utcnow()
            return user
        if fold(new["userName"]) != user.user_name_key:
            _check_unique(session, org_id, new, user.id)
        user_before = snapshot(user)
        contact_before = snapshot(contact) if contact is not None else None
        # Plain values of an object in no session yet (``db.from_row``): ``write_changed``
        # compares them with the snapshot, and attaching the user resets its history.
        user.__dict__.update(
            _document_columns(document), version=user.version + 1, updated_at=utcnow()
        )
        # The IdP's `active` drives the status (an admin lock is not the IdP's to lift);
        # its event comes after the change's.
        moved: tuple[str, str] | None = None
        if not document["active"] and user.status != DEACTIVATED:
            name = "deactivate"
            moved = (name, lifecycle.change_status(user, name, bump_version=False))
        elif document["active"] and user.status == DEACTIVATED:
            name = "activate"
            moved = (name, lifecycle.change_status(user, name, bump_version=False))
        config = identity_config(session, org_id, locked.fingerprint)
        explanation = provisioning.provision(
            session,
            org_id,
            user,
            user.data,
            creating=False,
            contact=contact,
            config=config,
            before=stored,
        )
        # One UPDATE of the user's row (and one of its contact's, when the change reached it).
        try:
            user = write_changed(session, user, user_before)
        except IntegrityError:
            raise _taken(new["userName"], None) from None
        if contact is not None and contact_before is not None:
            _write_contact(session, contact, contact_before)
        reindex_change(session, org_id, user.id, stored, user.data)
        record(
            session,
            org_id,
            action,
            **_about(user),
            changes=diff({**stored, "active": was_active}, {**new, "active": user.data["active"]}),
            explanation=explanation or None,
        )
        idp_credentials.on_update(session, hashing, user, password)
        if moved is not None:
            name, was = moved
            reason = f"active={str(name == 'activate').lower()} from the IdP"
            lifecycle.record_transition(session, user, name, was, reason)
    return user


def _write_contact(session: Session, contact: Contact, before: dict[str, Any]) -> None:
    """The person contact's UPDATE, when the write changed it (``provision``). Nothing after
    it reads the contact in this transaction: it joins the session only when the session
    holds that row already (an earlier operation), whose object then takes its values."""
    key = session.identity_key(Contact, (contact.org_id, contact.id))
    write_changed(session, contact, before, attach=key in session.identity_map)


# By the user's key, their plans reused (``db.reuse_plan``).
_DELETE_READ_UNLOCKED = select(
    User.id, User.version, User.external_id, User.user_name, User.license_id
).where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
_DELETE_READ = KeyRead(reuse_plan(_DELETE_READ_UNLOCKED.with_for_update()))
# SQLite: the same read with the organization's audit head (no head row yet: NULLs), which
# the deletion's audit event is then written onto (``recorder.hold_head``): one statement less;
# and whether the user is a member of any group: when not, no DELETE of its memberships
# (the writer holds the database's write lock from ``BEGIN IMMEDIATE``: none can be added
# between the read and the deletion).
_IN_GROUPS = (
    exists()
    .where(GroupMember.org_id == User.org_id, GroupMember.member_id == User.id)
    .label("in_groups")
)
_DELETE_READ_WITH_HEAD = KeyRead(
    reuse_plan(
        _DELETE_READ_UNLOCKED.add_columns(*recorder.head_columns(), _IN_GROUPS).outerjoin_from(
            User, AuditHead, AuditHead.org_id == User.org_id
        )
    )
)
_DELETE_USER = Fixed(
    reuse_plan(
        delete(User).where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
    )
)
_DELETE_MEMBERSHIPS = KeyRead(
    reuse_plan(
        delete(GroupMember)
        .where(
            GroupMember.org_id == bindparam("org_id"),
            GroupMember.member_id == bindparam("user_id"),
        )
        .returning(GroupMember.group_id)
    )
)
# PostgreSQL: the rest of a deletion in one statement (one round trip instead of four):
# its memberships (the groups that lost one move their version), its index rows and the
# row; its rows: the groups left. The sub-statements are listed in the order the separate
# statements ran, so rows are locked in the same order. The count moves at the commit.
_DELETE_ALL = KeyRead(
    reuse_plan(
        text(
            "WITH gm AS (DELETE FROM group_members WHERE org_id = :org_id AND member_id = :user_id "
            "RETURNING group_id), "
            "gv AS (UPDATE groups SET version = version + 1, updated_at = :now "
            "WHERE org_id = :org_id AND id IN (SELECT group_id FROM gm)), "
            "av AS (DELETE FROM attribute_values "
            "WHERE org_id = :org_id AND resource_id = :user_id), "
            "u AS (DELETE FROM users WHERE org_id = :org_id AND id = :user_id) "
            "SELECT group_id FROM gm"
        ).bindparams(
            bindparam("org_id", type_=String),
            bindparam("user_id", type_=String),
            bindparam("now", type_=UTCDateTime),
        )
    )
)


def delete_user(
    session: Session,
    org_id: str,
    user_id: str,
    if_match: Sequence[str] | None = None,
    *,
    if_none_match: Sequence[str] | None = None,
) -> None:
    """Remove the user, its memberships and its index rows (Core statements: the row
    read locked, then deleted; nothing of it goes through the ORM)."""
    with session.begin():
        connection = session.connection()
        params = {"org_id": org_id, "user_id": user_id}
        with_head = connection.dialect.name == "sqlite" and recorder.may_take_head(session, org_id)
        user = (
            (_DELETE_READ_WITH_HEAD if with_head else _DELETE_READ)
            .execute(connection, params)
            .first()
        )
        if user is None:
            raise NotFoundError(f"User {user_id!r} not found.")
        check_if_match(user.version, if_match)
        check_if_none_match(user.version, if_none_match)
        if with_head:
            recorder.hold_head(session, org_id, user._mapping)
        if connection.dialect.name == "postgresql":
            session.flush()  # as the statements below would (autoflush)
            left = _DELETE_ALL.execute(connection, {**params, "now": utcnow()}).scalars().all()
            record(session, org_id, "user.delete", **_about(user), changes=_deleted(user, left))
            counts.changed(session, org_id, "User", -1)
            return
        removed: Sequence[str] = ()
        if not with_head or user.in_groups:
            removed = _DELETE_MEMBERSHIPS.execute(connection, params).scalars().all()
        if removed:
            # The groups that lost a member changed: their versions move.
            session.execute(
                update(Group)
                .where(Group.org_id == org_id, Group.id.in_(removed))
                .values(version=Group.version + 1, updated_at=utcnow())
            )
        drop_index(session, org_id, user_id)
        record(session, org_id, "user.delete", **_about(user), changes=_deleted(user, removed))
        _DELETE_USER.run(connection, params)
        counts.changed(session, org_id, "User", -1)


def _deleted(user: Any, removed: Sequence[str]) -> dict[str, Any]:
    """A deletion's changes: the groups it left, the seat it gave back."""
    changes: dict[str, Any] = {"groups": {"before": sorted(removed)}} if removed else {}
    if user.license_id:
        # The seat given back: the billing view reads it from here.
        changes["license"] = {"before": user.license_id, "after": None}
    return changes


def groups_of(
    session: Session, org_id: str, user_ids: list[str]
) -> dict[str, list[tuple[str, str]]]:
    """Direct group memberships, as (group id, display name), for each user."""
    out: dict[str, list[tuple[str, str]]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    if len(user_ids) == 1:
        params = {"org_id": org_id, "user_id": user_ids[0]}
        rows_of_one = session.connection().execute(_GROUPS_OF_ONE, params)
        out[user_ids[0]] = [(group_id, name) for group_id, name in rows_of_one]
        return out
    rows = session.connection().execute(
        select(GroupMember.member_id, Group.id, Group.display_name)
        .join(Group, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id))
        .where(GroupMember.org_id == org_id, GroupMember.member_id.in_(user_ids))
        .order_by(Group.display_name_key)
    )
    for member_id, group_id, name in rows:
        out[member_id].append((group_id, name))
    return out


def _license_names(session: Session, org_id: str, users: list[User]) -> dict[str, str]:
    """License id -> name, for the licenses the users hold or wait for."""
    ids = {i for u in users for i in (u.license_id, u.license_wanted_id) if i}
    if not ids:
        return {}
    stmt = select(License.id, License.name).where(License.org_id == org_id, License.id.in_(ids))
    return dict(session.connection().execute(stmt).all())


def product_view(
    session: Session | None,
    org_id: str,
    users: list[User],
    *,
    roles: dict[str, list[dict[str, Any]]] | None = None,
    license_names: dict[str, str] | None = None,
) -> dict[str, Doc]:
    """The internal account of each user, for the product extension schema.

    ``roles`` and ``license_names``, when the caller has them (``extras_of_one``),
    spare their queries; with both, no ``session`` is needed (GET by id reads without one).
    """
    from scim_server.services.roles import roles_of

    names = license_names
    held = roles
    if names is None or held is None:
        assert session is not None, "a session reads what the caller did not give"
        if names is None:
            names = _license_names(session, org_id, users)
        if held is None:
            held = roles_of(session, org_id, [u.id for u in users])
    out: dict[str, Doc] = {}
    # Each field read once: a list page's users are rows read by name (``paging``), a
    # hundred a page.
    for u in users:
        view: Doc = {"status": u.status}
        login_name = u.login_name
        if login_name:
            view["username"] = login_name
        contact_id = u.contact_id
        if contact_id:
            view["contactId"] = contact_id
        last_login = u.last_login_at
        if last_login:
            view["lastLogin"] = last_login.isoformat().replace("+00:00", "Z")
        license_id = u.license_id
        if license_id:
            lic = {"value": names.get(license_id), "source": u.license_source}
            rule = u.license_rule
            if rule:
                lic["rule"] = rule
            view["license"] = lic
        wanted = u.license_wanted_id
        if wanted:
            view["licenseShortage"] = {"value": names.get(wanted)}
        user_id = u.id
        roles_held = held.get(user_id)
        if roles_held:
            view["roles"] = [
                {"value": r["name"], "kind": r["kind"], "sources": r["sources"]} for r in roles_held
            ]
        out[user_id] = view
    return out
