"""sso.local.web: an unknown account's refusal is padded to what a known one's takes."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from sso.extension import sso_extension
from sso.local import web


def test_unknown_refusal_sleeps_up_to_the_known_median(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known refusals are remembered; an unknown one sleeps the difference (capped), never more."""
    slept: list[float] = []
    monkeypatch.setattr(web.time, "sleep", slept.append)
    monkeypatch.setattr(
        sso_extension(app), "refusal_seconds", type(sso_extension(app).refusal_seconds)(maxlen=31)
    )
    with app.app_context():
        web.even_out(time.perf_counter(), account_found=False)
        assert slept == []  # nothing known yet: nothing to match
        recent = sso_extension(app).refusal_seconds
        recent.extend([0.2, 0.3, 0.25])
        web.even_out(time.perf_counter(), account_found=False)
        assert len(slept) == 1 and 0.2 < slept[0] <= 0.25
        web.even_out(time.perf_counter() - 1.0, account_found=False)  # already slower
        assert len(slept) == 1
        recent.extend([5.0] * 10)
        web.even_out(time.perf_counter(), account_found=False)
        assert slept[-1] == web.MAX_PAD_SECONDS
        web.even_out(time.perf_counter() - 0.01, account_found=True)
        assert len(recent) == 14 and recent[-1] >= 0.01
