"""Issue 17's bulk scenarios, each run alone with ``--only``.

- ``rules-apply``: ``scim-server rules apply`` (the real command, a process of
  its own) on the 100,000-user organization, once with a new rule set (every
  user gets a license and roles) and once more with nothing to change.
- ``sync``: an Entra-style initial sync into an empty organization: for each
  user a ``filter userName eq`` lookup (no match) then a POST, 8 clients.
- ``tenants``: 20 organizations at once, each one sequential client paced at
  25 requests/s of an Entra-like mix (60 % ``userName eq``, 20 % GET by id,
  10 % PATCH, 10 % POST).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.backends import database
from bench.dataset import EPOCH, OrgData, build_org, new_id, user_body
from bench.loader import service_session
from bench.loadgen import Connection, Target, timed_send
from bench.measurements import log
from bench.profiles import Profile, data_only
from bench.report import percentile
from bench.scenarios import SCIM, Request, filter_path
from bench.servers import BIN, HOST, free_port, running, scim_server_argv
from scim_server.db import make_engine
from scim_server.models import User, UserRole
from scim_server.scim.schema import PATCH_OP

# -- rules apply -----------------------------------------------------------------------

# What a customer's first rule set looks like: a license and roles for everyone,
# by department and by membership of the big "All staff" group.
RULES: dict[str, Any] = {
    "mode": "first-match",
    "defaults": {"license": "Business", "roles": ["Employee"]},
    "rules": [
        {
            "name": "engineering",
            "when": {"attribute": "department", "equals": "Engineering"},
            "then": {"license": "Engineer", "roles": ["Employee", "Developer"]},
        },
        {
            "name": "finance",
            "when": {"attribute": "department", "equals": "Finance"},
            "then": {"license": "Business", "roles": ["Employee", "Ledger"]},
        },
        {
            "name": "staff",
            "when": {"member_of": "All staff (50000)"},
            "then": {"license": "Staff", "roles": ["Employee", "Portal"]},
        },
    ],
}
LICENSES = ("Engineer", "Business", "Staff")
ROLES = (("Employee", "profile"), ("Developer", "task"), ("Ledger", "task"), ("Portal", "portal"))
APPLIED = re.compile(r"(\d+) user\(s\) changed \((\d+) of (\d+) evaluated")


def rules_apply_profile(quick: bool) -> Profile:
    """The 100,000-user organization of the full run (10,000 with --quick), alone."""
    size = 10_000 if quick else 100_000
    return data_only(
        "rules-apply-quick" if quick else "rules-apply",
        size,
        big_group_size=size // 2,
        small_groups_per_org=20,
        small_group_size=10,
    )


def _set_rules(url: str, org: OrgData) -> None:
    """Licenses, roles and the rule set, through the services, activated."""
    from scim_server.services import licenses, roles, rule_sets

    rules = json.loads(json.dumps(RULES).replace("50000", str(org.size // 2)))
    engine = make_engine(url)
    try:
        with service_session(engine) as session:
            for name in LICENSES:
                licenses.create_license(session, org.id, name, None)
            for name, kind in ROLES:
                roles.create_role(session, org.id, name, kind)
            rule_set_id = rule_sets.create_rule_set(session, org.id, "bench", rules).id
            session.rollback()  # reading the id began a transaction; the services begin theirs
            rule_sets.activate(session, org.id, rule_set_id)
    finally:
        engine.dispose()


def _apply(env: dict[str, str], org: OrgData, logs: Path, name: str) -> dict[str, Any]:
    """``scim-server rules apply --org NAME`` as an operator runs it; its time and counts."""
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with (logs / f"{name}.log").open("wb") as err:
        done = subprocess.run(
            [str(BIN / "scim-server"), "rules", "apply", "--org", org.name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            check=False,
        )
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The command's own CPU (not the database server's): what it needs of a core when
    # the machine is shared.
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    output = done.stdout.decode()
    found = APPLIED.search(output)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"rules apply failed ({done.returncode}): {output}; see {logs}")
    changed, evaluated, users = (int(g) for g in found.groups())
    return {
        "seconds": round(seconds, 1),
        "users": users,
        "evaluated": evaluated,
        "changed": changed,
        "users_per_s": round(users / seconds),
        "cpu_s": round(cpu, 1),
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def run_rules_apply(
    backend: str, org: OrgData, key: str, pg_admin_url: str, logs: Path
) -> dict[str, Any]:
    """Load the organization, activate the bench rules, apply twice; the two timings."""
    from bench.run import prepare_database, server_env

    with database(backend, pg_admin_url) as url:
        env = server_env(url, key)
        log(f"[{backend}] loading {org.size:,} users ...")
        prepared = prepare_database(url, env, [org])
        prepared.pop("tokens")
        _set_rules(url, org)
        log(f"[{backend}] rules apply (first: every user changes) ...")
        first = _apply(env, org, logs, f"{backend}-rules-apply-1")
        log(f"[{backend}] {first}")
        log(f"[{backend}] rules apply again (nothing to change) ...")
        again = _apply(env, org, logs, f"{backend}-rules-apply-2")
        log(f"[{backend}] {again}")
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                licensed = conn.scalar(
                    select(func.count())
                    .select_from(User)
                    .where(User.org_id == org.id, User.license_id.is_not(None))
                )
                role_rows = conn.scalar(
                    select(func.count()).select_from(UserRole).where(UserRole.org_id == org.id)
                )
        finally:
            engine.dispose()
    return {
        "database": prepared,
        "first": first,
        "again": again,
        "licensed_users": licensed,
        "role_rows": role_rows,
    }


# -- HTTP clients ------------------------------------------------------------------------


@dataclass
class Tally:
    """Latencies (s) and failures of one client or one operation."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, seconds: float, ok: bool, what: str) -> None:
        self.seconds.append(seconds)
        if not ok:
            self.errors += 1
            if len(self.failures) < 3:
                self.failures.append(what)

    def summary(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.seconds)
        return {
            "requests": len(ordered),
            "errors": self.errors,
            "rps": round(len(ordered) / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            "failures": self.failures,
        }


async def _send(conn: Connection, req: Request, *tallies: Tally) -> bytes:
    """Send ``req``; record its latency in each tally; the body when the status was expected."""
    status, body, seconds = await timed_send(conn, req)
    ok = status == req.expect
    for tally in tallies:
        tally.add(seconds, ok, f"{req.method} {req.path} -> {status}: {body[:200]!r}")
    return body if ok else b""


def _post(body: dict[str, Any]) -> Request:
    return Request("POST", f"{SCIM}/Users", json.dumps(body).encode(), "POST", 201)


def _lookup(user_name: str) -> Request:
    return Request("GET", filter_path(f'userName eq "{user_name}"'), label="userName eq")


# -- sync --------------------------------------------------------------------------------


def empty_org(name: str, seed: int) -> OrgData:
    """An organization with no users yet (what an initial sync starts from), whose people
    sign in through the IdP that provisions them (Entra: SAML), so a create schedules
    no welcome with a password."""
    rng = random.Random(seed)
    org = OrgData(id=new_id(rng), name=name, size=0)
    connection = {
        "org_id": org.id,
        "id": new_id(rng),
        "name": "Entra ID",
        "protocol": "saml",
        "enabled": True,
        "jit_enabled": False,
        "idp_initiated_allowed": False,
        "idp_certificates": [],
        "want_encrypted_assertions": False,
        "created_at": EPOCH,
        "updated_at": EPOCH,
    }
    org.tables = {
        "organizations": [{"id": org.id, "name": name, "created_at": EPOCH}],
        "sso_connections": [connection],
    }
    return org


async def _sync(target: Target, users: int, clients: int) -> dict[str, Any]:
    lookups, posts = Tally(), Tally()
    rng = random.Random(17)
    bodies = (user_body(rng, n, domain="sync.example.com") for n in range(users))

    async def client() -> None:
        conn = Connection(target)
        try:
            for body in bodies:  # shared: each user is synced by one client
                found = await _send(conn, _lookup(body["userName"]), lookups)
                if found and json.loads(found).get("totalResults") != 0:
                    lookups.add(0.0, False, f"{body['userName']} found before it was created")
                await _send(conn, _post(body), posts)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "users": users,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "rps": round((len(lookups.seconds) + len(posts.seconds)) / elapsed, 1),
        "users_per_s": round(users / elapsed, 1),
        "lookup": lookups.summary(elapsed),
        "post": posts.summary(elapsed),
    }


