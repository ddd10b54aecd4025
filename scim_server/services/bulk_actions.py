"""One action on many accounts, each in its own transaction, each with its own result.

A refusal for one user (an invalid transition, a user deleted meanwhile) never
undoes or blocks the others: the admin sees per row what was done and why not.
Each row goes through the same service as the single action (``accounts.act``,
``users.delete_user``), so its audit event is the same too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.errors import DomainError, InvalidValueError
from scim_server.models import User
from scim_server.services import accounts, users

MAX_ROWS = 500


def _act(op: str) -> Callable[[Session, str, str], None]:
    def run(session: Session, org_id: str, user_id: str) -> None:
        accounts.act(session, org_id, user_id, op, None)

    return run


def _delete(session: Session, org_id: str, user_id: str) -> None:
    users.delete_user(session, org_id, user_id)


# op -> (what it does to one user, the past tense shown per row)
OPS: dict[str, tuple[Callable[[Session, str, str], None], str]] = {
    "lock": (_act("lock"), "Locked"),
    "unlock": (_act("unlock"), "Unlocked"),
    "deactivate": (_act("deactivate"), "Deactivated"),
    "delete": (_delete, "Deleted"),
}
BEYOND = "Not done: this account holds console roles beyond yours."
# Actions a person may not take on their own account (they would lose the console).
NOT_ON_SELF = frozenset({"lock", "deactivate", "delete"})


@dataclass(frozen=True)
class RowResult:
    user_id: str
    user_name: str
    ok: bool
    message: str


def run(
    session: Session,
    org_id: str,
    op: str,
    user_ids: list[str],
    *,
    acting_user_id: str | None,
    beyond: Collection[str] = (),
) -> list[RowResult]:
    """Apply ``op`` to each user (in the order given, once each); a result per user.
    ``beyond``: accounts the actor may not act on (``console_access.beyond``)."""
    if op not in OPS:
        raise InvalidValueError(f"Unknown bulk action {op!r}; one of: {', '.join(OPS)}.")
    action, done = OPS[op]
    return run_each(
        session,
        org_id,
        user_ids,
        action,
        done,
        not_for=acting_user_id if op in NOT_ON_SELF else None,
        beyond=beyond,
    )


def run_each(
    session: Session,
    org_id: str,
    user_ids: list[str],
    action: Callable[[Session, str, str], object],
    done: str,
    *,
    not_for: str | None = None,
    beyond: Collection[str] = (),
) -> list[RowResult]:
    """``action`` on each user in its own transaction, skipping ``not_for`` (one's own account)
    and the accounts ``beyond`` the actor's console roles.

    The single-user service is the action, so the audit event of each row is the one
    the single action writes; a refusal becomes that row's message.
    """
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        raise InvalidValueError("Select at least one user.")
    if len(ids) > MAX_ROWS:
        raise InvalidValueError(f"At most {MAX_ROWS} users at a time.")
    names = user_names(session, org_id, ids)
    results = []
    for user_id in ids:
        name = names.get(user_id, user_id)
        if user_id not in names:
            results.append(RowResult(user_id, name, False, "No such user (deleted meanwhile?)."))
            continue
        if user_id == not_for:
            results.append(RowResult(user_id, name, False, "Not done: this is your own account."))
            continue
        if user_id in beyond:
            results.append(RowResult(user_id, name, False, BEYOND))
            continue
        try:
            action(session, org_id, user_id)
        except DomainError as err:
            results.append(RowResult(user_id, name, False, err.detail))
        else:
            results.append(RowResult(user_id, name, True, done))
    return results


def user_names(session: Session, org_id: str, ids: list[str]) -> dict[str, str]:
    """id -> userName of those that exist; ends the read (each row owns its transaction)."""
    names = dict(
        session.execute(
            select(User.id, User.user_name).where(User.org_id == org_id, User.id.in_(ids))
        ).all()
    )
    session.rollback()
    return {str(k): str(v) for k, v in names.items()}


def record_refusals(
    session: Session, org_id: str, action: str, op: str, results: list[RowResult]
) -> None:
    """A failure event for each row not done (beyond the actor, one's own account, gone,
    refused by its service), in one transaction of its own after the rows': what a single
    action's refusal leaves in the log, so a bulk attempt on an admin's account is seen."""
    refused = [r for r in results if not r.ok]
    if not refused:
        return
    with session.begin():
        for row in refused:
            record(
                session,
                org_id,
                action,
                outcome="failure",
                resource_type="User",
                resource_id=row.user_id,
                user_name=row.user_name if row.user_name != row.user_id else None,
                detail=f"{op}: {row.message}",
            )
