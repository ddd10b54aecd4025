"""Console roles and their capabilities (``services.console_access``)."""

from __future__ import annotations

from scim_server.services.console_access import (
    AUDITOR,
    ORG_ADMIN,
    SECURITY_ADMIN,
    USER_MANAGER,
    capabilities,
)


def test_what_decides_who_signs_in_as_anyone_is_an_org_admins_alone() -> None:
    """A token, an active rule set and an SSO connection each act on every account, org
    admins' included: making them is an org admin's (a lower role would take the org admin's
    account over through them). The lower roles keep drafting rules, disabling and testing
    connections, revoking tokens."""
    org_admin_only = {"tokens.create", "rules.activate", "sso.configure", "access.write"}
    assert org_admin_only <= capabilities(frozenset({ORG_ADMIN}))
    for role in (USER_MANAGER, SECURITY_ADMIN, AUDITOR):
        assert not capabilities(frozenset({role})) & org_admin_only, role
    assert {"rules.read", "rules.write"} <= capabilities(frozenset({USER_MANAGER}))
    assert {"sso.read", "sso.write", "tokens.write"} <= capabilities(frozenset({SECURITY_ADMIN}))
