"""The recorder's pieces that need no database: which columns a write's events share."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from scim_server.audit import recorder
from tests.audit.test_canonical import EVENT


def test_shared_columns_are_those_every_event_holds_alike():
    """Same value and type in every event: bound once (``e0_<column>``); a later time, a
    True where another has 1, or a None against a value: each event its own."""
    second = replace(
        EVENT,
        occurred_at=EVENT.occurred_at + timedelta(microseconds=1),
        action="user.deactivate",
        changes={"status": {"before": "ACTIVE", "after": "DEACTIVATED"}},
    )
    shared = recorder._shared([EVENT, second])
    assert shared == frozenset(recorder._SHAREABLE) - {"occurred_at"}
    assert "received_at" in shared  # None in both
    third = replace(second, external_id=None, actor_id="tok_2")
    assert recorder._shared([EVENT, second, third]) == shared - {"external_id", "actor_id"}
    assert "org_id" not in recorder._shared([EVENT, replace(EVENT, org_id="org-2")])


def test_shared_compares_types_too():
    one, true = replace(EVENT, resource_id=1), replace(EVENT, resource_id=True)  # type: ignore[arg-type]
    assert "resource_id" not in recorder._shared([one, true])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    same_time = [replace(EVENT, occurred_at=now), replace(EVENT, occurred_at=now)]
    assert "occurred_at" in recorder._shared(same_time)
