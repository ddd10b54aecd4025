"""Faults injected into a write, for the tests of what a failed commit leaves."""

from __future__ import annotations

from typing import Any

import pytest

from scim_server import bulk_rows
from scim_server.audit import recorder
from scim_server.models import Event


def fail_product_events(monkeypatch: pytest.MonkeyPatch, on_call: int = 2) -> Any:
    """From now on, the ``on_call``-th write of product events raises "disk full" (after
    that write's audit events went in). The events go by statements of their own for it:
    by ``bulk_rows.insert_rows`` from two rows, none riding in the audit events' statement
    (PostgreSQL). Returns the real ``insert_rows``, for the test to put back."""
    monkeypatch.setattr(bulk_rows, "COPY_FROM", 2)
    monkeypatch.setattr(recorder, "COMBINED_UP_TO", 0)
    real, calls = bulk_rows.insert_rows, []  # calls: the row count of each write seen

    def failing(connection: Any, model: Any, rows: Any) -> Any:
        if model is Event:
            calls.append(len(rows))
            if len(calls) == on_call:
                raise RuntimeError("disk full")
        return real(connection, model, rows)

    monkeypatch.setattr(bulk_rows, "insert_rows", failing)
    return real
