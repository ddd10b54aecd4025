"""Registering OAuth clients (``sso.provider.clients``): the names shown to operators."""

from __future__ import annotations

import pytest

from scim_server.errors import InvalidValueError
from sso.provider.clients import create_client, list_clients

REDIRECT = "https://product.example/callback"


@pytest.mark.parametrize("name", ["Product\nForged", "Product\t", "\x1b[31mProduct", "P\x85"])
def test_a_client_name_with_a_control_character_is_refused(session, name):
    """Client names go into lists, the consent page and the log: no control characters,
    as organization, token, license and role names."""
    session.rollback()
    with pytest.raises(InvalidValueError, match="cannot hold control characters"):
        create_client(session, name, [REDIRECT])
    session.rollback()
    assert [c.name for c in list_clients(session)] == []
