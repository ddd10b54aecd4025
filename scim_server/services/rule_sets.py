"""Mapping rule sets: validate, store, activate, preview, re-apply (a job for the worker)."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

import mappings
from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import (
    Contact,
    Group,
    GroupMember,
    Job,
    License,
    Role,
    RuleSet,
    User,
    UserRole,
)
from scim_server.services import (
    contacts,
    job_overlap,
    jobs,
    licenses,
    org_config,
    provisioning,
    roles,
    rule_apply,
    table_stats,
)
from scim_server.services.lifecycle import DEACTIVATED
from scim_server.text import fold

EXAMPLES = 50

log = logging.getLogger(__name__)


class RuleSetInvalidError(InvalidValueError):
    """Carries every problem found, each with its location in the document."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(
            "The rule set is invalid: "
            + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:10])
        )
        self.problems = problems


def validate_document(session: Session, org_id: str, document: Any) -> Any:
    """Check a rule set against this organization's licenses and roles, before it is stored."""
    if _has_nul(document):
        raise RuleSetInvalidError([{"path": "$", "message": "NUL characters are not allowed."}])
    names_l = session.scalars(select(License.name).where(License.org_id == org_id)).all()
    names_r = session.scalars(select(Role.name).where(Role.org_id == org_id)).all()
    try:
        return mappings.validate(document, licenses=names_l, roles=names_r)
    except mappings.RuleSetError as err:
        raise RuleSetInvalidError(
            [{"path": p.path, "message": p.message} for p in err.problems]
        ) from None


def _has_nul(value: Any) -> bool:
    # PostgreSQL text and JSONB cannot hold NUL.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_text(text: str, fmt: str) -> Any:
    """A YAML or JSON rule file; syntax errors are clear errors."""
    try:
        return mappings.load(text, fmt)
    except mappings.RuleSetError as err:
        raise RuleSetInvalidError(
            [{"path": p.path, "message": p.message} for p in err.problems]
        ) from None


def create_rule_set(session: Session, org_id: str, name: str, document: Any) -> RuleSet:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidValueError("A rule set name must be 1 to 200 characters.")
    with session.begin():
        validate_document(session, org_id, document)
        version = (
            session.scalar(select(func.max(RuleSet.version)).where(RuleSet.org_id == org_id)) or 0
        ) + 1
        rs = RuleSet(
            org_id=org_id, id=str(uuid.uuid4()), version=version, name=name, document=document
        )
        session.add(rs)
        session.flush()
        record(
            session,
            org_id,
            "ruleset.create",
            resource_type="RuleSet",
            resource_id=rs.id,
            detail=f"{name!r} version {version}",
            changes={"document": {"after": document}},
        )
    return rs


def get_rule_set(session: Session, org_id: str, rule_set_id: str) -> RuleSet:
    rs = session.scalar(select(RuleSet).where(RuleSet.org_id == org_id, RuleSet.id == rule_set_id))
    if rs is None:
        raise NotFoundError(f"Rule set {rule_set_id!r} not found.")
    return rs


def list_rule_sets(session: Session, org_id: str) -> list[RuleSet]:
    return list(
        session.scalars(select(RuleSet).where(RuleSet.org_id == org_id).order_by(RuleSet.version))
    )


def _active_id(session: Session, org_id: str) -> str | None:
    """The organization's active rule set (None: none, the settings' defaults alone). What an
    apply's step runs: its events name it, not the one active when the job was queued,
    which a later activation may have replaced before it ran."""
    return session.scalar(
        select(RuleSet.id).where(RuleSet.org_id == org_id, RuleSet.active.is_(True))
    )


