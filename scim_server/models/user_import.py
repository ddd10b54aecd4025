from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc


class ImportRow(Base):
    """One spreadsheet row of a console import, kept with its job (``users.import``).

    The upload is read once, on the web node, into these rows (never a file on its
    disk); ``scim-server worker`` applies them in line order and writes each row's
    outcome beside it, which the progress page counts and the results CSV lists.
    ``action`` is None until the row is done. ``plan`` and ``plan_reason`` are what the
    preview said the row would do (the ``users.import.preview`` job writes them), with
    ``user_id`` the account it would change and ``plan_changes`` the attributes it would
    change (an update or unchanged row): the import refuses a row the directory has
    changed since; once done, ``user_id`` is the account the import wrote.
    """

    __tablename__ = "import_rows"
    __table_args__ = (
        ForeignKeyConstraint(["org_id", "job_id"], ["jobs.org_id", "jobs.id"], ondelete="CASCADE"),
        # The preview's errors in line order, without reading its other rows.
        Index(
            "ix_import_rows_plan_errors",
            "org_id",
            "job_id",
            "line",
            postgresql_where=text("plan = 'error'"),
            sqlite_where=text("plan = 'error'"),
        ),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    values: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    action: Mapped[str | None] = mapped_column(String(10), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    plan: Mapped[str | None] = mapped_column(String(10), default=None)
    plan_reason: Mapped[str | None] = mapped_column(Text, default=None)
    plan_changes: Mapped[list[str] | None] = mapped_column(JSONDoc, default=None)


class ImportUpload(Base):
    """An uploaded spreadsheet's bytes, from the upload request until the worker has read them.

    The upload request only checks the file's type and header and keeps it here (never
    on the node's disk); the ``users.import.preview`` job parses it into ``import_rows``
    and deletes it.
    """

    __tablename__ = "import_uploads"
    __table_args__ = (
        ForeignKeyConstraint(["org_id", "job_id"], ["jobs.org_id", "jobs.id"], ondelete="CASCADE"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
