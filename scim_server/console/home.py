"""The console's landing page: where the person is, and the areas their roles open."""

from __future__ import annotations

from flask import Blueprint, Response

from scim_server.console.render import render

bp = Blueprint("home", __name__)


@bp.get("/")
def overview() -> Response:
    """Any console role reaches it (the menu lists what each role opens)."""
    return render("console/home/overview.html")