def activate(session: Session, org_id: str, rule_set_id: str) -> RuleSet:
    """Make this rule set the active one (checked again: licenses or roles may have gone).

    The licenses and roles the rules give are then locked ``FOR KEY SHARE`` until the
    commit: a delete (or a license's rename), which locks its row ``FOR UPDATE`` and then
    checks the active rules in the same transaction (``directory.delete_license``), waits
    for this activation and is refused (409); or it came first, and the lock finds the
    name gone and the rules are refused as they would be after it (400). Without the lock
    both could succeed, leaving active rules that name nothing: every later SCIM write
    would provision with no rules.
    """
    with session.begin():
        rs = get_rule_set(session, org_id, rule_set_id)
        ruleset = validate_document(session, org_id, rs.document)
        given = [ruleset.defaults, *(rule.then for rule in ruleset.rules)]
        named_l = {fold(e.license) for e in given if e.license is not None}
        named_r = {fold(role) for e in given for role in e.roles}
        kept_l = licenses.keep_named(session, org_id, named_l)
        kept_r = roles.find_roles(session, org_id, named_r, keep=True)
        if kept_l != named_l or kept_r.keys() != named_r:
            validate_document(session, org_id, rs.document)  # one went meanwhile: refused
        previous = _active_id(session, org_id)
        session.execute(update(RuleSet).where(RuleSet.org_id == org_id).values(active=False))
        rs.active = True
        rs.activated_at = utcnow()
        record(
            session,
            org_id,
            "ruleset.activate",
            resource_type="RuleSet",
            resource_id=rs.id,
            detail=f"{rs.name!r} version {rs.version}",
            changes={"active_rule_set": {"before": previous, "after": rs.id}},
        )
    return rs


def _batches(session: Session, org_id: str, size: int) -> Any:
    last = ""
    while True:
        users = session.scalars(
            select(User).where(User.org_id == org_id, User.id > last).order_by(User.id).limit(size)
        ).all()
        if not users:
            return
        yield list(users)
        last = users[-1].id


def _groups_by_user(
    session: Session, org_id: str, ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    rows = session.execute(
        select(GroupMember.member_id, Group.id, Group.display_name, Group.external_id)
        .join(Group, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id))
        .where(GroupMember.org_id == org_id, GroupMember.member_id.in_(ids))
    )
    for member_id, gid, name, ext in rows:
        out[member_id].append({"id": gid, "displayName": name, "externalId": ext})
    return out


class _Seats:
    """Each license's seats as ``rules apply`` takes them (``licenses.assign``): its limit and
    the seats in use, counted once (one query for all), kept up to date as the preview walks
    the users in the apply's order (by id); nothing is locked or written."""

    def __init__(self, session: Session, org_id: str, limits: dict[str, int | None]) -> None:
        self.limits = limits
        used = session.execute(
            select(User.license_id, func.count())
            .where(User.org_id == org_id, User.license_id.is_not(None))
            .group_by(User.license_id)
        ).all()
        self.taken: dict[str, int] = {lic_id: 0 for lic_id in limits}
        self.taken.update({lic_id: n for lic_id, n in used if lic_id in limits})

    def full(self, license_id: str) -> bool:
        limit = self.limits.get(license_id)
        return limit is not None and self.taken.get(license_id, 0) >= limit

    def move(self, before: str | None, after: str | None) -> None:
        if before in self.taken:
            self.taken[before] -= 1
        if after is not None:
            self.taken[after] = self.taken.get(after, 0) + 1


@dataclass
class _Preview:
    """What the preview found so far (``preview``'s summary)."""

    license_moves: Counter[str] = field(default_factory=Counter)
    shortages: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    role_adds: Counter[str] = field(default_factory=Counter)
    role_removes: Counter[str] = field(default_factory=Counter)
    contact_changes: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    changed: int = 0
    regiven: int = 0


