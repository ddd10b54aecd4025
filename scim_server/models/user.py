from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, KeyText, UTCDateTime, utcnow


class User(Base):
    """A SCIM User: indexed columns for what IdPs look up, the rest as a document."""

    __tablename__ = "users"
    __table_args__ = (
        # RFC 7643 §4.1.1: userName is unique and case-insensitive; the key is
        # the same normalisation the `eq` filter uses (see scim_server.text).
        Index("uq_users_org_id_user_name_key", "org_id", "user_name_key", unique=True),
        Index("ix_users_org_id_external_id", "org_id", "external_id"),
        Index("ix_users_org_id_created_at", "org_id", "created_at", "id"),
        Index("uq_users_org_id_username_key", "org_id", "username_key", unique=True),
        Index("ix_users_org_id_license_id", "org_id", "license_id"),
        # The shortage per license (users the rules want on it without a seat), counted on
        # every licenses page and profile: without it, a scan of the organization's users.
        # Only the users waiting for one (read by equality, which implies NOT NULL): most
        # users wait for none, and their creates and updates then write no entry (0026).
        Index(
            "ix_users_org_id_license_wanted_id",
            "org_id",
            "license_wanted_id",
            postgresql_where=text("license_wanted_id IS NOT NULL"),
            sqlite_where=text("license_wanted_id IS NOT NULL"),
        ),
        # The users dashboard sorted by last sign-in reads a page from here.
        Index("ix_users_org_id_last_login_at", "org_id", "last_login_at"),
        # The console's status filter and sort (keyset pages on (status, id)).
        Index("ix_users_org_id_status_id", "org_id", "status", "id"),
        Index("ix_users_org_id_contact_id", "org_id", "contact_id"),
        ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            name="fk_users_org_id_contact_id_contacts",
        ),
        ForeignKeyConstraint(
            ["org_id", "license_id"],
            ["licenses.org_id", "licenses.id"],
            name="fk_users_org_id_license_id_licenses",
        ),
        # Room in each page for a changed row's new version (a user's row is about 1 kB):
        # an update that changes no indexed column (a PATCH of title, name, emails...) is
        # then a HOT update, with no new entry in any of the table's eleven indexes (0026).
        {"postgresql_with": {"fillfactor": 80}},
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_name: Mapped[str] = mapped_column(Text)
    user_name_key: Mapped[str] = mapped_column(KeyText)
    external_id: Mapped[str | None] = mapped_column(Text, default=None)
    display_name: Mapped[str | None] = mapped_column(Text, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # -- the internal model (DESIGN.md §2) --
    contact_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # The product's login name (column "username"): from the organization's username
    # format, else the SCIM userName. Not ``user_name``, which is SCIM's userName.
    login_name: Mapped[str | None] = mapped_column("username", Text, default=None)
    login_name_key: Mapped[str | None] = mapped_column("username_key", KeyText, default=None)
    status: Mapped[str] = mapped_column(String(24), default="PROVISIONED")
    # An admin's lock that a deactivation suspends: the activation gives it back
    # (``lifecycle``); None otherwise. (AWAITING_NEW_PASSWORD in rows from before 0039:
    # the demand is ``new_password_required`` now.)
    status_before_deactivation: Mapped[str | None] = mapped_column(String(24), default=None)
    # An admin's (or the credentials') demand for a new password, held whatever status
    # overrides ``AWAITING_NEW_PASSWORD`` meanwhile (a lock, an automatic lock, a
    # deactivation, a reset link asked for): only a new password (or an admin's
    # ``complete_recovery``) lifts it (``lifecycle``, 0039).
    new_password_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # How the account came to be: "scim" (an IdP), "jit" (a first sign-in), "manual" (an
    # admin: console, CLI); None for accounts older than the column whose log was purged.
    source: Mapped[str | None] = mapped_column(String(10), default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Moved on by a password set or removed: a sign-in session of an older epoch ends
    # (``sso.signin.session``). Not part of the SCIM resource: no version of its own.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    license_id: Mapped[str | None] = mapped_column(String(36), default=None)
    license_source: Mapped[str | None] = mapped_column(String(10), default=None)  # rule|manual
    license_rule: Mapped[str | None] = mapped_column(Text, default=None)
    # The license the rules wanted when no seat was left (the shortage, visible).
    license_wanted_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # Everything else the client sent, canonicalised against the schema.
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    # What the mapping rules read and wrote when they last ran for this user, hashed
    # (services.rule_inputs); NULL: evaluate on the next ``rules apply``.
    rules_input_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
