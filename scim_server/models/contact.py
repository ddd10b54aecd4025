from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, Text
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
        # The users dashboard sorted by name reads a page from here (any kind).
        Index("ix_contacts_org_id_name_key", "org_id", "name_key"),
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