def _license_change(
    user: User,
    result: Any,
    ids: dict[str, str],
    names: dict[str, str],
    seats: _Seats,
    strict: bool,
    found: _Preview,
) -> dict[str, Any]:
    """The license part of one user's preview, as ``provisioning.apply_result`` and
    ``licenses.assign`` would decide it with the seats left (``seats``, updated)."""
    if user.license_source == "manual":
        # The admin's choice; one that found no seat waits as a rule's does (lenient).
        if user.license_id is None and user.license_wanted_id in names:
            return _seat_change(user, user.license_wanted_id, names, seats, False, found)
        return {}
    wanted = ids.get(fold(result.license)) if result.license else None
    held = user.license_id
    if wanted is None:
        if held is None:
            if user.license_wanted_id is None:
                return {}
            # Waiting for a license the rules no longer give: the shortage ends.
            before = names.get(user.license_wanted_id)
            return {"license_wanted": {"before": before, "after": None}}
        seats.move(held, None)
        found.license_moves[f"{names.get(held) or '-'} -> -"] += 1
        return {"license": {"before": names.get(held), "after": None}}
    if wanted == held:
        change: dict[str, Any] = {}
        if user.license_rule != result.license_rule:
            # The same license, given by other rules: a change of the user too.
            change["license_given_by"] = {"before": user.license_rule, "after": result.license_rule}
        if user.license_wanted_id is not None:  # the held license ends its wait for another
            change["license_wanted"] = {"before": names.get(user.license_wanted_id), "after": None}
        return change
    return _seat_change(user, wanted, names, seats, strict, found)


def _seat_change(
    user: User, wanted: str, names: dict[str, str], seats: _Seats, strict: bool, found: _Preview
) -> dict[str, Any]:
    """A license the user does not hold: given if a seat is left, else a shortage (or, in
    strict seat mode, a refusal: the user keeps its own; a DEACTIVATED user is never refused,
    nor one waiting for it already, which stays waiting)."""
    name = names[wanted]
    if seats.full(wanted):
        limit = seats.limits[wanted]
        if user.license_wanted_id == wanted:
            return {}  # waiting for it already, and still no seat: nothing changes
        if strict and user.status != DEACTIVATED:
            found.refusals[name] += 1
            return {"license_refused": {"wanted": name, "seat_limit": limit}}
        found.shortages[name] += 1
        return {"license_shortage": {"wanted": name, "seat_limit": limit}}
    before = names.get(user.license_id or "")
    seats.move(user.license_id, wanted)
    found.license_moves[f"{before or '-'} -> {name}"] += 1
    return {"license": {"before": before, "after": name}}


def _contact_change(
    contact: Contact | None,
    result: Any,
    companies: dict[str, str | None],
    company_names: dict[str, str],
) -> dict[str, Any]:
    """The contact fields the rules would set (``provisioning.apply_result``): rule field ->
    before / after; the organization by name (``companies``: folded name -> contact id,
    None for one the apply would create)."""
    if contact is None or not result.contact:
        return {}
    out: dict[str, Any] = {}
    for name, value in result.contact.items():
        column = provisioning.CONTACT_FIELD_NAMES.get(name)
        if column is not None and getattr(contact, column) != value:
            out[name] = {"before": getattr(contact, column), "after": value}
    company = result.contact.get("organization")
    if company:
        held = contact.organization_contact_id
        if held is None or companies.get(fold(company)) != held:
            out["organization"] = {"before": company_names.get(held or ""), "after": company}
    return out


def _add_roles(
    change: dict[str, Any], held: dict[str, str | None], result: Any, found: _Preview
) -> None:
    """The rule roles part of one user's preview, into ``change`` and the counts."""
    wanted = set(result.roles)
    plus, minus = wanted - held.keys(), held.keys() - wanted
    if plus or minus:
        change["roles"] = {"added": sorted(plus), "removed": sorted(minus)}
        found.role_adds.update(plus)
        found.role_removes.update(minus)
    given_by = roles.regiven(held, {n: roles.rule_label(result, n) for n in wanted})
    if given_by:
        change["roles_given_by"] = given_by
    if "license_given_by" in change or given_by:
        found.regiven += 1


