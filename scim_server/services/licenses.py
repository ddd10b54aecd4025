"""License types, seats, and assigning them without ever silently dropping a user."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import DomainError, InvalidValueError, NotFoundError, UniquenessError
from scim_server.models import License, User
from scim_server.text import MAX_INT, fold, has_control


class SeatsExhaustedError(DomainError):
    """Strict seat mode: the organization chose failure over a user without a license."""

    status = 409


def create_license(
    session: Session,
    org_id: str,
    name: str,
    seat_limit: int | None,
    price_cents: int = 0,
    currency: str = "EUR",
) -> License:
    """A new license type; its name trimmed (``_trimmed``)."""
    name = _trimmed(name)
    _check(name, seat_limit, price_cents, currency)
    with session.begin():
        if find_license(session, org_id, name) is not None:
            raise UniquenessError(f"A license named {name!r} already exists.")
        lic = License(
            org_id=org_id,
            id=str(uuid.uuid4()),
            name=name,
            name_key=fold(name),
            seat_limit=seat_limit,
            price_cents=price_cents,
            currency=currency.upper(),
        )
        session.add(lic)
        session.flush()
        record(
            session,
            org_id,
            "license.create",
            resource_type="License",
            resource_id=lic.id,
            detail=name,
            changes={"seat_limit": {"after": seat_limit}, "price_cents": {"after": price_cents}},
        )
    return lic


def change_license(session: Session, org_id: str, lic: License, fields: dict[str, Any]) -> License:
    """Rename, resize or reprice ``lic`` (locked by the caller: ``get_license(for_update=
    True)``) in the caller's transaction, with its ``license.update`` event."""
    if "name" in fields:
        fields = {**fields, "name": _trimmed(fields["name"])}
    changes = {}
    for key in ("name", "seat_limit", "price_cents", "currency"):
        if key in fields and fields[key] != getattr(lic, key):
            changes[key] = {"before": getattr(lic, key), "after": fields[key]}
    merged = {
        k: fields.get(k, getattr(lic, k)) for k in ("name", "seat_limit", "price_cents", "currency")
    }
    _check(**merged)
    if "name" in changes:
        clash = find_license(session, org_id, merged["name"])
        if clash is not None and clash.id != lic.id:
            raise UniquenessError(f"A license named {merged['name']!r} already exists.")
        lic.name_key = fold(merged["name"])
    for key, change in changes.items():
        setattr(lic, key, change["after"])
    if "name" in changes:
        # Its holders' and waiters' SCIM view names it (the product extension's ``license``
        # and ``licenseShortage``): their versions move, so a stale ETag is no 304. One
        # statement, whatever their number (an admin's change, not an IdP's).
        session.connection().execute(
            update(User)
            .where(
                User.org_id == org_id,
                or_(User.license_id == lic.id, User.license_wanted_id == lic.id),
            )
            .values(version=User.version + 1, updated_at=utcnow())
        )
    if not changes:
        return lic  # a save that changed nothing: no event saying it did
    record(
        session,
        org_id,
        "license.update",
        resource_type="License",
        resource_id=lic.id,
        detail=lic.name,
        changes=changes,
    )
    return lic


def remove_license(session: Session, org_id: str, lic: License) -> None:
    """Delete ``lic`` (locked by the caller ``FOR UPDATE``: a user given it meanwhile holds
    it ``FOR KEY SHARE`` through the foreign key, so is counted here or waits and fails),
    refused while users hold it or wait for a seat of it; in the caller's transaction."""
    if used(session, org_id, lic.id):
        raise InvalidValueError(f"License {lic.name!r} is held by users; reassign them first.")
    waiting = session.scalar(
        select(User.id).where(User.org_id == org_id, User.license_wanted_id == lic.id).limit(1)
    )
    if waiting is not None:
        # (No foreign key: they would show a shortage of a license that is gone.)
        raise InvalidValueError(
            f"Users are waiting for a seat of license {lic.name!r}; change the rules that "
            "give it, or apply them, first."
        )
    record(
        session,
        org_id,
        "license.delete",
        resource_type="License",
        resource_id=lic.id,
        detail=lic.name,
    )
    session.delete(lic)


