"""Each organization's identity settings and active rules, cached per process, checked on use.

Every SCIM write provisions through the rules. Reading the organization's
settings, its active rule set and the license and role names the rules are
validated against took four queries on every write, and validating the rules
took CPU. Here one query reads a fingerprint of all of them: the settings
document, the active rule set's id and activation time (a rule set version is
never edited in place: a change is a new version, activated), and the license
and role names. While the fingerprint matches, the parsed settings and the
validated rules are reused; a change made by any process (settings saved, a rule
set activated, a license renamed or deleted) changes it, so the next write
reads and validates afresh. The check runs in the caller's transaction, so a
write sees what its own transaction sees.

On PostgreSQL the fingerprint's read also takes the organization's rules-readers lock,
shared, to the transaction's end (``wait_for_rules_readers``): a ``rules apply`` waits for
every write that may have read the rules from before the change it applies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Boolean, String, and_, bindparam, exists, select, text, true
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

import mappings
from scim_server.models import License, Organization, Role, RuleSet
from scim_server.services.settings import SSO_CONNECTIONS, IdentitySettings, get_settings, load

log = logging.getLogger(__name__)

# A license or role name cannot hold this control character (``text.has_control``).
_SEP = "\x1f"  # char(31) in ``_JoinedNames``


class _JoinedNames(FunctionElement[str]):
    """The names joined with ``_SEP``, in SQL: ``func.aggregate_strings`` takes its separator
    as a literal rendered into the statement at every execution (a regular expression over
    the compiled SQL each time: about 3 % of a create's CPU in a served worker)."""

    inherit_cache = True
    name = "joined_names"
    type = String()


@compiles(_JoinedNames, "sqlite")
def _joined_names_sqlite(element: _JoinedNames, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, char(31))"


@compiles(_JoinedNames)
def _joined_names(element: _JoinedNames, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, chr(31))"


# pg_advisory_xact_lock key: the organization's writes that read its rules (shared) and the
# ``rules apply`` that waits for them (``wait_for_rules_readers``; the organization's id is
# the second half).
RULES_READERS_LOCK = 0x5C1A_2B1E
_WAIT_FOR_RULES_READERS = text("SELECT pg_advisory_xact_lock(:key, hashtext(:org_id))").bindparams(
    key=RULES_READERS_LOCK
)


class _ReadingRules(FunctionElement[bool]):
    """The fingerprint's guard: on PostgreSQL the organization's rules-readers lock, shared,
    taken as the row is read (a condition that is always true); elsewhere plain true."""

    inherit_cache = True
    name = "reading_rules"
    type = Boolean()


@compiles(_ReadingRules, "sqlite")
def _reading_rules_sqlite(element: _ReadingRules, compiler: Any, **kw: Any) -> str:
    return "1"


@compiles(_ReadingRules)
def _reading_rules(element: _ReadingRules, compiler: Any, **kw: Any) -> str:
    org_id = compiler.process(element.clauses, **kw)
    return f"pg_advisory_xact_lock_shared({RULES_READERS_LOCK}, hashtext({org_id})) IS NOT NULL"


def _names(model: type[License] | type[Role]) -> Any:
    return select(_JoinedNames(model.name)).where(model.org_id == Organization.id).scalar_subquery()


_FINGERPRINT = (
    select(
        Organization.settings.label("fp_settings"),
        RuleSet.id.label("fp_rule_set_id"),
        RuleSet.activated_at.label("fp_activated_at"),
        _names(License).label("fp_licenses"),
        _names(Role).label("fp_roles"),
        # Whether SSO is connected decides the automatic sign_in_methods (and the welcome).
        exists()
        .where(SSO_CONNECTIONS.c.org_id == Organization.id, SSO_CONNECTIONS.c.enabled == true())
        .correlate(Organization)
        .label("fp_sso_connected"),
    )
    .select_from(Organization)
    .outerjoin(RuleSet, and_(RuleSet.org_id == Organization.id, RuleSet.active.is_(True)))
    .where(Organization.id == bindparam("org_id"), _ReadingRules(Organization.id))
)

# The fingerprint as a subquery (one row; its organization the bound ``org_id``), for a
# write to read it in the statement it runs anyway (``services.users.update_user``: with
# the user's row, one round trip less); ``FINGERPRINT_COLUMNS`` name its values in order.
FINGERPRINT = _FINGERPRINT.subquery("fingerprint")
FINGERPRINT_COLUMNS = tuple(column.name for column in FINGERPRINT.c)

# (database, organization) -> (fingerprint, settings, rules). The database is
# part of the key because one process can hold apps on different databases.
_CACHE: dict[tuple[str, str], tuple[tuple[Any, ...], IdentitySettings, Any]] = {}


# Each engine's URL as text (rendering it took as long as the rest of a cache hit).
_URLS: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()


def _database(session: Session) -> str:
    engine = session.get_bind().engine
    url = _URLS.get(engine)
    if url is None:
        url = _URLS[engine] = str(engine.url)
    return url


def identity_config(
    session: Session, org_id: str, fingerprint: Sequence[Any] | None = None
) -> tuple[IdentitySettings, Any | None]:
    """(settings, validated active rules or None) of the organization, as of this transaction.

    ``fingerprint``: its values (``FINGERPRINT_COLUMNS``) when the caller read them in
    this transaction with a statement of its own (``FINGERPRINT``); else read here.
    """
    row = (
        fingerprint
        if fingerprint is not None
        else session.connection().execute(_FINGERPRINT, {"org_id": org_id}).first()
    )
    if row is None:
        return IdentitySettings(), None
    raw, rule_set_id, activated_at, licenses, roles, sso_connected = row
    fingerprint = (
        json.dumps(raw or {}, sort_keys=True),
        rule_set_id,
        activated_at,
        sorted((licenses or "").split(_SEP)),
        sorted((roles or "").split(_SEP)),
        bool(sso_connected),
    )
    key = (_database(session), org_id)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1], cached[2]
    settings = replace(
        load(Organization(id=org_id, settings=raw or {})), sso_connected=bool(sso_connected)
    )
    rules = active_rule_set(session, org_id, settings)
    _CACHE[key] = (fingerprint, settings, rules)
    return settings, rules


