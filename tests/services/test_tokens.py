"""SCIM and admin tokens: their names, shown in ``token list`` and the log."""

from __future__ import annotations

import pytest

from scim_server.errors import InvalidValueError
from scim_server.services.tokens import create_token, list_tokens


@pytest.mark.parametrize("name", ["okta\nfake-id\tentra", "okta\t", "okta\x00", "okta\x85"])
def test_a_token_name_with_a_control_character_is_refused(scim, session, name):
    """A newline or tab forged lines of ``token list`` (tab-separated): refused, no token."""
    session.rollback()
    before = len(list_tokens(session, scim.org_id))
    session.rollback()
    with pytest.raises(InvalidValueError, match="cannot hold control characters"):
        create_token(session, scim.org_id, name)
    session.rollback()
    assert len(list_tokens(session, scim.org_id)) == before


def test_a_token_name_is_trimmed(scim, session):
    """Spaces around a name are dropped (not control characters)."""
    session.rollback()
    token, _secret = create_token(session, scim.org_id, "  entra  ")
    assert token.name == "entra"