def _serve(
    url: str, key: str, orgs: list[OrgData], logs: Path, name: str, *, with_worker: bool = False
) -> Any:
    from bench.run import prepare_database, server_env

    env = server_env(url, key)
    prepared = prepare_database(url, env, orgs)
    port = free_port()
    argv = scim_server_argv(port, with_worker=with_worker)
    return prepared, port, running(name, argv, port, env, logs, "/readyz")


def run_sync(
    users: int, key: str, pg_admin_url: str, logs: Path, clients: int = 8
) -> dict[str, Any]:
    """The initial sync of ``users`` users on PostgreSQL."""
    org = empty_org("entra-sync", 1700)
    with database("postgresql", pg_admin_url) as url:
        # With the worker, as deployed: it keeps the planner's statistics up with the
        # growing tables (this machine's PostgreSQL runs no autovacuum).
        prepared, port, server = _serve(url, key, [org], logs, "postgresql-sync", with_worker=True)
        token = prepared.pop("tokens")[org.id]
        with server:
            target = Target(HOST, port, {"Authorization": f"Bearer {token}"})
            load_before = os.getloadavg()[0]
            log(f"[postgresql] sync of {users:,} users, {clients} clients ...")
            result = asyncio.run(_sync(target, users, clients))
            result["loadavg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["database"] = prepared
    return result


# -- tenants -----------------------------------------------------------------------------

MIX = (("userName eq", 0.6), ("GET", 0.2), ("PATCH", 0.1), ("POST", 0.1))


def tenant_orgs(count: int, size: int, seed: int = 2000) -> list[OrgData]:
    """``count`` organizations of ``size`` users each (a few small groups, no big one)."""
    profile = data_only(
        "tenants", size, big_group_size=0, small_groups_per_org=5, small_group_size=10
    )
    orgs = []
    for i in range(count):
        org = build_org(profile, size, seed + i)
        org.name = f"tenant-{i:02d}"
        org.tables["organizations"][0]["name"] = org.name
        orgs.append(org)
    return orgs


def _mix_request(org: OrgData, rng: random.Random, made: list[int], tenant: int) -> Request:
    """One request of the Entra-like mix for this tenant."""
    pick, total = rng.random(), 0.0
    kind = MIX[-1][0]
    for name, share in MIX:
        total += share
        if pick < total:
            kind = name
            break
    if kind == "userName eq":
        return _lookup(rng.choice(org.user_names))
    if kind == "GET":
        return Request("GET", f"{SCIM}/Users/{rng.choice(org.user_ids)}", label="GET")
    if kind == "PATCH":
        op = {"op": "replace", "path": "title", "value": f"Title {rng.randrange(1000)}"}
        body = json.dumps({"schemas": [PATCH_OP], "Operations": [op]}).encode()
        return Request("PATCH", f"{SCIM}/Users/{rng.choice(org.user_ids)}", body, "PATCH")
    made[0] += 1
    return _post(user_body(rng, 1_000_000 + made[0], domain=f"t{tenant}.example.com"))


async def _tenant(
    target: Target,
    org: OrgData,
    tenant: int,
    rate: float,
    seconds: float,
    by_kind: dict[str, Tally],
) -> dict[str, Any]:
    """One sequential client paced at ``rate`` requests/s (it sends late when answers are slow).

    Each request on a new connection, as the peers are measured.
    """
    rng, made, tally = random.Random(tenant), [0], Tally()
    conn = Connection(target)
    started = time.perf_counter()
    sent = 0
    try:
        while (now := time.perf_counter()) - started < seconds:
            due = started + sent / rate
            if due > now:
                await asyncio.sleep(due - now)
            req = _mix_request(org, rng, made, tenant)
            await _send(conn, req, tally, by_kind.setdefault(req.label, Tally()))
            # A new connection per request (as the peers are measured): a kept-alive one
            # stays with the gunicorn worker that accepted it, and how the 20 connections
            # fell on the two workers (1 and 19 in one run) decided each tenant's rate.
            await conn.close()
            sent += 1
    finally:
        await conn.close()
    elapsed = time.perf_counter() - started
    return {"tenant": org.name, **tally.summary(elapsed)}


async def _tenants(
    targets: list[tuple[Target, OrgData]], rate: float, seconds: float
) -> dict[str, Any]:
    by_kind: dict[str, Tally] = {}
    tenants = await asyncio.gather(
        *(_tenant(t, org, i, rate, seconds, by_kind) for i, (t, org) in enumerate(targets))
    )
    return {
        "tenants": list(tenants),
        "by_operation": {k: v.summary(seconds) for k, v in sorted(by_kind.items())},
    }


def run_tenants(
    key: str,
    pg_admin_url: str,
    logs: Path,
    count: int = 20,
    size: int = 1_000,
    rate: float = 25.0,
    seconds: float = 60.0,
) -> dict[str, Any]:
    """``count`` tenants of ``size`` users, each paced at ``rate`` req/s for ``seconds``."""
    orgs = tenant_orgs(count, size)
    with database("postgresql", pg_admin_url) as url:
        prepared, port, server = _serve(url, key, orgs, logs, "postgresql-tenants")
        tokens = prepared.pop("tokens")
        with server:
            targets = [
                (Target(HOST, port, {"Authorization": f"Bearer {tokens[o.id]}"}), o) for o in orgs
            ]
            load_before = os.getloadavg()[0]
            log(f"[postgresql] {count} tenants x {rate:g} req/s for {seconds:g} s ...")
            result = asyncio.run(_tenants(targets, rate, seconds))
            result["loadavg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    tenants = result["tenants"]
    result["summary"] = {
        "tenants": count,
        "users_each": size,
        "target_rps_each": rate,
        "seconds": seconds,
        "min_rps": min(t["rps"] for t in tenants),
        "max_p99_ms": max(t["p99_ms"] for t in tenants),
        "errors": sum(t["errors"] for t in tenants),
    }
    result["database"] = prepared
    return result


# -- report ------------------------------------------------------------------------------


def report(only: str, result: dict[str, Any]) -> str:
    """Markdown lines for BENCHMARKS.md."""
    lines: list[str] = []
    if only == "rules-apply":
        lines.append(
            "| backend | apply | users | evaluated | changed | seconds | users/s "
            "| CPU s (command) | load |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for backend, r in result.items():
            for label, key in (("first (new rules)", "first"), ("again (no change)", "again")):
                a = r[key]
                load = f"{a['loadavg'][0]} → {a['loadavg'][1]}"
                lines.append(
                    f"| {backend} | {label} | {a['users']:,} | {a['evaluated']:,} | "
                    f"{a['changed']:,} | {a['seconds']} | {a['users_per_s']:,} | "
                    f"{a.get('cpu_s', '')} | {load} |"
                )
    elif only == "sync":
        r = result["postgresql"]
        lines.append(
            f"{r['users']:,} users, {r['clients']} clients: {r['seconds']} s, "
            f"{r['rps']} req/s ({r['users_per_s']} users/s); load {r['loadavg'][0]} → "
            f"{r['loadavg'][1]}"
        )
        for name in ("lookup", "post"):
            s = r[name]
            lines.append(
                f"- {name}: {s['requests']:,} requests, {s['errors']} errors, "
                f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms"
            )
    elif only == "tenants":
        r = result["postgresql"]
        s = r["summary"]
        lines.append(
            f"{s['tenants']} tenants x {s['target_rps_each']:g} req/s for {s['seconds']:g} s: "
            f"slowest tenant {s['min_rps']} req/s, worst p99 {s['max_p99_ms']} ms, "
            f"{s['errors']} errors; load {r['loadavg'][0]} → {r['loadavg'][1]}"
        )
        lines.append("")
        lines.append("| tenant | req/s | p50 ms | p99 ms | errors |")
        lines.append("|---|---:|---:|---:|---:|")
        for t in r["tenants"]:
            lines.append(
                f"| {t['tenant']} | {t['rps']} | {t['p50_ms']} | {t['p99_ms']} | {t['errors']} |"
            )
        lines.append("")
        lines.append("| operation | requests | p50 ms | p99 ms | errors |")
        lines.append("|---|---:|---:|---:|---:|")
        for name, o in r["by_operation"].items():
            lines.append(
                f"| {name} | {o['requests']:,} | {o['p50_ms']} | {o['p99_ms']} | {o['errors']} |"
            )
    return "\n".join(lines)
