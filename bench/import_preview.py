"""The console's import of a big file, in process (BENCHMARKS.md, "Console import").

    .venv/bin/python -m bench.import_preview [--rows 100000] [--format csv,xlsx] [--phases]
                                             [DATABASE_URL]

Not part of ``python -m bench``. Builds a file of ``--rows`` new people with the
template's columns (``sheets.COLUMNS``), in an organization of its own, and times:

- ``--phases``: the three parts of a preview, called directly: ``sheets.read`` (parse),
  ``rows.plan`` (each row's plan against the accounts), stage (the rows and their plans
  into ``import_rows``, as the preview job saves them);
- without it: the upload request (``POST /admin/import/preview`` through the Flask test
  client, as a signed-in user manager) and then the worker's preview job
  (``Worker.run_jobs``: parse, plan, stage), and the finished preview page, each as
  wall-clock seconds.

Wall-clock on a shared machine: say the load average beside the figures. Without
DATABASE_URL, a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import re
import tempfile
import time
import uuid
from typing import Any

from flask import Flask, session
from werkzeug.test import EnvironBuilder

from scim_server import bulk_rows, create_app
from scim_server.db import db
from scim_server.migrate import upgrade
from scim_server.models import ImportRow
from scim_server.services import console_access, jobs
from scim_server.services.organizations import create_organization
from scim_server.user_import import rows as import_rows
from scim_server.user_import import sheets
from scim_server.user_import.jobs import PREVIEW, STAGE_BATCH
from scim_server.worker import Worker


def people(rows: int, domain: str) -> list[list[str]]:
    """The header and ``rows`` new people, every column filled."""
    out = [list(sheets.COLUMNS)]
    for n in range(rows):
        out.append(
            [
                f"person{n}@{domain}",
                f"person{n}@{domain}",
                f"Given{n}",
                f"Family{n}",
                f"Given{n} Family{n}",
                f"E{n}",
                "true",
                "Engineer",
                "Engineering",
                f"+44 20 7946 {n % 10000:04d}",
            ]
        )
    return out


def as_csv(lines: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    return buf.getvalue().encode()


def as_xlsx(lines: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Users")
    for line in lines:
        sheet.append(line)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _org(app: Flask, name: str) -> str:
    with db.writer(app)() as s:
        return create_organization(s, f"{name}-{uuid.uuid4().hex[:8]}").id


def phases(app: Flask, fmt: str, data: bytes) -> dict[str, float]:
    """parse, plan and stage timed apart (before issue 13 the upload request ran all three;
    stage was an executemany then, COPY on PostgreSQL now, as the preview job does)."""
    org_id = _org(app, "import-phases")
    out: dict[str, float] = {}
    t = time.perf_counter()
    found = sheets.read(f"people.{fmt}", data, max_bytes=30 << 20, max_rows=100_000)
    out["parse"] = time.perf_counter() - t
    with db.writer(app)() as s:
        t = time.perf_counter()
        outcomes = import_rows.plan(s, org_id, found)
        out["plan"] = time.perf_counter() - t
        assert import_rows.summary(outcomes)["create"] == len(found)
        s.rollback()
        t = time.perf_counter()
        _stage(s, org_id, fmt, found, outcomes)
        out["stage"] = time.perf_counter() - t
    return out


def _stage(
    s: Any, org_id: str, fmt: str, found: list[Any], outcomes: list[import_rows.Outcome]
) -> None:
    """The rows with their plans into ``import_rows``, as the preview job saves them."""
    with s.begin():
        job = jobs.enqueue(s, org_id, PREVIEW, {"filename": f"people.{fmt}"}, state="bench")
    for start in range(0, len(found), STAGE_BATCH):
        with s.begin():
            bulk_rows.insert_rows(
                s.connection(),
                ImportRow,
                [
                    {
                        "org_id": org_id,
                        "job_id": job.id,
                        "line": r.line,
                        "values": r.values,
                        "action": None,
                        "reason": None,
                        "user_id": None,
                        "plan": o.action,
                        "plan_reason": o.reason or None,
                    }
                    for r, o in zip(
                        found[start : start + STAGE_BATCH],
                        outcomes[start : start + STAGE_BATCH],
                        strict=True,
                    )
                ],
            )


def _signed_in(app: Flask, org_id: str) -> Any:
    """A test client with a user manager's console session (as the tests sign in)."""
    from scim_server.scim.resources import parse_resource
    from scim_server.scim.schema import USER, USER_SCHEMA
    from scim_server.services.users import create_user
    from sso.signin.session import start_session

    with db.writer(app)() as s:
        doc = parse_resource(
            USER, {"schemas": [USER_SCHEMA], "userName": "bench.manager@example.org"}, creating=True
        )
        user_id = create_user(s, org_id, doc).id
    with db.writer(app)() as s:
        console_access.grant(s, org_id, user_id, "user_manager")
    client = app.test_client()
    with app.test_request_context():
        start_session(org_id, user_id, "test", None)
        signed = dict(session)
    with client.session_transaction() as sess:
        sess.update(signed)
    return client


def request_and_worker(app: Flask, fmt: str, data: bytes) -> dict[str, float]:
    """The upload request, then the worker's preview job, timed apart."""
    org_id = _org(app, "import-request")
    client = _signed_in(app, org_id)
    page = client.get("/admin/import/").get_data(as_text=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found
    environ = EnvironBuilder(
        path="/admin/import/preview",
        method="POST",
        data={"csrf_token": found.group(1), "file": (io.BytesIO(data), f"people.{fmt}")},
        content_type="multipart/form-data",
    ).get_environ()
    out: dict[str, float] = {}
    t = time.perf_counter()
    try:
        resp = client.open(environ)
    finally:
        environ["wsgi.input"].close()
    out["upload request"] = time.perf_counter() - t
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    t = time.perf_counter()
    ran = Worker(db.writer(app)).run_jobs()
    out["worker preview"] = time.perf_counter() - t
    assert ran == 1
    t = time.perf_counter()
    shown = client.get(resp.headers["Location"])
    out["preview page"] = time.perf_counter() - t
    assert shown.status_code == 200 and "to create" in shown.get_data(as_text=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", default="csv,xlsx")
    parser.add_argument("--phases", action="store_true", help="parse, plan, stage apart")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/import-preview.db"
    app = create_app({"DATABASE_URL": url, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    upgrade(db.engine(app))
    lines = people(args.rows, f"{uuid.uuid4().hex[:6]}.example.org")
    print(f"{url.split(':', 1)[0]}: {args.rows:,} rows, seconds (wall clock)")
    for fmt in args.format.split(","):
        data = as_csv(lines) if fmt == "csv" else as_xlsx(lines)
        figures = phases(app, fmt, data) if args.phases else request_and_worker(app, fmt, data)
        shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
        mib = len(data) / (1 << 20)
        print(f"{fmt} ({mib:.1f} MiB): {shown}; total {sum(figures.values()):.2f}")


if __name__ == "__main__":
    main()
