from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, KeyText, UTCDateTime, utcnow


class Contact(Base):
    """A person or an organization the product knows about, with or without system access.

    A user is always linked to one person contact; deleting the user keeps the
    contact and its history. A person may belong to an organization contact
    (the company it works for).
    """

    __tablename__ = "contacts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "organization_contact_id"],
            ["contacts.org_id", "contacts.id"],
            ondelete="SET NULL",
            name="fk_contacts_org_id_organization_contact_id_contacts",
        ),
        Index("ix_contacts_org_id_external_id", "org_id", "external_id"),
        Index("ix_contacts_org_id_email_key", "org_id", "email_key"),
        Index("ix_contacts_org_id_kind_name_key", "org_id", "kind", "name_key"),
        # The console's contact list (keyset pages on (name_key, id), whatever the kind) and
        # the users dashboard sorted by name read their pages from here.
        Index("ix_contacts_org_id_name_key_id", "org_id", "name_key", "id"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "person" | "organization"
    name: Mapped[str] = mapped_column(Text)  # display name (person) or company name
    name_key: Mapped[str] = mapped_column(KeyText)
    given_name: Mapped[str | None] = mapped_column(Text, default=None)
    family_name: Mapped[str | None] = mapped_column(Text, default=None)
    email: Mapped[str | None] = mapped_column(Text, default=None)
    email_key: Mapped[str | None] = mapped_column(KeyText, default=None)
    phone: Mapped[str | None] = mapped_column(Text, default=None)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    department: Mapped[str | None] = mapped_column(Text, default=None)
    external_id: Mapped[str | None] = mapped_column(Text, default=None)
    organization_contact_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # The external system (a planning or booking tool) this contact is a resource of, by
    # name; None: not a resource. Only a resource has availability hours.
    resource_system: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactAvailability(Base):
    """One range of hours a resource contact is available: week parity x ISO weekday.

    Odd and even are the parity of the ISO week number (``date.isocalendar().week``):
    two-week rotas. Minutes since midnight, ``end_minute`` up to 1440 (24:00). The ranges
    of one day never overlap (``services.availability`` checks it; a day is replaced whole).
    """

    __tablename__ = "contact_availability"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            ondelete="CASCADE",
            name="fk_contact_availability_org_id_contact_id_contacts",
        ),
        CheckConstraint("week_parity IN ('odd', 'even')", name="week_parity"),
        CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday"),
        CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name="range",
        ),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    week_parity: Mapped[str] = mapped_column(String(4), primary_key=True)  # "odd" | "even"
    weekday: Mapped[int] = mapped_column(Integer, primary_key=True)  # ISO: 1 Monday .. 7 Sunday
    start_minute: Mapped[int] = mapped_column(Integer, primary_key=True)
    end_minute: Mapped[int] = mapped_column(Integer)