def _check(name: str, seat_limit: int | None, price_cents: int, currency: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidValueError("A license name must be 1 to 200 characters.")
    if has_control(name):
        raise InvalidValueError("A license name cannot hold control characters.")
    if seat_limit is not None and not _count(seat_limit):
        raise InvalidValueError(
            f"seat_limit must be an integer from 0 to {MAX_INT}, or null (unlimited)."
        )
    if not _count(price_cents):
        raise InvalidValueError(f"price_cents must be an integer from 0 to {MAX_INT}.")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise InvalidValueError("currency must be a three-letter code.")


def _count(value: Any) -> bool:
    """An integer the column holds: 0 to MAX_INT (a bool is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT


def find_license(session: Session, org_id: str, name: str, *, keep: bool = False) -> License | None:
    """The license of that name, case and surrounding spaces aside (names are stored trimmed).

    ``keep``: on PostgreSQL its row is locked ``FOR KEY SHARE`` until the transaction ends,
    for a change that names it (the settings' default license): a delete or rename of it
    (``FOR UPDATE``) waits for that change and then sees it, or ran first and this finds
    nothing. (It also waits for a seat count in progress: ``assign`` locks ``FOR UPDATE``.)
    """
    stmt = select(License).where(License.org_id == org_id, License.name_key == fold(_trimmed(name)))
    if keep:
        stmt = stmt.with_for_update(read=True, key_share=True)
    return session.scalar(stmt)


def keep_named(session: Session, org_id: str, names: Collection[str]) -> set[str]:
    """Lock the licenses of these names (folded) ``FOR KEY SHARE`` until the transaction
    ends (as ``find_license(keep=True)``), in id order; return the folded names found."""
    keys = sorted({fold(n) for n in names})
    if not keys:
        return set()
    return set(
        session.scalars(
            select(License.name_key)
            .where(License.org_id == org_id, License.name_key.in_(keys))
            .order_by(License.id)
            .with_for_update(read=True, key_share=True)
        )
    )


def _trimmed(name: Any) -> Any:
    """A name without surrounding whitespace: "Eng " would be a second license that reads
    like "Eng" in every list and invoice line (the uniqueness key folds case, not spaces).
    Anything but a string, or one with a control character, is left for ``_check`` to
    refuse (a trailing tab or NEL is refused, not dropped)."""
    return name.strip() if isinstance(name, str) and not has_control(name) else name


def get_license(
    session: Session, org_id: str, license_id: str, *, for_update: bool = False
) -> License:
    stmt = select(License).where(License.org_id == org_id, License.id == license_id)
    if for_update:
        stmt = stmt.with_for_update()
    lic = session.scalar(stmt)
    if lic is None:
        raise NotFoundError(f"License {license_id!r} not found.")
    return lic


def _release(seats: dict[str, tuple[int | None, int]] | None, license_id: str | None) -> None:
    if seats is not None and license_id in seats:
        limit, taken = seats[license_id]
        seats[license_id] = (limit, taken - 1)


def used(session: Session, org_id: str, license_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.org_id == org_id, User.license_id == license_id)
        )
        or 0
    )


def wanted(session: Session, org_id: str, license_id: str) -> int:
    """Users the rules want on this license but who got no seat: the shortage."""
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.org_id == org_id, User.license_wanted_id == license_id)
        )
        or 0
    )


def choices(session: Session, org_id: str) -> list[tuple[str, str]]:
    """(id, name) of each license, by name: for a menu, which needs no seat counts."""
    query = select(License.id, License.name).where(License.org_id == org_id)
    return [(lic_id, name) for lic_id, name in session.execute(query.order_by(License.name_key))]


def list_licenses(session: Session, org_id: str) -> list[dict[str, Any]]:
    """Each license with usage, seats left and shortage (users waiting for a seat)."""
    out = []
    for lic in session.scalars(
        select(License).where(License.org_id == org_id).order_by(License.name_key)
    ):
        in_use = used(session, org_id, lic.id)
        out.append(
            {
                "id": lic.id,
                "name": lic.name,
                "seat_limit": lic.seat_limit,
                "price_cents": lic.price_cents,
                "currency": lic.currency,
                "used": in_use,
                "seats_left": None if lic.seat_limit is None else max(0, lic.seat_limit - in_use),
                "shortage": wanted(session, org_id, lic.id),
            }
        )
    return out


def end_sessions_if_lost(user: User, held: str | None) -> None:
    """A license ``user`` held (``held``) and holds no more ends its sessions and tokens
    (``session_epoch``), as a lock does: a sign-in needs a license, and the console must not
    serve on an account that could not sign in again (the OIDC provider refuses it too).
    Called once a change is decided, not at each step: a license handed back to the rules
    and given again by them is not lost."""
    if held is not None and user.license_id is None:
        user.session_epoch = (user.session_epoch or 0) + 1


def _kept(user: User, source: str, rule: str | None) -> dict[str, Any]:
    """The license the user holds stays; what gives it, or a shortage it ends, may change.

    The user's view shows both (the license's source and rule, ``licenseShortage``): a
    change of either is a change of the user (its version moves, an event tells it)."""
    changes: dict[str, Any] = {}
    if (user.license_source, user.license_rule) != (source, rule):
        changes["license_given_by"] = {
            "before": {"source": user.license_source, "rule": user.license_rule},
            "after": {"source": source, "rule": rule},
        }
    if user.license_wanted_id is not None:
        changes["license_wanted"] = {"before": user.license_wanted_id, "after": None}
    user.license_source, user.license_rule, user.license_wanted_id = source, rule, None
    return changes


def assign(
    session: Session,
    org_id: str,
    user: User,
    lic: License | None,
    *,
    source: str,
    rule: str | None = None,
    strict: bool = False,
    seats: dict[str, tuple[int | None, int]] | None = None,
) -> dict[str, Any]:
    """Give ``user`` the license (or none); return what changed, for the log.

    The license row is locked while seats are counted, so two concurrent
    assignments cannot both take the last seat. With no seat left the user
    keeps going without a license and the wanted license is recorded (the
    shortage) — unless the organization chose strict mode.

    ``seats``: for many assignments in one transaction (``rules apply``), each
    license's (seat limit, seats used) once locked and counted, kept up to date
    here, so a license is locked and counted once per transaction, not once per user.
    """
    before = user.license_id
    if lic is None:
        _release(seats, before)
        wanted = user.license_wanted_id
        user.license_id = None
        user.license_wanted_id = None
        user.license_source = None
        user.license_rule = None
        if before:
            return {"license": {"before": before, "after": None}}
        # No license held, but one waited for: the shortage ends (the user's view shows it).
        return {"license_wanted": {"before": wanted, "after": None}} if wanted else {}
    if user.license_id == lic.id:
        return _kept(user, source, rule)
    if seats is not None and lic.id in seats:
        limit, taken = seats[lic.id]
    else:
        locked = session.scalar(
            select(License).where(License.org_id == org_id, License.id == lic.id).with_for_update()
        )
        assert locked is not None
        limit = locked.seat_limit
        taken = used(session, org_id, lic.id) if limit is not None else 0
        if seats is not None:
            seats[lic.id] = (limit, taken)
    if limit is not None and taken >= limit:
        if strict:
            raise SeatsExhaustedError(
                f"No seat left on license {lic.name!r} (all {limit} seats are "
                "taken) and the organization requires one (strict seat mode)."
            )
        # Lenient: record the shortage, and never take away a license the user
        # already holds (a mover keeps signing in until a seat frees up).
        if user.license_wanted_id == lic.id:
            # Waiting for it already: nothing changes (a re-apply, or a write of the
            # user's other attributes, is no new shortage and no new event).
            return {}
        user.license_wanted_id = lic.id
        return {"license_shortage": {"wanted": lic.name, "seat_limit": limit}}
    _release(seats, before)
    if seats is not None:
        seats[lic.id] = (limit, taken + 1)
    user.license_id = lic.id
    user.license_wanted_id = None
    user.license_source, user.license_rule = source, rule
    return {
        "license": {
            "before": before,
            "after": lic.id,
            "name": lic.name,
            "source": source,
            "rule": rule,
        }
    }
