"""The status lifecycle (``services.lifecycle``): which transitions end the sessions.

A move from a status that may sign in (``SIGN_IN_ALLOWED``) to one that may not moves the
account's ``session_epoch`` on, as a password change does: every session and token from
before it is over for good, and the transition that gives access back gives none of them
back. A move between two statuses on the same side ends nothing (a lock of a deactivated
account ended its sessions already; a reset link asked for ends no one's). Nor does the
automatic lockout: a stranger's wrong guesses cause it (its sessions are refused while it
lasts, ``tests/sso/signin/test_session_ends.py``).
"""

from __future__ import annotations

from flask import Flask

from tests.support import Scim
from tests.support.console import session_epoch

# (admin action, status after it, the epoch after it), from PROVISIONED at epoch 0.
STEPS = (
    ("start_recovery", "RECOVERY", 0),
    ("complete_recovery", "PROVISIONED", 0),
    ("lock", "LOCKED_BY_ADMIN", 1),
    ("deactivate", "DEACTIVATED", 1),
    ("activate", "LOCKED_BY_ADMIN", 1),
    ("unlock", "PROVISIONED", 1),
    ("require_new_password", "AWAITING_NEW_PASSWORD", 2),
    ("deactivate", "DEACTIVATED", 2),
    ("activate", "AWAITING_NEW_PASSWORD", 2),
    ("complete_recovery", "PROVISIONED", 2),
    ("deactivate", "DEACTIVATED", 3),
    ("activate", "PROVISIONED", 3),
)


def test_only_a_move_to_a_status_that_may_not_sign_in_ends_the_sessions(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    user_id = scim.create_user("ann@example.com")["id"]
    for op, status, epoch in STEPS:
        resp = admin.post(f"/api/v1/users/{user_id}/actions/{op}", None)
        assert resp.status_code == 200, (op, resp.get_json())
        assert resp.get_json()["status"] == status, op
        assert session_epoch(app, scim.org_id, user_id) == epoch, op


def test_the_idps_deactivation_ends_the_sessions_once(app: Flask, scim: Scim) -> None:
    """``active`` false moves the epoch on; the same false again and the reactivation do not."""
    user_id = scim.create_user("ann@example.com")["id"]
    for value, epoch in ((True, 0), (False, 1), ("False", 1), (True, 1), (False, 2)):
        resp = scim.patch_ops(
            f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "active", "value": value}
        )
        assert resp.status_code == 200, resp.get_json()
        assert session_epoch(app, scim.org_id, user_id) == epoch, value
