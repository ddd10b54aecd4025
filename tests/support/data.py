"""Data a test needs in bulk or from the project itself, made without going through HTTP."""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlalchemy.orm import Session

from scim_server.db import utcnow
from scim_server.models import User


def insert_users(session: Session, org_id: str, count: int) -> list[str]:
    """``count`` real users of the organization, written in one statement (a 5,000-user fixture
    through HTTP would take minutes)."""
    now = utcnow()
    rows = []
    for i in range(count):
        name = f"member{i:05d}@example.com"
        rows.append(
            {
                "org_id": org_id,
                "id": str(uuid.uuid4()),
                "user_name": name,
                "user_name_key": name,
                "display_name": f"Member {i}",
                "active": True,
                "status": "PROVISIONED",
                "data": {"userName": name, "displayName": f"Member {i}", "active": True},
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    session.execute(insert(User), rows)
    session.commit()
    return [row["id"] for row in rows]


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from scim_server.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()  # type: ignore[arg-type]
