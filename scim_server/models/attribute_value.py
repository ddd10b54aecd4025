from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, KeyText


class AttributeValue(Base):
    """A searchable copy of one attribute value of a resource.

    Filters on attributes that are not columns (``emails.value``,
    ``name.givenName``, enterprise ``employeeNumber``...) run against these
    rows through an index instead of scanning documents. ``pos`` is the index
    of the element in a multi-valued attribute, so that the sub-attributes of
    one element can be matched together (``emails[type eq "work" and ...]``).
    """

    __tablename__ = "attribute_values"
    __table_args__ = (Index("ix_attribute_values_lookup", "org_id", "attr", "value_key"),)

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Canonical, lower-case path: "emails.value", "name.givenname", or
    # "urn:...:enterprise:2.0:user:manager.value" for extensions.
    attr: Mapped[str] = mapped_column(String(200), primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    value_key: Mapped[str] = mapped_column(KeyText)
