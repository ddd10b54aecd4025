"""Finding accounts by userName in bulk (the spreadsheet import plans every row at once)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.models import User
from scim_server.text import fold

BATCH = 500


def by_user_names(session: Session, org_id: str, names: Iterable[str]) -> dict[str, User]:
    """The accounts whose userName is one of ``names``, keyed by the folded userName."""
    keys = sorted({fold(n) for n in names if n})
    found: dict[str, User] = {}
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        for user in session.scalars(
            select(User).where(User.org_id == org_id, User.user_name_key.in_(chunk))
        ):
            found[user.user_name_key] = user
    return found
