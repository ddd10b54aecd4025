"""The console's users dashboard at the largest organization's size (issue 13).

An admin's page must stay fast however many users the organization has: the
first page, a page deep in the list (a keyset cursor at the middle of the
organization, the way the "Next" links carry it), a page sorted by name, and a
search as you type. Each is measured against the running server with a real
console session (the product's password sign-in, then the session cookie), at
the same concurrencies as GET by id and the baseline, measured just before in
the same run so that the ratios compare like with like.
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import random
import re
import urllib.parse
import urllib.request
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from bench import labels
from bench.dataset import OrgData
from bench.loadgen import Target
from bench.measurements import Bench, baseline_row, by_id
from bench.report import Row, add_baseline_ratios
from bench.scenarios import Reads
from bench.servers import HOST
from bench.signin import PASSWORD, give_passwords
from scim_server.db import Base

CONCURRENCIES = (1, 8)
PAGE = "/admin/users/"


def console_admin(engine: Engine, org: OrgData) -> str:
    """A user of ``org`` with a password and the org_admin console role; its login."""
    users = give_passwords(engine, org, 4)
    login = users.right[0]
    tables = Base.metadata.tables
    with engine.begin() as conn:
        user_id = conn.execute(
            select(tables["users"].c.id).where(
                tables["users"].c.org_id == org.id, tables["users"].c.user_name == login
            )
        ).scalar_one()
        grant = {"org_id": org.id, "user_id": user_id, "role": "org_admin"}
        conn.execute(insert(tables["console_grants"]).values(**grant))
    return login


def sign_in(port: int, login: str) -> str:
    """Sign in through the product's password form; the Cookie header of the console session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://{HOST}:{port}"
    start = urllib.parse.urlencode({"email": login, "next": PAGE}).encode()
    with opener.open(f"{base}/sso/login", data=start, timeout=30) as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', resp.read().decode())
    if found is None:
        raise RuntimeError("the password form carries no CSRF token")
    fields = {"csrf": found.group(1), "login": login, "password": PASSWORD, "next": PAGE}
    form = urllib.parse.urlencode(fields).encode()
    with opener.open(f"{base}/sso/login/password", data=form, timeout=30) as resp:
        if not resp.geturl().endswith(PAGE) or resp.status != 200:
            raise RuntimeError(f"console sign-in ended at {resp.geturl()} ({resp.status})")
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def middle_cursor(engine: Engine, org: OrgData) -> str:
    """The "Next" cursor of the page that starts halfway through the default sort."""
    users = Base.metadata.tables["users"]
    with engine.connect() as conn:
        key, user_id = conn.execute(
            select(users.c.username_key, users.c.id)
            .where(users.c.org_id == org.id)
            .order_by(users.c.username_key, users.c.id)
            .offset(org.size // 2)
            .limit(1)
        ).one()
    raw = json.dumps([key, user_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def searches(org: OrgData) -> list[str]:
    """Search texts as an admin types them: six letters from the middle of a userName."""
    rng = random.Random(13)
    picked = rng.sample(org.user_names, min(500, len(org.user_names)))
    return [name.split("@")[0][1:7] for name in picked]


def page_paths(engine: Engine, org: OrgData) -> dict[str, Any]:
    """label -> path maker, for each console page measured."""
    cursor = middle_cursor(engine, org)
    terms = searches(org)
    return {
        labels.CONSOLE_FIRST: lambda rng: PAGE,
        labels.CONSOLE_DEEP: lambda rng: f"{PAGE}?after={cursor}",
        labels.CONSOLE_BY_NAME: lambda rng: f"{PAGE}?sort=name",
        labels.CONSOLE_SEARCH: lambda rng: f"{PAGE}?q={urllib.parse.quote(rng.choice(terms))}",
    }


def measure_console(bench: Bench, org: OrgData, token: str) -> list[Row]:
    """The dashboard's pages next to GET by id and the baseline, on ``org`` (the largest)."""
    login = console_admin(bench.engine, org)
    console = Target(HOST, bench.scim_port, {"Cookie": sign_in(bench.scim_port, login)})
    paths = page_paths(bench.engine, org)
    n = org.size
    rows: list[Row] = []
    for c in CONCURRENCIES:
        baseline = Reads(labels.BASELINE, baseline_row(org.id, org.user_ids))
        rows += bench.run(bench.baseline, baseline, c, n, labels.BASELINE)
        rows += bench.run(
            bench.scim(token), Reads(labels.GET_BY_ID, by_id(org.user_ids)), c, n, labels.GET_BY_ID
        )
        for label, make_path in paths.items():
            rows += bench.run(console, Reads(label, make_path), c, n, label)
    add_baseline_ratios(rows)
    return rows