def preview(session: Session, org_id: str, document: Any, batch: int = 500) -> dict[str, Any]:
    """What activating ``document`` would change, user by user, without changing anything.

    Reads users in keyset batches with their memberships, current rule roles and
    contacts (a few queries per batch), so it scales to tens of thousands of users.
    It decides as the apply would: licenses with the seats left (taken in the apply's
    order; a user the seats cannot fit is a shortage, or in strict seat mode a refusal,
    counted apart from the moves), roles, and the contact fields the rules set.
    """
    rules = validate_document(session, org_id, document)
    strict = provisioning.settings_for(session, org_id).strict_seats
    rows = session.execute(
        select(License.id, License.name, License.seat_limit).where(License.org_id == org_id)
    ).all()
    names = {lic_id: name for lic_id, name, _ in rows}
    ids = {fold(name): lic_id for lic_id, name, _ in rows}
    seats = _Seats(session, org_id, {lic_id: limit for lic_id, _, limit in rows})
    role_names = dict(
        session.execute(select(Role.id, Role.name).where(Role.org_id == org_id)).all()
    )
    companies: dict[str, str | None] = {}
    found = _Preview()
    for users in _batches(session, org_id, batch):
        ids_of = [u.id for u in users]
        groups = _groups_by_user(session, org_id, ids_of)
        # Each user's rule roles: role name -> the rules that give it.
        current_roles: dict[str, dict[str, str | None]] = {i: {} for i in ids_of}
        for uid, rid, rule in session.execute(
            select(UserRole.user_id, UserRole.role_id, UserRole.rule).where(
                UserRole.org_id == org_id, UserRole.user_id.in_(ids_of), UserRole.source == "rule"
            )
        ):
            current_roles[uid][role_names.get(rid, rid)] = rule
        people = {
            c.id: c
            for c in session.scalars(
                select(Contact).where(
                    Contact.org_id == org_id,
                    Contact.id.in_({u.contact_id for u in users if u.contact_id}),
                )
            )
        }
        held_companies = {c.organization_contact_id for c in people.values()} - {None}
        company_names = dict(
            session.execute(
                select(Contact.id, Contact.name).where(
                    Contact.org_id == org_id, Contact.id.in_(held_companies)
                )
            ).all()
        )
        for user in users:
            found.total += 1
            contact = people.get(user.contact_id or "")
            if contact is None:
                continue  # no person contact: the apply evaluates nothing for it
            result = mappings.resolve(
                mappings.ExternalIdentity.from_scim(user.data, groups[user.id]), rules
            )
            company = (result.contact or {}).get("organization")
            if company and fold(company) not in companies:
                known = contacts.find_organization_contact(session, org_id, company)
                companies[fold(company)] = known.id if known is not None else None
            change = _license_change(user, result, ids, names, seats, strict, found)
            contact_change = _contact_change(contact, result, companies, company_names)
            if contact_change:
                change["contact"] = contact_change
                found.contact_changes.update(list(contact_change))
            _add_roles(change, current_roles[user.id], result, found)
            refused = change.pop("license_refused", None)
            if not change:
                continue  # a refusal alone changes nothing (counted in ``refusals``)
            found.changed += 1
            if len(found.examples) < EXAMPLES:
                example = {"user_id": user.id, "userName": user.user_name, **change}
                if refused:
                    example["license_refused"] = refused
                found.examples.append(example)
        session.expunge_all()
    return {
        "users": found.total,
        "would_change": found.changed,
        # Of those, the users who keep a license or role that other rules would give.
        "given_by_other_rules": found.regiven,
        "license_moves": dict(found.license_moves),
        # Users the rules want on a license with no seat left: waiting for one (lenient
        # seats), or refused it by the apply (strict seats; they keep the license they hold).
        "license_shortages": dict(found.shortages),
        "license_refusals": dict(found.refusals),
        "roles_added": dict(found.role_adds),
        "roles_removed": dict(found.role_removes),
        "contact_changes": dict(found.contact_changes),
        "examples": found.examples,
    }


