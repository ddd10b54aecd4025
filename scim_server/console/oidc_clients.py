"""The organization's OpenID Connect clients (``/admin/oidc-clients/``): apps that sign its
people in through our provider. Create (the secret shown once), revoke.

The same service as ``scim-server oauth client create --org``; clients without an
organization (the product itself) belong to the operator and are not shown.

Read with ``sso.read``; registering and revoking need ``sso.configure`` (org admins), as
making an SSO connection does: a client is handed the identity of whoever of the
organization opens its sign-in link (no consent asked), org admins included, at the
redirect URIs it names, so a security admin's own client would receive the org admin's.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for

from scim_server.console import shown_once
from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import DomainError
from scim_server.urls import public_url
from sso.provider import clients

bp = Blueprint("oidc", __name__, url_prefix="/oidc-clients")

_NEW = "console_new_client"  # the client just created, until the next page shows its secret


def _page(status: int = 200, **extra: Any) -> Response:
    s = db.session
    rows = [
        {
            "client_id": c.client_id,
            "name": c.name,
            "public": c.is_public,
            "redirect_uris": list(c.redirect_uris),
            "created": c.created_at,
            "revoked": c.revoked_at,
        }
        for c in clients.list_org_clients(s, person().org_id)
    ]
    s.rollback()
    return render(
        "console/oidc/clients.html",
        status=status,
        clients=rows,
        issuer=public_url(),
        **extra,
    )


@bp.get("/")
@require("sso.read")
def list_clients() -> Response:
    return _page(new=shown_once.take(_NEW))


@bp.post("/")
@require("sso.configure")
def create_client() -> Response:
    name = (request.form.get("name") or "").strip()
    uris = [u.strip() for u in (request.form.get("redirect_uris") or "").splitlines() if u.strip()]
    public = "public" in request.form
    try:
        client, secret = clients.create_client(
            db.session, name, uris, public=public, org_id=person().org_id
        )
    except DomainError as err:
        db.session.rollback()
        return _page(err.status, problem=err.detail, form=request.form)
    shown_once.keep(_NEW, {"client_id": client.client_id, "name": client.name, "secret": secret})
    return redirect(url_for("console.oidc.list_clients"), code=303)  # type: ignore[return-value]


@bp.post("/<client_id>/revoke")
@require("sso.configure")
def revoke_client(client_id: str) -> Response:
    client = clients.revoke_client(db.session, person().org_id, client_id)
    flash(f"Client {client.name} revoked: it can no longer sign anyone in.", "ok")
    return redirect(url_for("console.oidc.list_clients"), code=303)  # type: ignore[return-value]
