"""The baseline: a bare Flask app reading one ``users`` row by primary key.

It is what any Flask + SQLAlchemy service pays per request on this machine
(gunicorn, WSGI, a pooled connection, one indexed query, JSON), so a SCIM
figure divided by the baseline figure measured in the same run says how much
the SCIM layer costs, whatever the machine's speed or noise that day. It uses
the server's own engine settings (``make_engine``: SQLite pragmas, pool size,
pre-ping) and gunicorn settings (``scim_server.gunicorn_conf``).

Run: ``SCIM_DATABASE_URL=... python -m bench.baseline_app --port 8001``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from flask import Flask, Response
from sqlalchemy import select

from scim_server.config import env_int
from scim_server.db import make_engine
from scim_server.models import User

USERS = User.__table__


def create_app(database_url: str) -> Flask:
    app = Flask(__name__)
    engine = make_engine(
        database_url,
        pool_size=env_int("SCIM_DB_POOL_SIZE", 5),
        max_overflow=env_int("SCIM_DB_MAX_OVERFLOW", 10),
    )

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.get("/users/<org_id>/<user_id>")
    def get_user(org_id: str, user_id: str) -> Response | tuple[Response, int]:
        stmt = select(USERS).where(USERS.c.org_id == org_id, USERS.c.id == user_id)
        with engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        if row is None:
            return Response('{"error":"not found"}', mimetype="application/json"), 404
        return Response(json.dumps(dict(row), default=str), mimetype="application/json")

    return app


def gunicorn_settings() -> dict[str, Any]:
    """The SCIM server's gunicorn settings, less its hooks (metrics, pool disposal)."""
    from scim_server import gunicorn_conf

    return {k: v for k, v in gunicorn_conf.settings().items() if not callable(v)}


def main() -> None:
    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    database_url = os.environ["SCIM_DATABASE_URL"]

    class Baseline(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in gunicorn_settings().items():
                if name in self.cfg.settings:
                    self.cfg.set(name, value)
            self.cfg.set("bind", f"{args.host}:{args.port}")

        def load(self) -> Flask:
            return create_app(database_url)

    Baseline().run()


if __name__ == "__main__":
    main()
