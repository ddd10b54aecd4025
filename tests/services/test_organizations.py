"""Organizations: names an operator gives, and the ``NAME_OR_ID`` every command resolves."""

from __future__ import annotations

import uuid

import pytest

from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import Organization
from scim_server.services import counts
from scim_server.services.organizations import create_organization, find_organization


@pytest.fixture
def org(session) -> Organization:
    session.rollback()
    return create_organization(session, "acme")


def test_a_name_that_is_an_existing_id_is_refused(session, org):
    """An organization named with another's id would take that id's lookups (``--org``)."""
    with pytest.raises(InvalidValueError, match="cannot be a UUID"):
        create_organization(session, org.id)
    session.rollback()
    assert find_organization(session, org.id).name == "acme"


@pytest.mark.parametrize(
    "name",
    [
        "f00dbabe-0000-4000-8000-000000000000",
        "F00DBABE-0000-4000-8000-000000000000",
        "{f00dbabe-0000-4000-8000-000000000000}",
        "urn:uuid:f00dbabe-0000-4000-8000-000000000000",
        "f00dbabe000040008000000000000000",
        " f00dbabe-0000-4000-8000-000000000000 ",
    ],
)
def test_a_name_that_parses_as_a_uuid_is_refused(session, name):
    """Any UUID could be a future organization's id: none is a name."""
    session.rollback()
    with pytest.raises(InvalidValueError, match="cannot be a UUID"):
        create_organization(session, name)


@pytest.mark.parametrize(
    "name", ["Acme\nEvil", "Acme\tEvil", "Acme\t", "\x1bAcme", "Acme\x7f", "Acme\x85"]
)
def test_a_name_with_a_control_character_is_refused(session, name):
    """A newline or tab forged lines of ``org list``; a trailing one is refused, not dropped."""
    session.rollback()
    with pytest.raises(InvalidValueError, match="cannot hold control characters"):
        create_organization(session, name)


def test_a_reference_matching_two_organizations_is_refused(session, org):
    """An organization named with another's id before names were checked: the reference
    is ambiguous, refused (never the first row found, possibly the other tenant)."""
    session.rollback()
    with session.begin():  # as an older release could store it
        other = Organization(id=str(uuid.uuid4()), name=org.id)
        session.add(other)
        session.flush()
        counts.start_organization(session, other.id)
    with pytest.raises(ConflictError, match="two organizations") as refused:
        find_organization(session, org.id)
    assert other.id in refused.value.detail
    assert find_organization(session, other.id).name == org.id
    assert find_organization(session, "acme").id == org.id


def test_an_unknown_reference_is_not_found(session, org):
    """No organization has that name or id: a clear not found."""
    with pytest.raises(NotFoundError, match="No organization 'nope'"):
        find_organization(session, "nope")
