"""SCIM and admin API tokens (``/admin/tokens/``): create (the secret shown once), when each
was last used (to the minute: ``services.token_usage``), revoke.

The same services as ``scim-server token create/list/revoke``. After a create the
browser is redirected (a reload must not create a second token) and the secret
rides in the session, sealed, for that one page view, popped as it is shown
(``shown_once``): only its hash is stored, and the pages are never cached.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for

from scim_server.console import shown_once
from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.services import tokens
from scim_server.urls import scim_root

bp = Blueprint("tokens", __name__, url_prefix="/tokens")

KINDS = {"scim": "SCIM (an identity provider provisioning users)", "admin": "Admin API (/api/v1)"}


def _page(status: int = 200, **extra: Any) -> Response:
    s = db.session
    org_id = person().org_id
    listed = tokens.list_tokens(s, org_id)
    listed.sort(key=lambda t: (t.revoked_at is not None, t.name.casefold()))
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "kind": t.kind,
            "created": t.created_at,
            "revoked": t.revoked_at,
            "last_used": t.last_used_at,
        }
        for t in listed
    ]
    s.rollback()
    return render(
        "console/tokens/tokens.html",
        status=status,
        tokens=rows,
        kinds=KINDS,
        scim_root=scim_root(),
        **extra,
    )


_NEW = "console_new_token"  # the secret just created, until the next page shows it


@bp.get("/")
@require("tokens.read")
def list_tokens() -> Response:
    new = shown_once.take(_NEW)
    if new is not None:
        return _page(new_secret=new["secret"], new_name=new["name"], new_kind=new["kind"])
    return _page()


@bp.post("/")
@require("tokens.create")
def create_token() -> Response:
    name = (request.form.get("name") or "").strip()
    kind = request.form.get("kind", "")
    if kind not in KINDS:
        raise InvalidValueError(f"Unknown token kind {kind!r}.")
    if not name or len(name) > 200:
        return _page(400, name_error="A name of 1 to 200 characters.", form=request.form)
    token, secret = tokens.create_token(db.session, person().org_id, name, kind)
    shown_once.keep(_NEW, {"secret": secret, "name": token.name, "kind": kind})
    return redirect(url_for("console.tokens.list_tokens"), code=303)  # type: ignore[return-value]


@bp.post("/<token_id>/revoke")
@require("tokens.write")
def revoke_token(token_id: str) -> Response:
    token = tokens.revoke_token(db.session, person().org_id, token_id)
    flash(f"Token {token.name} revoked: it no longer works.", "ok")
    return redirect(url_for("console.tokens.list_tokens"), code=303)  # type: ignore[return-value]
