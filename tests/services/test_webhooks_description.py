"""A webhook's description is at most 500 characters, whoever writes it.

The column is varchar(500); SQLite ignores the length, PostgreSQL refuses a longer
value in the driver. services.webhooks checks it on create and update, so the
console, the command line and the API all get the same refusal and nothing changes.
"""

from __future__ import annotations

import pytest

from scim_server.errors import InvalidValueError
from scim_server.services import webhooks
from scim_server.webhook_http import OutboundPolicy

POLICY = OutboundPolicy(development=True)
SECRET = b"test server secret"
URL = "https://h.example.com/"


@pytest.mark.parametrize("description", ["d" * 501, "a\x00b", 7])
def test_create_refuses_a_description_the_column_cannot_hold(session, scim, description):
    """InvalidValueError; no subscription."""
    with pytest.raises(InvalidValueError):
        webhooks.create_subscription(
            session,
            scim.org_id,
            {"url": URL, "description": description},
            POLICY,
            server_secret=SECRET,
        )
    session.rollback()
    assert webhooks.list_subscriptions(session, scim.org_id) == []


def test_update_refuses_a_description_too_long_and_keeps_the_old(session, scim):
    """The subscription keeps its description."""
    sub, _secret = webhooks.create_subscription(
        session, scim.org_id, {"url": URL, "description": "kept"}, POLICY, server_secret=SECRET
    )
    with pytest.raises(InvalidValueError, match="at most 500 characters"):
        webhooks.update_subscription(
            session, scim.org_id, sub.id, {"description": "d" * 501}, POLICY, server_secret=SECRET
        )
    session.rollback()
    assert webhooks.get_subscription(session, scim.org_id, sub.id).description == "kept"


def test_500_characters_and_none_are_accepted(session, scim):
    """The limit itself, and no description at all."""
    sub, _secret = webhooks.create_subscription(
        session, scim.org_id, {"url": URL, "description": "d" * 500}, POLICY, server_secret=SECRET
    )
    webhooks.update_subscription(
        session, scim.org_id, sub.id, {"description": None}, POLICY, server_secret=SECRET
    )
    session.rollback()
    assert webhooks.get_subscription(session, scim.org_id, sub.id).description is None
