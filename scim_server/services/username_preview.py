"""What a username format would make of real accounts: the settings page's live preview.

Read-only; the same rendering as a SCIM create (``mappings.render_username`` on
the user's SCIM document), including its fallback to the IdP's userName when an
account cannot fill the format.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import mappings
from mappings.templates import parse_template
from scim_server.models import User


@dataclass(frozen=True)
class PreviewRow:
    user_name: str
    username: str
    fallback: str | None  # why the IdP's userName is used instead, or None


def preview(
    session: Session, org_id: str, template: str, limit: int = 3
) -> tuple[str | None, list[PreviewRow]]:
    """(the format's problem, or None; and what it gives the organization's newest accounts)."""
    if not template.strip():
        return None, []
    try:
        parse_template(template)
    except mappings.TemplateError as err:
        return f"The format {err}.", []
    rows = []
    for user in session.scalars(
        select(User).where(User.org_id == org_id).order_by(User.created_at.desc()).limit(limit)
    ):
        identity = mappings.ExternalIdentity.from_scim(user.data, [])
        try:
            rows.append(
                PreviewRow(user.user_name, mappings.render_username(template, identity), None)
            )
        except mappings.TemplateError as err:
            rows.append(PreviewRow(user.user_name, user.user_name, str(err)))
    return None, rows
