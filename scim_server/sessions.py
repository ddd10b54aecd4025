"""Flask's signed-cookie sessions, with the signer built once per set of keys.

Flask builds a new ``URLSafeTimedSerializer`` on every request that opens or saves a
session, SCIM and API requests included (they carry no cookie, but the session is
opened for them all the same): 33 us a request, 2-4 % of a GET by id. The signer
depends only on the secret key, its fallbacks and this interface's settings, so it is
kept per key set and rebuilt when a key changes. A request that carries no cookie and
leaves its session untouched costs nothing more: no cookie parsing, no settings read.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions: the signer kept per key set, and nothing done for a
    request without cookies (every SCIM and API request) whose session stays unused."""

    def __init__(self) -> None:
        self._signers: dict[Any, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        signer = self._signers.get(keys)
        if signer is None:
            signer = super().get_signing_serializer(app)
            self._signers = {keys: signer}  # the key set in use; a rotated one is dropped
        return signer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ:
            # No cookie to read: what Flask's open_session answers, without parsing cookies.
            return None if self.get_signing_serializer(app) is None else self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            # Flask's would look up every cookie setting, then return: nothing to set,
            # delete or vary on.
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = SessionCookies()
