"""Fixtures for the local sign-in: a licensed person with a password, a clock the test moves."""

from __future__ import annotations

import pytest
from flask import Flask

from sso.extension import sso_extension
from tests.support import Clock, Scim
from tests.support.local import give_password
from tests.support.sso import make_person

LOGIN = "alice@example.com"


@pytest.fixture
def clock(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The time the sign-in, the lockout and TOTP read, moved by hand."""
    fake = Clock()
    monkeypatch.setattr(sso_extension(app), "clock", fake)
    return fake


@pytest.fixture
def person(app: Flask, scim: Scim, clock: Clock) -> str:
    """alice@example.com: licensed, with the password ``tests.support.local.PASSWORD``."""
    user_id = make_person(app, scim, LOGIN)
    give_password(app, scim.org_id, user_id)
    return user_id
