"""What an organization is billed: the monthly total per license now, and the seat changes
of a period read from the provisioning log.

The current total is seats in use times each license's price, in the license's currency.
The period's changes come from the audit events that move a license (a SCIM create,
patch or replace whose mapping outcome assigned one, a re-evaluation, an admin's
choice, a deletion), read through ``audit.queries.stream`` per action with the period
bound (indexed: organization and action, or organization and time), never the whole
log. The cost effect of a change is priced at today's price of its license: the log
keeps which seat moved and when, not what it cost then.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit.queries import EventFilter, stream
from scim_server.errors import InvalidValueError
from scim_server.models import AuditEvent, License, User
from scim_server.services import licenses
from scim_server.text import fold

MAX_PERIOD_DAYS = 366
# The actions whose event can say a user's license changed, and where it says so.
_IN_EXPLANATION = ("user.create", "user.patch", "user.replace")
_IN_CHANGES = ("user.mapping", "user.license", "user.delete")
ACTIONS = _IN_EXPLANATION + _IN_CHANGES


@dataclass(frozen=True)
class LicenseTotal:
    """One license now: seats in use and what they cost a month."""

    license_id: str
    name: str
    seat_limit: int | None
    used: int
    price_cents: int
    currency: str

    @property
    def monthly_cents(self) -> int:
        return self.used * self.price_cents


@dataclass(frozen=True)
class LicenseChange:
    """One seat taken (+1) or given back (-1), from one event of the log."""

    seq: int
    occurred_at: datetime
    license_id: str | None  # None: renamed or deleted since (named as the log says)
    license_name: str
    delta: int
    price_cents: int
    currency: str
    user_id: str | None
    user_name: str | None
    action: str
    actor: str | None
    # One license, whatever its names: its id, existing or deleted since; its folded
    # name where the log gave none (an admin's choice logged before ids were).
    key: str = ""

    @property
    def cost_cents(self) -> int:
        return self.delta * self.price_cents


@dataclass
class LicenseSummary:
    """A license's seat moves over the period and what they do to the monthly bill."""

    license_id: str | None
    name: str
    price_cents: int
    currency: str
    assigned: int = 0
    released: int = 0

    @property
    def net(self) -> int:
        return self.assigned - self.released

    @property
    def cost_cents(self) -> int:
        return self.net * self.price_cents


@dataclass
class BillingReport:
    since: date
    until: date  # inclusive
    current: list[LicenseTotal]
    totals: list[tuple[str, int]]  # (currency, monthly cents)
    summary: list[LicenseSummary]
    # (day, license name, assigned, released, license id: None when deleted since)
    days: list[tuple[date, str, int, int, str | None]]
    changes: list[LicenseChange] = field(default_factory=list)
    changes_truncated: bool = False


def default_period(today: date) -> tuple[date, date]:
    """This month: its first day to its last."""
    first = today.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return first, next_month - timedelta(days=1)


# The days a period may hold: a day's end must still be a date (``_bounds``), as the
# console's date fields allow (``console.filters``).
FIRST_DAY, LAST_DAY = date(2, 1, 1), date(9998, 12, 31)


def check_period(since: date, until: date) -> None:
    """A period the log is read for: from no later than to, at most ``MAX_PERIOD_DAYS``,
    between ``FIRST_DAY`` and ``LAST_DAY``."""
    if not (FIRST_DAY <= since <= LAST_DAY and FIRST_DAY <= until <= LAST_DAY):
        raise InvalidValueError(f"A period's days are between {FIRST_DAY} and {LAST_DAY}.")
    if since > until:
        raise InvalidValueError("The period's start must not be after its end.")
    if (until - since).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidValueError(f"A period of at most {MAX_PERIOD_DAYS} days.")


def current_totals(session: Session, org_id: str) -> list[LicenseTotal]:
    """Each license's seats in use and monthly cost, by name."""
    return [
        LicenseTotal(
            lic["id"],
            lic["name"],
            lic["seat_limit"],
            lic["used"],
            lic["price_cents"],
            lic["currency"],
        )
        for lic in licenses.list_licenses(session, org_id)
    ]


def monthly_totals(current: list[LicenseTotal]) -> list[tuple[str, int]]:
    """The monthly total per currency (licenses may be priced in several)."""
    out: dict[str, int] = {}
    for lic in current:
        out[lic.currency] = out.get(lic.currency, 0) + lic.monthly_cents
    return sorted(out.items())


class _Licenses:
    """License ids and names → the license; the log names a license by id (seat assignment,
    an admin's choice's ``license_id``) or by name (an admin's choice logged before ids were).
    A license deleted since is named as its ``license.delete`` event names it (its last
    name), whichever event moved its seats: one line, not one per name or per source."""

    def __init__(self, session: Session, org_id: str) -> None:
        self.session, self.org_id = session, org_id
        rows = list(session.scalars(select(License).where(License.org_id == org_id)))
        self.by_id = {lic.id: lic for lic in rows}
        self.by_name = {lic.name_key: lic for lic in rows}
        self.deleted: dict[str, str | None] = {}

    def find(self, ref: str, name: str | None = None) -> tuple[str, str | None, str, int, str]:
        """(key, id, name, price, currency) of ``ref``, an id or a name (``name``: the name
        the log gave with an id). Priced at 0 when gone: nothing is billed for it now."""
        lic = self.by_id.get(ref) or (None if name else self.by_name.get(fold(ref)))
        if lic is not None:
            return lic.id, lic.id, lic.name, lic.price_cents, lic.currency
        last_name = self._deleted(ref)
        if last_name is not None or name:  # an id: of a license deleted since
            return ref, None, last_name or name or ref, 0, ""
        return f"name:{fold(ref)}", None, ref, 0, ""

    def _deleted(self, ref: str) -> str | None:
        """The name a deleted license had, if ``ref`` is its id (one read per id)."""
        if ref not in self.deleted:
            self.deleted[ref] = self.session.scalar(
                select(AuditEvent.detail)
                .where(
                    AuditEvent.org_id == self.org_id,
                    AuditEvent.action == "license.delete",
                    AuditEvent.resource_id == ref,
                )
                .order_by(AuditEvent.seq.desc())
                .limit(1)
            )
        return self.deleted[ref]


