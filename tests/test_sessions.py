"""Signed-cookie sessions with the signer kept per key set (``scim_server.sessions``)."""

from __future__ import annotations

from flask import Flask, session

from scim_server.sessions import SessionCookies


def _app(key: str, fallbacks: list[str] | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = key
    app.config["SECRET_KEY_FALLBACKS"] = fallbacks or []
    app.session_interface = SessionCookies()

    @app.post("/set")
    def put() -> str:
        session["who"] = "ada"
        return ""

    @app.get("/get")
    def get() -> str:
        return str(session.get("who"))

    return app


def test_a_session_set_in_one_request_is_read_in_the_next():
    client = _app("k1").test_client()
    client.post("/set")
    assert client.get("/get").text == "ada"


def test_a_changed_key_is_used_at_once_and_fallbacks_still_open_old_cookies():
    """The kept signer follows the keys: a rotated key refuses old cookies unless the old
    key is a fallback (Flask's own behaviour, which the cache must not change)."""
    app = _app("k1")
    client = app.test_client()
    client.post("/set")
    app.secret_key = "k2"
    assert client.get("/get").text == "None"
    client.post("/set")  # signed with k2
    app.secret_key = "k3"
    app.config["SECRET_KEY_FALLBACKS"] = ["k2"]
    assert client.get("/get").text == "ada"


def test_no_key_no_session_signer():
    app = _app("")
    assert app.session_interface.get_signing_serializer(app) is None
