"""Password sign-ins (issue 12): their throughput, and what they leave to SCIM reads.

An argon2id verify with the production parameters costs tens of milliseconds
of one core, and a gunicorn sync worker holds its process for all of it; the
question is whether sign-ins starve SCIM traffic on the same server. Measured
on the largest organization, against the running servers:

- the baseline and ``GET /Users/{id}`` alone, at ``READ_C``;
- password sign-ins at ``SIGN_IN_C``: the right password (303 to ``next``), and
  wrong passwords for distinct users (401), each user getting at most
  ``threshold - 1`` of them, all different, so that every one counts towards
  the lockout (which stays on, at the default threshold) but none locks;
- ``GET /Users/{id}`` at ``READ_C`` again while sign-ins run at ``BESIDE_C``.

The users are given a license (a sign-in needs one) and a password row
written here with the server's own ``hash_password``, one hash shared by all
(a verify costs the same whatever the salt).
"""

from __future__ import annotations

import http.cookiejar
import random
import re
import secrets
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from bench import labels
from bench.dataset import OrgData
from bench.loadgen import Outcome, Target, measure, measure_beside
from bench.measurements import Bench, baseline_row, by_id, log
from bench.report import Row, add_baseline_ratios, rows_from
from bench.scenarios import Reads, Request
from bench.servers import HOST
from scim_server.db import Base
from scim_server.services.passwords import Hashing, hash_password
from scim_server.services.settings import IdentitySettings
from scim_server.text import fold

PASSWORD = "bench correct horse battery"
READ_C = 8
SIGN_IN_C = 8
BESIDE_C = 4
FORM = "application/x-www-form-urlencoded"
LOCKOUT_THRESHOLD = IdentitySettings().number("lockout_threshold")
LICENSE = "Bench sign-in"


@dataclass(frozen=True)
class SignInUsers:
    right: list[str]  # logins that sign in with PASSWORD
    wrong: list[str]  # logins that get only wrong passwords
    hashing: Hashing