def _moves(event: AuditEvent) -> list[tuple[str, str | None, int]]:
    """(license id or name, the name the log gave with an id, +1 / -1) for each seat the
    event took or gave back. An admin's choice names the license and gives its id
    (``license_id``): the id is preferred, a license renamed since stays one license."""
    if event.action in _IN_EXPLANATION:
        source = (event.explanation or {}).get("changes")
    else:
        source = event.changes
    if not isinstance(source, dict):
        return []
    block, ids = source.get("license"), source.get("license_id")
    if not isinstance(block, dict):
        return []
    names: dict[str, Any] = {}
    if isinstance(ids, dict):
        names, block = block, ids
    out = []
    for key, delta in (("before", -1), ("after", +1)):
        ref = block.get(key)
        if isinstance(ref, str) and ref:
            name = names.get(key)
            out.append((ref, name if isinstance(name, str) else None, delta))
    return out


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(since, time(), UTC),
        datetime.combine(until + timedelta(days=1), time(), UTC),
    )


def period_changes(
    session: Session, org_id: str, since: date, until: date
) -> Iterator[LicenseChange]:
    """Every seat move from ``since`` to ``until`` (whole UTC days), oldest first.

    One keyset stream per action, merged by position in the log: constant memory
    whatever the period holds.
    """
    check_period(since, until)
    start, end = _bounds(since, until)
    known = _Licenses(session, org_id)
    streams = [
        stream(session, org_id, EventFilter(since=start, until=end, action=a, outcome="success"))
        for a in ACTIONS
    ]
    for event in heapq.merge(*streams, key=lambda e: e.seq):
        for ref, named, delta in _moves(event):
            key, license_id, name, price, currency = known.find(ref, named)
            yield LicenseChange(
                seq=event.seq,
                occurred_at=event.occurred_at,
                license_id=license_id,
                license_name=name,
                delta=delta,
                price_cents=price,
                currency=currency,
                user_id=event.resource_id,
                user_name=event.user_name,
                action=event.action,
                actor=event.actor_name or event.actor_type,
                key=key,
            )


def _with_user_names(
    session: Session, org_id: str, changes: list[LicenseChange]
) -> list[LicenseChange]:
    """Events written by a re-evaluation name the user by id only: add the userName."""
    missing = {c.user_id for c in changes if c.user_name is None and c.user_id}
    if not missing:
        return changes
    names = dict(
        session.execute(
            select(User.id, User.user_name).where(User.org_id == org_id, User.id.in_(missing))
        ).all()
    )
    return [
        c
        if c.user_name is not None or c.user_id not in names
        else LicenseChange(**{**c.__dict__, "user_name": names[c.user_id]})
        for c in changes
    ]


def report(
    session: Session, org_id: str, since: date, until: date, *, max_changes: int = 500
) -> BillingReport:
    """The billing view: totals now, and the period's moves per license, per day and (the
    first ``max_changes``) one by one."""
    check_period(since, until)
    current = current_totals(session, org_id)
    summary: dict[str, LicenseSummary] = {
        lic.license_id: LicenseSummary(lic.license_id, lic.name, lic.price_cents, lic.currency)
        for lic in current
    }
    days: dict[tuple[date, str], list[int]] = {}  # (day, the line's key)
    listed: list[LicenseChange] = []
    truncated = False
    for change in period_changes(session, org_id, since, until):
        line = summary.setdefault(
            change.key,
            LicenseSummary(None, change.license_name, change.price_cents, change.currency),
        )
        day = days.setdefault((change.occurred_at.date(), change.key), [0, 0])
        if change.delta > 0:
            line.assigned += 1
            day[0] += 1
        else:
            line.released += 1
            day[1] += 1
        if len(listed) < max_changes:
            listed.append(change)
        else:
            truncated = True
    return BillingReport(
        since=since,
        until=until,
        current=current,
        totals=monthly_totals(current),
        summary=sorted(summary.values(), key=lambda s: fold(s.name)),
        days=sorted(
            (
                (d, summary[key].name, a, r, summary[key].license_id)
                for (d, key), (a, r) in days.items()
            ),
            key=lambda row: (row[0], fold(row[1]), row[4] or ""),
        ),
        changes=_with_user_names(session, org_id, listed),
        changes_truncated=truncated,
    )


def change_to_dict(change: LicenseChange) -> dict[str, Any]:
    """A seat move as the admin API and the CSV give it."""
    return {
        "seq": change.seq,
        "occurred_at": change.occurred_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "license_id": change.license_id,
        "license": change.license_name,
        "change": change.delta,
        "monthly_cost_cents": change.cost_cents,
        "currency": change.currency or None,
        "user_id": change.user_id,
        "user_name": change.user_name,
        "action": change.action,
        "actor": change.actor,
    }