APPLY = "ruleset.apply"
# Users per step. A step's transaction holds its organization's audit head lock from its
# events' write to its commit, and every other write of the organization waits for it:
# 500 halves that wait against 1,000 (about 0.15 s against 0.3 s on the bench's 10,000
# users on PostgreSQL) for no measurable cost in the apply's time (BENCHMARKS.md).
APPLY_BATCH = 500


def enqueue_apply(session: Session, org_id: str, rule_set_id: str | None) -> Job:
    """Queue a re-evaluation of every user, in the caller's transaction (after its checks)."""
    return jobs.enqueue(session, org_id, APPLY, {"rule_set_id": rule_set_id})


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


def with_settings_defaults(session: Session, org_id: str, document: Any) -> Any:
    """The document as it would run once active: with the settings' defaults if it has none.

    provisioning.active_rule_set adds them; ``preview`` does not,
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
            raise RuleSetInvalidError([{"path": path, "message": "NUL characters are not allowed"}])
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
        return enqueue_apply(session, org_id, active_id)


def _active_rules(session: Session, org_id: str) -> tuple[Any, Any]:
    """(settings, rules) the apply runs with; a permanent failure when there is nothing to run."""
    settings = provisioning.settings_for(session, org_id)
    try:
        rules = provisioning.active_rule_set(session, org_id, settings)
    except mappings.RuleSetError as err:
        problems = "; ".join(f"{p.path}: {p.message}" for p in err.problems[:10])
        raise jobs.PermanentJobError(
            f"The active rule set no longer validates ({problems}); fix or replace it first."
        ) from None
    if rules is None:
        raise jobs.PermanentJobError(
            "Nothing to apply: no active rule set and no default license or roles."
        )
    return settings, rules


def _counts(job: Job) -> dict[str, Any]:
    checkpoint = job.checkpoint or {}
    return {
        "job_id": job.id,
        "users_checked": job.progress_done,
        "users_total": job.progress_total,
        "users_evaluated": checkpoint.get("evaluated", 0),
        "users_changed": checkpoint.get("changed", 0),
        **({"users_refused": checkpoint["refused"]} if checkpoint.get("refused") else {}),
    }


# While an apply runs, a table is analyzed again once this many of its rows changed (and
# 10 % of it): a 100,000-user apply ran some 80 ANALYZEs without it (user_roles and
# audit_events grow from little, so 10 % of them passed at almost every batch).
ANALYZE_AT_LEAST = 25_000


def _refresh_statistics(session: Session, checkpoint: dict[str, Any], final: bool) -> None:
    """ANALYZE what the apply changed so far once it is a good part of a table (and at the end)."""
    pending = checkpoint.get("unanalyzed") or {}
    if not any(pending.values()):
        return
    analyzed = table_stats.refresh(session, pending, minimum=0 if final else ANALYZE_AT_LEAST)
    if final:
        checkpoint["unanalyzed"] = {}
    else:
        checkpoint["unanalyzed"] = {t: n for t, n in pending.items() if t not in analyzed}


def _add_changed(checkpoint: dict[str, Any], batch: rule_apply.Batch) -> None:
    pending = dict(checkpoint.get("unanalyzed") or {})
    for table, count in (
        ("users", len(batch.changed)),
        ("user_roles", batch.role_rows),
        ("contacts", batch.contacts_changed),
        ("audit_events", len(batch.changed)),
    ):
        pending[table] = pending.get(table, 0) + count
    checkpoint["unanalyzed"] = pending


def run_apply(run: jobs.JobRun) -> dict[str, Any]:
    """Re-evaluate every user against the active rules, a batch per transaction.

    Users whose rule inputs did not change since their last evaluation are
    skipped (``rule_apply``, ``rule_inputs``). Each changed user gets its own
    ``user.mapping`` event, committed with the change and with the job's
    progress and checkpoint (the last user id done), so a run resumed after its
    worker died starts where that one stopped; re-applying rules to a user
    already updated changes nothing anyway. The log says when it started,
    resumed, finished or failed, with the counts. Planner statistics of the
    tables it changed are refreshed as it goes (``table_stats``). A run the worker's
    round handed back (``jobs.JobPausedError``) goes on without a ``ruleset.apply.resumed``
    event: that one tells of a resume after a failure, a lost worker or a stop.
    """
    org_id = run.org_id
    # The writes that read the rules before their change end first (their users are then
    # seen by the batches below); in a transaction of its own, holding nothing else.
    with run.factory() as session, session.begin():
        org_config.wait_for_rules_readers(session, org_id)
    with run.step(pausable=False) as (session, job):
        _active_rules(session, org_id)
        rule_set_id = _active_id(session, org_id)
        job.progress_total = session.scalar(
            select(func.count()).select_from(User).where(User.org_id == org_id)
        )
        if job.checkpoint is None:
            job.checkpoint = {"last": "", "changed": 0, "evaluated": 0}
            action: str | None = "ruleset.apply.started"
            detail = f"rules apply started for {job.progress_total} users"
        elif run.continued:
            action = None  # handed back by a round, taken up again: a continuation
            log.info("rules apply (job %s) goes on at %s users", run.job_id, job.progress_done)
        else:
            action = "ruleset.apply.resumed"
            counts = _counts(job)
            detail = (
                f"rules apply resumed after {counts['users_checked']} users "
                f"({counts['users_changed']} changed), attempt {job.attempts}"
            )
        if action is not None:
            record(
                session,
                org_id,
                action,
                resource_type="RuleSet",
                resource_id=rule_set_id,
                detail=detail,
                changes=_counts(job),
            )
    overlap = OVERLAP and job_overlap.possible(run)
    while True:
        if overlap:
            outcome = job_overlap.run(
                run,
                lambda session, after: _prepare_batch(run, session, after),
                lambda session, job, batch: _commit_overlapped(run, session, job, batch),
                rule_apply.SerialStepError,
            )
            if outcome.done:
                return outcome.result
            log.info("rules apply (job %s): a plain step: %s", run.job_id, outcome.reason)
            overlap = not getattr(outcome.reason, "for_rest", True)
        with run.step() as (session, job):
            checkpoint = dict(job.checkpoint or {"last": "", "changed": 0, "evaluated": 0})
            settings, rules = _active_rules(session, org_id)
            batch = rule_apply.apply_batch(
                session, org_id, rules, settings, checkpoint["last"], APPLY_BATCH
            )
            result = _commit_batch(run, session, job, batch)
        if result is not None:
            return result


# Overlap a step's evaluation with the previous step's commit where the job's process
# can (``job_overlap``: PostgreSQL, sessions with connections of their own).
OVERLAP = True


def _prepare_batch(run: jobs.JobRun, session: Session, after: str | None) -> tuple[Any, str | None]:
    """The next batch, evaluated in ``session``'s transaction while the previous one may
    still be committing (``job_overlap.run``): the batch and where the next one starts."""
    if after is None:  # the first: where the committed checkpoint says (nothing in flight)
        checkpoint = session.scalar(
            select(Job.checkpoint).where(Job.org_id == run.org_id, Job.id == run.job_id)
        )
        after = (checkpoint or {}).get("last", "")
    settings, rules = _active_rules(session, run.org_id)
    batch = rule_apply.apply_batch(
        session, run.org_id, rules, settings, after or "", APPLY_BATCH, overlap=True
    )
    return batch, batch.last


def _commit_overlapped(
    run: jobs.JobRun, session: Session, job: Job, batch: rule_apply.Batch
) -> dict[str, Any] | None:
    """Commit an overlapped batch (``job_overlap``: the writer thread, the job row locked)."""
    last = (job.checkpoint or {}).get("last")
    if last != batch.after:
        raise RuntimeError(f"batch read after {batch.after!r}, the job's checkpoint is {last!r}")
    rule_apply.check_licenses(session, run.org_id, batch.licenses)
    rule_apply.insert_roles(session, batch.roles)
    return _commit_batch(run, session, job, batch)


def _commit_batch(
    run: jobs.JobRun, session: Session, job: Job, batch: rule_apply.Batch
) -> dict[str, Any] | None:
    """A batch's audit events and the job's progress, in the batch's step; at the end (no
    user left) the statistics, the final event and the job's result, which it returns."""
    org_id = run.org_id
    checkpoint = dict(job.checkpoint or {"last": "", "changed": 0, "evaluated": 0})
    if batch.last is None:
        rule_set_id = _active_id(session, org_id)
        _refresh_statistics(session, checkpoint, final=True)
        job.checkpoint = checkpoint
        counts = _counts(job)
        result = {
            "users": counts["users_checked"],
            "evaluated": counts["users_evaluated"],
            "changed": counts["users_changed"],
        }
        refused = counts.get("users_refused", 0)
        if refused:
            result["refused"] = refused
        record(
            session,
            org_id,
            APPLY,
            resource_type="RuleSet",
            resource_id=rule_set_id,
            detail=(
                f"rules re-applied to every user; {counts['users_changed']} "
                f"of {counts['users_checked']} changed "
                f"({counts['users_evaluated']} evaluated, the others unchanged)"
                + (f"; {refused} refused a license with no seat left" if refused else "")
            ),
            changes=counts,
        )
        run.finish(job, result)
        return result
    for user_id, outcome in batch.changed.items():
        user_name, external_id = batch.names.get(user_id, (None, None))
        record(
            session,
            org_id,
            "user.mapping",
            resource_type="User",
            resource_id=user_id,
            user_name=user_name,
            external_id=external_id,
            detail="rules re-applied",
            changes=outcome["changes"],
            explanation={"rules": outcome["rules"]},
        )
    for user_id, refusal in batch.refused.items():
        # Strict seats: this user's license was refused (it keeps the one it holds), its
        # other changes applied; the next apply tries again (its hash is cleared).
        user_name, external_id = batch.names.get(user_id, (None, None))
        record(
            session,
            org_id,
            "user.mapping",
            outcome="failure",
            resource_type="User",
            resource_id=user_id,
            user_name=user_name,
            external_id=external_id,
            detail=(
                f"rules re-applied; no seat left on license {refusal['wanted']!r} "
                "(strict seat mode): the license held is kept"
            ),
            changes={"license_refused": refusal},
        )
    if batch.refused:
        checkpoint["refused"] = checkpoint.get("refused", 0) + len(batch.refused)
    checkpoint["changed"] += len(batch.changed)
    checkpoint["evaluated"] = checkpoint.get("evaluated", 0) + batch.evaluated
    checkpoint["last"] = batch.last
    _add_changed(checkpoint, batch)
    _refresh_statistics(session, checkpoint, final=False)
    job.checkpoint = checkpoint
    job.progress_done += batch.checked
    job.progress_total = max(job.progress_total or 0, job.progress_done)
    return None


def _apply_failed(session: Session, job: Job, error: str) -> None:
    """How far a failed apply got, in the log: users checked and changed before it stopped."""
    counts = _counts(job)
    record(
        session,
        job.org_id,
        APPLY,
        outcome="failure",
        resource_type="RuleSet",
        resource_id=_active_id(session, job.org_id),
        detail=(
            f"rules apply stopped after {counts['users_checked']} of "
            f"{counts['users_total'] if counts['users_total'] is not None else '?'} users "
            f"({counts['users_changed']} changed): {error}"
        ),
        changes=counts,
    )


jobs.register(jobs.JobKind(APPLY, run=run_apply, on_failure=_apply_failed))
