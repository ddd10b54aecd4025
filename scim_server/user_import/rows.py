"""Each spreadsheet row as a SCIM User: planned (create, update, unchanged, error) and applied.

Planning writes nothing. Applying sends the row through the SCIM code path: a
new userName is ``parse_resource`` + ``users.create_user`` (a SCIM POST), a
known one is a ``UserPatch`` replacing the given attributes through
``users.update_user`` (a SCIM PATCH). An empty cell leaves the attribute as it
is; the email and phone cells are the user's work address and number, patched by
path so the user's other addresses and numbers stay. A row repeating an earlier
row's userName is an error, in the plan and in the import alike. Each row is its
own transaction: one bad row never undoes the others. A new account joins the
settings' default groups (a SCIM POST does not: the IdP owns its memberships).

The console's import applies what its preview showed (``Planned``): a row whose account
the directory changed since (deleted, replaced, created, or now changed beyond the
preview's attributes, such as ``active`` after a deactivation) is refused, never
re-decided. The account is read for that check with its row locked (``_holder``), in the
transaction that writes it: a change the IdP commits meanwhile is either seen by the check
or made after the write, never lost under it. The CLI has no preview to keep to: it plans
and applies in one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import mappings
from scim_server.audit import record
from scim_server.errors import DomainError, InvalidValueError
from scim_server.models import License, User
from scim_server.scim.patch import UserPatch
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import ENTERPRISE_SCHEMA, USER, USER_SCHEMA
from scim_server.services import (
    console_access,
    licenses,
    provisioning,
    table_stats,
    user_lookup,
    users,
)
from scim_server.services.lifecycle import DEACTIVATED
from scim_server.text import fold
from scim_server.user_import.sheets import Row

ACTIONS = ("create", "update", "unchanged", "error")
_TRUE = {"true", "yes", "y", "1", "active"}
_FALSE = {"false", "no", "n", "0", "inactive"}


@dataclass(frozen=True)
class Outcome:
    """What a row would do (plan) or did (apply), and why."""

    line: int
    user_name: str
    action: str
    reason: str = ""
    user_id: str | None = None
    # The attributes an update changes (SCIM names, sorted); empty otherwise.
    changes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Planned:
    """What the preview showed for a row, as the admin approved it: its ``action`` (create,
    update or unchanged), the account it changes (``user_id``, None for a create) and the
    attributes it changes (``changes``). None for either of the last two on an update or
    unchanged row: a preview that kept neither (an older release's), nothing to check by."""

    action: str
    user_id: str | None
    changes: frozenset[str] | None


Holder = tuple[str, str | None]  # an account's id and externalId, for a refusal's event


# Why a row is refused when the directory moved under its preview; the admin reads it.
STALE = "The directory changed since the preview ({}): preview the file again."


def body_of(values: dict[str, str]) -> dict[str, Any]:
    """The SCIM User body a row stands for (RFC 7643 §4.1, §4.3)."""
    user_name = values.get("userName", "")
    if not user_name:
        raise InvalidValueError("userName is empty.")
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": user_name}
    if values.get("email"):
        body["emails"] = [{"value": values["email"], "type": "work", "primary": True}]
    name = {k: values[k] for k in ("givenName", "familyName") if values.get(k)}
    if name:
        body["name"] = name
    for key in ("displayName", "externalId", "title"):
        if values.get(key):
            body[key] = values[key]
    if values.get("phone"):
        body["phoneNumbers"] = [{"value": values["phone"], "type": "work"}]
    active = values.get("active", "").lower()
    if active:
        if active not in _TRUE | _FALSE:
            raise InvalidValueError(f"active must be true or false, not {values['active']!r}.")
        body["active"] = active in _TRUE
    if values.get("department"):
        body["schemas"].append(ENTERPRISE_SCHEMA)
        body[ENTERPRISE_SCHEMA] = {"department": values["department"]}
    return body


# The email and phone cells are one work value each, not the user's whole list: a PATCH
# names that value by path, so the home address or mobile number the IdP provisioned
# stays. A user without one gets it (the path creates the value it names, as Entra ID
# relies on: ``scim.patch``); a new user's body has the lists (``body_of``).
_WORK_VALUE = {
    "emails": 'emails[type eq "work"].value',
    "phoneNumbers": 'phoneNumbers[type eq "work"].value',
}


def _patch(user_id: str, body: dict[str, Any]) -> UserPatch:
    """The PATCH of a known user: a replace of the row's attributes, its work e-mail and
    phone by path (RFC 7644 §3.5.2.3)."""
    value = {k: v for k, v in body.items() if k != "schemas" and k not in _WORK_VALUE}
    operations: list[dict[str, Any]] = [{"op": "replace", "value": value}]
    for key, path in _WORK_VALUE.items():
        if key in body:
            operations.append({"op": "replace", "path": path, "value": body[key][0]["value"]})
    return UserPatch(user_id, operations)


def _label(key: str) -> str:
    """A changed attribute as the preview names it: the enterprise extension by the one
    attribute a row carries in it (``body_of``: department), not its URN's last part."""
    return "department" if key == ENTERPRISE_SCHEMA else key.rsplit(":", 1)[-1]


def _decide(row: Row, existing: Any) -> tuple[Outcome, dict[str, Any] | None, UserPatch | None]:
    """The row's plan against the account that holds its userName now (None: a new user),
    with the new user's document (a create) or the PATCH (an update)."""
    body = body_of(row.values)
    user_name = body["userName"]
    if existing is None:
        doc = parse_resource(USER, body, creating=True)
        return Outcome(row.line, user_name, "create"), doc, None
    change = _patch(existing.id, body)
    current = dict(existing.data)
    new = change.apply(current)
    changed = sorted(k for k in body if k != "schemas" and new.get(k) != current.get(k))
    if not changed:
        return Outcome(row.line, user_name, "unchanged", user_id=existing.id), None, None
    reason = "changes " + ", ".join(_label(k) for k in changed)
    return Outcome(row.line, user_name, "update", reason, existing.id, tuple(changed)), None, change


def _drift(planned: Planned, outcome: Outcome, existing: Any) -> str | None:
    """How the row as it would run now departs from its preview (``STALE``'s parenthesis);
    None when it does not. The same account and no attribute beyond the preview's: a change
    the IdP already made leaves the row unchanged, no drift."""
    if planned.action == "create":
        return None if existing is None else "the account was created"
    if planned.action not in ("update", "unchanged") or not planned.user_id:
        return "the preview did not keep the account it would change"
    if planned.changes is None:
        return "the preview did not keep what it would change"
    if existing is None:
        return "the account was deleted or renamed"
    if existing.id != planned.user_id:
        return "another account has this userName now"
    grown = set(outcome.changes) - planned.changes
    if not grown:
        return None
    if "active" in grown:
        # The row's active cell now flips the account: the IdP (de)activated it meanwhile.
        was_active = dict(existing.data).get("active", True) is not False
        return "the account was reactivated" if was_active else "the account was deactivated"
    return "the row would now also change " + ", ".join(_label(k) for k in sorted(grown))


# A console person importing may not change an account that holds console roles beyond
# theirs (its e-mail, say, then a password reset to it: ``console_access.beyond``).
BEYOND = "this account holds console roles beyond yours: an organization admin changes it"


def _guarded(outcome: Outcome, beyond: set[str]) -> Outcome:
    """``outcome``, or an error when it updates an account in ``beyond`` (the accounts the
    importing console person may not change: ``console_access.beyond``)."""
    if outcome.action == "update" and outcome.user_id in beyond:
        return Outcome(outcome.line, outcome.user_name, "error", BEYOND)
    return outcome


def _beyond(
    session: Session, org_id: str, actor_roles: frozenset[str] | None, user_ids: list[str]
) -> set[str]:
    """None: not a console person's import (the CLI: the server's operator), nothing held."""
    if actor_roles is None or not user_ids:
        return set()
    return console_access.beyond(session, org_id, actor_roles, user_ids)


class _Seats:
    """Strict seat mode: the seats the plan's rows would take and free, in file order, as the
    import does, nothing written. A create the rules give a license with no seat left is
    refused by the import (``licenses.assign``, strict), so the plan says so with the same
    message; the rows before it took the seats, and an update the rules move off a license
    freed one for the rows after it. Each license is found and its seats counted once, then
    kept up to date (``assign(seats=...)``, as ``rules apply`` does for a batch): one query
    per license, whatever the number of rows. Not strict, a create without a seat waits for
    one (the shortage): nothing to refuse, nothing evaluated."""

    def __init__(self, session: Session, org_id: str) -> None:
        self.session, self.org_id = session, org_id
        self.rules = users.NewUserRules.read(session, org_id, default_groups=True)
        self.strict = self.rules.settings.strict_seats and self.rules.rules is not None
        self.found: dict[str, License | None] = {}
        self.seats: dict[str, tuple[int | None, int]] = {}

    def refusal(self, doc: dict[str, Any]) -> str | None:
        """Why the import would refuse a create of ``doc`` for want of a seat; else None, the
        seat taken for it."""
        result = self.rules.resolve(doc) if self.strict else None
        if result is None or not result.license:
            return None
        lic = self._license(result.license)
        # Created deactivated (inactive in the file, or by the rules' status): no seat asked,
        # it waits for one (``provisioning.apply_result``).
        leaving = doc.get("active") is False or result.initial_status == DEACTIVATED
        return self._move(User(), lic, strict=not leaving) if lic is not None else None

    def update_refusal(self, user: User, change: UserPatch) -> str | None:
        """Why the import would refuse ``change`` of ``user`` for want of a seat, as the update
        refuses it (``provisioning.OwnChange``): only an update that asks for the seat, one
        that reactivates the user or makes the rules want a license they did not want
        before; else None, the user's seats moved as the update moves them (a seat taken, the
        one held freed; a user left waiting keeps it)."""
        if not self.strict or user.license_source == "manual":
            return None
        groups = provisioning.user_groups(self.session, self.org_id, user.id)
        before = dict(user.data)
        after = change.apply(dict(user.data))
        rules = self.rules.rules
        wanted = mappings.resolve(mappings.ExternalIdentity.from_scim(after, groups), rules)
        lic = self._license(wanted.license) if wanted.license else None
        if lic is not None and user.license_id == lic.id:
            return None
        if user.license_id is not None and user.license_id not in self.seats:
            self._count(self.session.get(License, (self.org_id, user.license_id)))
        # A stand-in: the plan moves its counts, never the account (the session rolls back).
        held = User(license_id=user.license_id, license_wanted_id=user.license_wanted_id)
        leaving = after.get("active") is False  # a deactivation never asks for a seat
        refused = self._move(held, lic, strict=not leaving)
        if refused is None or lic is None:
            return refused
        if provisioning.update_asks_seat(rules, before, after, groups)(lic):
            return refused
        return None  # wanted before the update: the user waits, as the update leaves it

    def _license(self, name: str) -> License | None:
        if name not in self.found:
            self.found[name] = licenses.find_license(self.session, self.org_id, name)
        return self.found[name]

    def _count(self, lic: License | None) -> None:
        """``lic``'s seat limit and the seats taken now, once: counted without the lock
        ``assign`` takes, as a plan may be."""
        if lic is not None and lic.id not in self.seats:
            limit = lic.seat_limit
            taken = licenses.used(self.session, self.org_id, lic.id) if limit is not None else 0
            self.seats[lic.id] = (limit, taken)

    def _move(self, user: User, lic: License | None, *, strict: bool) -> str | None:
        """Move ``user`` (a stand-in) onto ``lic`` in the plan's counts, freeing the seat it
        held; the refusal's reason when none is left (strict)."""
        self._count(lic)
        try:
            licenses.assign(
                self.session, self.org_id, user, lic, source="rule", strict=strict, seats=self.seats
            )
        except licenses.SeatsExhaustedError as err:
            return err.detail
        return None


def _repeats(rows: Iterable[Row]) -> Iterator[tuple[Row, Outcome | None]]:
    """Each row, with its error when it repeats an earlier row's userName (compared folded,
    as the server compares userNames: RFC 7643 §4.1.1, caseExact false). Which of two
    rows about one person is meant is the file's own doubt: the first is imported, the
    second refused, never applied over it."""
    first_line: dict[str, int] = {}
    for row in rows:
        key = fold(row.values.get("userName", ""))
        if key and key in first_line:
            reason = f"the same userName as line {first_line[key]}"
            yield row, Outcome(row.line, row.values["userName"], "error", reason)
            continue
        if key:
            first_line[key] = row.line
        yield row, None


def plan(
    session: Session, org_id: str, rows: list[Row], actor_roles: frozenset[str] | None = None
) -> list[Outcome]:
    """What each row would do, with the reason of each error; nothing is written.
    ``actor_roles``: a console person's import (``_guarded``)."""
    try:
        existing = user_lookup.by_user_names(
            session, org_id, (r.values.get("userName", "") for r in rows)
        )
        beyond = _beyond(session, org_id, actor_roles, [u.id for u in existing.values()])
        seats = _Seats(session, org_id)
        out = []
        for row, repeated in _repeats(rows):
            if repeated is not None:
                out.append(repeated)
                continue
            known = existing.get(fold(row.values.get("userName", "")))
            try:
                outcome, doc, change = _decide(row, known)
                if doc is not None:
                    refused = seats.refusal(doc)
                elif change is not None and known is not None:
                    refused = seats.update_refusal(known, change)
                else:
                    refused = None
                if refused is not None:
                    outcome = Outcome(outcome.line, outcome.user_name, "error", refused)
                out.append(_guarded(outcome, beyond))
            except DomainError as err:
                out.append(Outcome(row.line, row.values.get("userName", ""), "error", err.detail))
        return out
    finally:
        session.rollback()


def _holder(session: Session, org_id: str, user_name: str) -> User | None:
    """The account holding ``user_name`` now, its row locked (``FOR UPDATE``; on SQLite the
    writer holds the database already) until the row's write transaction ends, so that the
    check against the preview (``_drift``) and the write see one state: an IdP's change (a
    deactivation, a deletion) committed before the read is seen by the check, one made
    after it waits for the write. ``populate_existing``: the values read under the lock,
    not an older copy the session holds."""
    key = fold(user_name)
    if not key:
        return None
    return session.scalar(
        select(User)
        .where(User.org_id == org_id, User.user_name_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def apply_row(
    session: Session,
    org_id: str,
    row: Row,
    actor_roles: frozenset[str] | None = None,
    planned: Planned | None = None,
) -> Outcome:
    """Import one row as SCIM would: create or patch in its own transaction, or say why not
    (and log it, ``record_refusal``). ``actor_roles``: a console person's import
    (``_guarded``). ``planned``: what the preview the admin approved showed; a row that would
    now do otherwise is refused (``_drift``)."""
    user_name = row.values.get("userName", "")
    holder: Holder | None = None
    try:
        existing = _holder(session, org_id, user_name)
        # Read now: a rollback below expires the account (or finds it deleted).
        holder = (existing.id, existing.external_id) if existing is not None else None
        outcome, doc, change = _decide(row, existing)
        drift = _drift(planned, outcome, existing) if planned is not None else None
        if drift is not None:
            session.rollback()
            stale = Outcome(row.line, user_name, "error", STALE.format(drift))
            return record_refusal(session, org_id, stale, row, holder)
        updated = [outcome.user_id] if outcome.action == "update" and outcome.user_id else []
        beyond = _beyond(session, org_id, actor_roles, updated)
        guarded = _guarded(outcome, beyond)
        if guarded is not outcome or change is None or outcome.user_id is None:
            session.rollback()  # nothing to keep locked: the services below own their transactions
        else:
            # The import's session is joined to its step's transaction (``jobs.run_import``):
            # this ends the read's savepoint, its lock kept until the step commits, through the
            # update's own savepoint. (A session of its own, the CLI's, ends its read here: it
            # keeps no preview to hold the account to.)
            session.commit()
        if guarded is not outcome:
            return record_refusal(session, org_id, guarded, row, holder)
        if outcome.action == "create" and doc is not None:
            user = users.create_user(session, org_id, doc, default_groups=True)
            return Outcome(row.line, user_name, "create", user_id=user.id)
        if change is not None and outcome.user_id is not None:
            users.update_user(session, org_id, outcome.user_id, change, action="user.patch")
        return outcome
    except DomainError as err:
        session.rollback()
        refused = Outcome(row.line, user_name, "error", err.detail)
        return record_refusal(session, org_id, refused, row, holder)


def record_refusal(
    session: Session,
    org_id: str,
    outcome: Outcome,
    row: Row,
    holder: Holder | None,
) -> Outcome:
    """Log a row the import refused, in a transaction of the row's own (committed here), as a
    refused SCIM write is logged (``scim.audit_hooks``): a search of the log by the person's
    userName finds why the import did not create or change them. ``holder``: the id and
    externalId of the account the row names, if one does (the event is its ``user.patch``,
    else a ``user.create``). Returns ``outcome``."""
    account_id, external_id = holder if holder is not None else (None, None)
    record(
        session,
        org_id,
        "user.patch" if account_id is not None else "user.create",
        outcome="failure",
        resource_type="User",
        resource_id=account_id,
        user_name=outcome.user_name or None,
        external_id=external_id or row.values.get("externalId") or None,
        detail=f"Import, line {outcome.line}: {outcome.reason}",
    )
    session.commit()
    return outcome


def holders(session: Session, org_id: str, rows: Iterable[Row]) -> dict[str, Holder]:
    """The id and externalId of the accounts ``rows`` name, by folded userName: for the
    failure events of rows refused without being applied (``record_refusal``)."""
    names = (r.values.get("userName", "") for r in rows)
    return {
        key: (user.id, user.external_id)
        for key, user in user_lookup.by_user_names(session, org_id, names).items()
    }


def apply_rows(session: Session, org_id: str, rows: Iterable[Row]) -> Iterator[Outcome]:
    """Each row in turn; a row repeating an earlier row's userName is refused, as ``plan``
    says it would be (``_repeats``), so a dry run and the run agree. Each row is decided
    as it is applied (no ``Planned``): the CLI keeps no preview, a dry run is advice."""
    for row, repeated in _repeats(rows):
        if repeated is None:
            yield apply_row(session, org_id, row)
            continue
        named = holders(session, org_id, [row]).get(fold(row.values.get("userName", "")))
        yield record_refusal(session, org_id, repeated, row, named)


def refresh_statistics(session: Session, written: int) -> list[str]:
    """After an import wrote ``written`` users: ANALYZE the tables it grew by a good part.

    Each user written is a user row, a contact, its index rows (as many per user
    as the table holds on average), rule roles and an audit event. In the
    caller's transaction.
    """
    if written <= 0:
        return []
    users_rows = table_stats.estimated_rows(session, "users") or 0
    index_rows = table_stats.estimated_rows(session, "attribute_values") or 0
    per_user = max(1, index_rows // users_rows) if users_rows else 1
    changed = dict.fromkeys(("users", "contacts", "user_roles", "audit_events"), written)
    changed["attribute_values"] = written * per_user
    return table_stats.refresh(session, changed)


def summary(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts = dict.fromkeys(ACTIONS, 0)
    for outcome in outcomes:
        counts[outcome.action] += 1
    return counts
