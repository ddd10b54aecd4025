"""The lockout policy's arithmetic and its keyed hashes (the HTTP behaviour is in tests/sso/local)."""

from __future__ import annotations

from datetime import timedelta

from scim_server.models import User
from scim_server.services.lockout import LockoutPolicy, attempt_key
from scim_server.services.settings import load_raw


def test_defaults_and_doubling() -> None:
    """10 in 15 minutes, 15 minutes doubled per lock in a row, never past 24 hours."""
    policy = LockoutPolicy.from_settings(load_raw({}))
    assert policy.threshold == 10 and policy.window == timedelta(minutes=15)
    durations = [policy.duration(n) for n in range(8)]
    assert durations[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert durations[-1] == timedelta(hours=24) and policy.duration(500) == timedelta(hours=24)


def test_attempt_key_is_keyed_and_per_account() -> None:
    """Equal for the same text and account; another key or account gives another hash."""
    alice = User(org_id="o", id="a")
    bob = User(org_id="o", id="b")
    key = b"k" * 32
    assert attempt_key(key, alice, "guess") == attempt_key(key, alice, "guess")
    assert attempt_key(key, alice, "guess") != attempt_key(key, bob, "guess")
    assert attempt_key(key, alice, "guess") != attempt_key(b"x" * 32, alice, "guess")
    assert "guess" not in attempt_key(key, alice, "guess")