def cached_settings(session: Session, org_id: str) -> IdentitySettings | None:
    """The settings this process last read for the organization (maybe no longer current:
    for a guess that the caller checks with ``identity_config``), None if none."""
    cached = _CACHE.get((_database(session), org_id))
    return None if cached is None else cached[1]


def settings_for(session: Session, org_id: str) -> IdentitySettings:
    """The settings as stored now, uncached (``settings.get_settings``; kept for its callers)."""
    return get_settings(session, org_id)


def active_rule_set(session: Session, org_id: str, settings: IdentitySettings) -> Any | None:
    """The organization's active rules, or its defaults alone; None when nothing applies."""
    stored = session.scalar(
        select(RuleSet).where(RuleSet.org_id == org_id, RuleSet.active.is_(True))
    )
    if stored is not None:
        document = dict(stored.document)
    elif settings.default_license or settings.default_roles:
        document = {"mode": "first-match", "rules": []}
    else:
        return None
    if "defaults" not in document and (settings.default_license or settings.default_roles):
        document["defaults"] = {
            k: v
            for k, v in (
                ("license", settings.default_license),
                ("roles", list(settings.default_roles)),
            )
            if v
        }
    names_l = session.scalars(select(License.name).where(License.org_id == org_id)).all()
    names_r = session.scalars(select(Role.name).where(Role.org_id == org_id)).all()
    try:
        return mappings.validate(document, licenses=names_l, roles=names_r)
    except mappings.RuleSetError as err:
        # The rules name a license or role that has since gone. Provisioning
        # goes on without them (the IdP's request is not at fault); the log
        # and the admin see why no rule applied.
        log.error("organization %s: active rules unusable: %s", org_id, err)
        return None


def wait_for_rules_readers(session: Session, org_id: str) -> None:
    """Wait for the organization's writes that read its rules before this call to end
    (PostgreSQL; SQLite's writers read them holding the database's write lock).

    A ``rules apply`` calls it, in a transaction of its own, before reading a user: a
    write that read the rules before their change (a rule set activated, a license
    renamed) and commits later would otherwise keep the old rules' result for good, the
    apply having passed its user before it committed. Each such write holds the lock shared
    from its fingerprint's read (``_ReadingRules``) to its end; this takes it exclusively,
    so it waits for them, and lets go at its commit. A write that reads the rules after
    this reads the change (committed before the apply was asked for). The lock is taken in
    the fingerprint's own statement, whose snapshot is a moment older: a write misses the
    wait only if that one non-blocking statement spans the whole time from the change's
    commit to the apply's job being taken up and reaching here.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_WAIT_FOR_RULES_READERS, {"org_id": org_id})


def forget() -> None:
    """Empty the cache (tests that change the database behind the services' back)."""
    _CACHE.clear()