def give_passwords(engine: Engine, org: OrgData, count: int) -> SignInUsers:
    """A license and the password ``PASSWORD`` for ``count`` users of ``org``.

    They are taken from the users in no group, from the end, whose userNames
    (numbered above the smaller organizations' sizes) name no other account. Called
    again on one organization (the sign-in scenario, then the console's admin), it
    reuses the license and sets the password again.
    """
    hashing = Hashing()  # the configuration's defaults: what production runs with
    digest = hash_password(hashing, PASSWORD)
    names = dict(zip(org.user_ids, org.user_names, strict=True))
    chosen = org.free_user_ids[-count:]
    tables = Base.metadata.tables
    licenses, passwords = tables["licenses"], tables["user_passwords"]
    with engine.begin() as conn:
        license_id = conn.execute(
            select(licenses.c.id).where(
                licenses.c.org_id == org.id, licenses.c.name_key == fold(LICENSE)
            )
        ).scalar()
        if license_id is None:
            license_id = str(uuid.uuid4())
            conn.execute(
                insert(licenses).values(
                    org_id=org.id, id=license_id, name=LICENSE, name_key=fold(LICENSE)
                )
            )
        conn.execute(
            delete(passwords).where(passwords.c.org_id == org.id, passwords.c.user_id.in_(chosen))
        )
        users = tables["users"]
        conn.execute(
            update(users)
            .where(users.c.org_id == org.id, users.c.id.in_(chosen))
            .values(license_id=license_id, license_source="manual")
        )
        conn.execute(
            insert(passwords),
            [{"org_id": org.id, "user_id": uid, "hash": digest} for uid in chosen],
        )
    logins = [names[uid] for uid in chosen]
    quarter = max(1, count // 4)
    return SignInUsers(logins[:quarter], logins[quarter:], hashing)


def _form(login: str, password: str, csrf: str) -> bytes:
    fields = {"csrf": csrf, "login": login, "password": password, "next": "/after"}
    return urlencode(fields).encode()


def sign_in_form(port: int, login: str) -> tuple[str, str]:
    """The password form's CSRF token and the session cookie it is bound to, as a browser
    gets them (``POST /sso/login`` with the address): every sign-in of the load sends
    both (the cookie is signed, not stored: one serves any number of sign-ins)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urlencode({"email": login, "next": "/after"}).encode()
    with opener.open(f"http://{HOST}:{port}/sso/login", data=form, timeout=30) as resp:
        page = resp.read().decode()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    if found is None:
        raise RuntimeError("the password form carries no CSRF token")
    return found.group(1), "; ".join(f"{c.name}={c.value}" for c in jar)


class SignIns:
    """POST /sso/login/password with the right password, users at random: 303 to ``next``."""

    def __init__(
        self, logins: list[str], csrf: str, label: str = labels.SIGN_IN, seed: int = 8
    ) -> None:
        self.logins = logins
        self.csrf = csrf
        self.label = label
        self.rng = random.Random(seed)

    def next(self, worker: int) -> Request | None:
        body = _form(self.rng.choice(self.logins), PASSWORD, self.csrf)
        return Request("POST", "/sso/login/password", body, self.label, 303, FORM)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        return []


class WrongPasswords:
    """A different wrong password each time, users in turn, each below the lockout: 401.

    Stops when every user has had ``threshold - 1`` attempts.
    """

    def __init__(self, logins: list[str], csrf: str, threshold: int = LOCKOUT_THRESHOLD) -> None:
        self.logins = logins
        self.csrf = csrf
        self.limit = len(logins) * max(0, threshold - 1)
        self.count = 0

    def next(self, worker: int) -> Request | None:
        if self.count >= self.limit:
            return None
        login = self.logins[self.count % len(self.logins)]
        self.count += 1
        body = _form(login, f"wrong {self.count} {secrets.token_hex(4)}", self.csrf)
        return Request("POST", "/sso/login/password", body, labels.SIGN_IN_WRONG, 401, FORM)

    def done(self, worker: int, req: Request, body: bytes) -> None:
        pass

    def cleanup(self) -> list[Request]:
        return []


def measure_sign_ins(bench: Bench, org: OrgData, token: str) -> dict[str, Any]:
    """The rows and the ratios of the sign-in scenario, on ``org`` (the largest)."""
    users = give_passwords(bench.engine, org, bench.profile.sign_in_users)
    p, n = bench.profile, org.size
    csrf, cookie = sign_in_form(bench.scim_port, users.right[0])
    site = Target(HOST, bench.scim_port, headers={"Cookie": cookie})
    scim = bench.scim(token)
    rows: list[Row] = []
    baseline = Reads(labels.BASELINE, baseline_row(org.id, org.user_ids))
    rows += bench.run(bench.baseline, baseline, READ_C, n, labels.BASELINE)
    reads = Reads(labels.GET_BY_ID, by_id(org.user_ids))
    alone = bench.run(scim, reads, READ_C, n, labels.GET_BY_ID)
    rows += alone
    long = p.sign_in_duration_s
    for scenario in (SignIns(users.right, csrf), WrongPasswords(users.wrong, csrf)):
        outcome = measure(site, scenario, SIGN_IN_C, p.warmup_s, long, p.max_requests)
        rows += _logged(bench.backend, outcome, SIGN_IN_C, n)
    reads = Reads(labels.GET_BESIDE_SIGN_INS, by_id(org.user_ids), seed=9)
    beside = SignIns(users.right, csrf, labels.SIGN_IN_BESIDE_GET, seed=10)
    measured, background = measure_beside(
        (scim, reads, READ_C), (site, beside, BESIDE_C), p.warmup_s, long, p.max_requests
    )
    with_rows = _logged(bench.backend, measured, READ_C, n)
    rows += with_rows + _logged(bench.backend, background, BESIDE_C, n)
    add_baseline_ratios(rows)
    without = alone[0].rps if alone else 0.0
    with_ = with_rows[0].rps if with_rows else 0.0
    ratio = with_ / without if without else 0.0  # 0: GET failed alone (see its errors)
    base = rows[0].rps
    summary = {
        "argon2": {
            "time_cost": users.hashing.time_cost,
            "memory_kib": users.hashing.memory_kib,
            "parallelism": users.hashing.parallelism,
        },
        "lockout_threshold": LOCKOUT_THRESHOLD,
        "get_alone_rps": round(without, 1),
        "get_beside_sign_ins_rps": round(with_, 1),
        "beside_over_alone": round(ratio, 3),
        "get_alone_over_baseline": round(without / base, 2) if base else None,
        # Sign-ins that got through beside the reads, a second, and those shed with 503.
        "sign_ins_beside_ok_rps": round(_ok_rate(background)[0], 1),
        "sign_ins_beside_shed": _ok_rate(background)[1],
    }
    log(f"  {bench.backend:10} GET /Users/{{id}} beside {BESIDE_C} sign-ins ÷ alone: {ratio:.3f}")
    return {"rows": rows, "summary": summary}


def _logged(backend: str, outcome: Outcome, c: int, n: int) -> list[Row]:
    rows = rows_from(backend, outcome, c, n)
    for r in rows:
        log(
            f"  {backend:10} c={c:<3} {r.operation:50} {r.rps:6.0f} req/s "
            f"p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  errors {r.errors}"
        )
    ok, shed = _ok_rate(outcome)
    if shed:
        log(f"    {ok:.1f} answered as expected a second; {shed} shed (503 + Retry-After)")
    for failure in outcome.failures:
        log(f"    failure: {failure}")
    return rows


def _ok_rate(outcome: Outcome) -> tuple[float, int]:
    """(expected answers a second, requests that were not: the 503s of a busy node)."""
    good = sum(s.ok for s in outcome.samples)
    rate = good / outcome.elapsed_s if outcome.elapsed_s > 0 else 0.0
    return rate, len(outcome.samples) - good


def summary_lines(summary: dict[str, Any]) -> str:
    a = summary["argon2"]
    return (
        f"argon2id t={a['time_cost']}, m={a['memory_kib']} KiB, p={a['parallelism']}; "
        f"GET /Users/{{id}} c={READ_C}: {summary['get_alone_rps']} req/s alone "
        f"({summary['get_alone_over_baseline']} x baseline), "
        f"{summary['get_beside_sign_ins_rps']} req/s beside {BESIDE_C} sign-ins: "
        f"ratio {summary['beside_over_alone']}"
    )
