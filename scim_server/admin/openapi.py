"""The OpenAPI 3.1 description of ``/api/v1``, generated from the routes and their schemas.

Every url rule under ``/api/v1`` of the running app, with the ``@api_doc`` mark of its
view (``admin.apidoc``) and the marshmallow schemas it names, through apispec's
marshmallow plugin. Served at ``/api/v1/openapi.json`` without a token: the
contract is public, the data is not.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify
from marshmallow import Schema
from werkzeug.routing import Rule

from scim_server.admin.apidoc import ApiDoc, Body, Content, ErrorOut, api_doc, doc_of

PREFIX = "/api/v1"
SPEC_PATH = f"{PREFIX}/openapi.json"
_METHODS = ("get", "put", "post", "patch", "delete")
_ARG = re.compile(r"<(?:[a-zA-Z_]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")

bp = Blueprint("admin_docs", __name__)


def admin_rules(app: Flask) -> list[Rule]:
    """Every url rule of the admin API, whichever blueprint serves it."""
    return sorted(
        (
            r
            for r in app.url_map.iter_rules()
            if r.rule == PREFIX or r.rule.startswith(PREFIX + "/")
        ),
        key=lambda r: (r.rule, r.endpoint),
    )


def openapi_path(rule: Rule) -> str:
    """``/api/v1/users/<user_id>`` → ``/api/v1/users/{user_id}``."""
    return _ARG.sub(r"{\1}", rule.rule)


def methods(rule: Rule) -> list[str]:
    return [m for m in _METHODS if m.upper() in (rule.methods or ())]


def build_spec(app: Flask) -> dict[str, Any]:
    """The description of every documented route (undocumented ones are the test's to report)."""
    spec = APISpec(
        title="scim-server admin API",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "The organization admin API. Authenticate with an admin token "
                "(`scim-server token create --admin`) as `Authorization: Bearer <token>`. "
                'Every error is `{"error": ..., "detail": ...}` with its HTTP status.'
            )
        },
        servers=[{"url": "/"}],
        security=[{"adminToken": []}],
    )
    spec.components.security_scheme("adminToken", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorOut)
    paths: dict[str, dict[str, Any]] = {}
    for rule in admin_rules(app):
        doc = doc_of(app.view_functions[rule.endpoint])
        if doc is None:
            continue
        ops = paths.setdefault(openapi_path(rule), {})
        for method in methods(rule):
            ops[method] = _operation(app, rule, method, doc)
    for path, ops in paths.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


def _operation(app: Flask, rule: Rule, method: str, doc: ApiDoc) -> dict[str, Any]:
    view = app.view_functions[rule.endpoint]
    summary, _, description = (view.__doc__ or rule.endpoint.replace("_", " ")).partition("\n")
    params: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
        for name in _ARG.findall(rule.rule)
    ]
    if doc.query is not None:
        params.append({"in": "query", "schema": doc.query})
    op: dict[str, Any] = {
        "operationId": rule.endpoint.replace(".", "_") + ("" if method != "head" else "_head"),
        "summary": summary.strip(),
        "tags": [doc.tag],
        "parameters": params,
        "responses": {str(status): _response(body) for status, body in doc.responses.items()},
    }
    op["responses"]["default"] = {
        "description": "An error: 400 invalid input, 401 no or bad admin token, 404 not found, "
        "409 conflict, 415 wrong media type, 503 database unavailable.",
        "content": {"application/json": {"schema": "Error"}},
    }
    if description.strip():
        op["description"] = " ".join(description.split())
    if doc.body is not None:
        op["requestBody"] = {"required": doc.body_required, "content": _content(doc.body)}
    if doc.public:
        op["security"] = []
    return op


def _content(body: Body) -> dict[str, Any]:
    if isinstance(body, Content):
        return {media: {"schema": body.schema} for media in body.media_types}
    return {"application/json": {"schema": body}}


def _response(body: Body) -> dict[str, Any]:
    if body is None:
        return {"description": "Done; no content."}
    name = body.__name__ if isinstance(body, type) and issubclass(body, Schema) else None
    description = (body.__doc__ if name else None) or "The result."
    return {"description": description.strip().split("\n")[0], "content": _content(body)}


@bp.get(SPEC_PATH)
@api_doc(tag="meta", response=Content(("application/json",), {"type": "object"}), public=True)
def openapi_json() -> Response:
    """This description (OpenAPI 3.1), generated from the routes and their schemas."""
    spec = current_app.extensions.get("admin_openapi")
    if spec is None:
        spec = current_app.extensions["admin_openapi"] = build_spec(current_app)
    return jsonify(spec)
