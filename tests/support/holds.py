"""Hold one request inside its transaction while another runs (PostgreSQL races).

``Hold`` wraps a service function whose first argument is a Session: on its first call that
``when`` accepts, the real function runs (``before=False``) and then the racer runs in a
thread until it ends or waits for a lock the holder's backend holds
(``tests.support.pg_locks.ended_or_waiting``); then the holder goes on. Nothing depends on
how fast either side runs: a test asserts ``waited`` to say which of the two happened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from scim_server.db import db
from tests.support import Scim
from tests.support.pg_locks import LIMIT_SECONDS, backend_pid, ended_or_waiting


def postgresql_only(app: Flask) -> None:
    """Skip on SQLite, whose writers take the database lock at BEGIN: nothing runs between."""
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("PostgreSQL race: SQLite's writers take the database lock at BEGIN")


def main_thread_only() -> Callable[..., bool]:
    """A ``when`` for ``Hold``: only the calls of the thread that made it (not the racer's)."""
    main = threading.get_ident()
    return lambda *args, **kwargs: threading.get_ident() == main


def client_like(app: Flask, scim: Scim) -> Scim:
    """Another client with the same token (a thread's own test client)."""
    return Scim(app.test_client(), scim.token, scim.org_id)


class Hold:
    """Wrap ``module.name`` (first argument a Session); see the module's docstring.

    ``before``: the racer runs before the real function, not after. ``results``: what the
    racer returned; ``waited``: whether it waited for a lock of the holder (else it ended).
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        app: Flask,
        module: Any,
        name: str,
        racer: Callable[[], Any],
        when: Callable[..., bool] = lambda *a, **k: True,
        before: bool = False,
    ) -> None:
        self.results: list[Any] = []
        self.waited: list[bool] = []
        self.threads: list[threading.Thread] = []
        real = getattr(module, name)

        def wrapped(session: Any, *args: Any, **kwargs: Any) -> Any:
            if before:
                self._race(app, session, racer, args, kwargs, when)
            out = real(session, *args, **kwargs)
            if not before:
                self._race(app, session, racer, args, kwargs, when)
            return out

        monkeypatch.setattr(module, name, wrapped)

    def _race(
        self,
        app: Flask,
        session: Any,
        racer: Callable[[], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        when: Callable[..., bool],
    ) -> None:
        if self.threads or not when(*args, **kwargs):
            return
        thread = threading.Thread(target=lambda: self.results.append(racer()))
        self.threads.append(thread)
        thread.start()
        self.waited.append(
            ended_or_waiting(thread, db.engine(app), backend_pid(session.connection()))
        )

    def join(self) -> None:
        for t in self.threads:
            t.join(LIMIT_SECONDS)
