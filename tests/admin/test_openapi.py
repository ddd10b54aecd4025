"""The OpenAPI description of /api/v1 is in step with the routes the app really serves."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Blueprint, Flask, jsonify

from scim_server import create_app
from scim_server.admin.apidoc import api_doc
from scim_server.admin.openapi import SPEC_PATH, admin_rules, build_spec, methods, openapi_path


def _served(app: Flask) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every url rule under /api/v1."""
    return {(m, openapi_path(rule)) for rule in admin_rules(app) for m in methods(rule)}


def _documented(spec: dict) -> set[tuple[str, str]]:
    return {(m, path) for path, ops in spec["paths"].items() for m in ops if m != "parameters"}


def _out_of_step(app: Flask, spec: dict) -> tuple[list, list]:
    served, documented = _served(app), _documented(spec)
    return sorted(served - documented), sorted(documented - served)


def test_every_route_is_documented_and_nothing_else(client, app):
    """Each /api/v1 rule and method is in the served description, and every path there exists.

    A new route fails here until its view has ``@api_doc(...)`` (see admin/apidoc.py).
    """
    resp = client.get(SPEC_PATH)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    spec = resp.get_json()
    assert spec["openapi"] == "3.1.0"
    undocumented, phantom = _out_of_step(app, spec)
    assert undocumented == [], f"routes without @api_doc: {undocumented}"
    assert phantom == [], f"documented but not served: {phantom}"
    assert len(spec["paths"]) >= 40


def test_the_check_fails_for_an_undocumented_route(tmp_path):
    """A route added under /api/v1 without a mark is reported; once marked, it is documented."""
    extra = Blueprint("extra_api", __name__, url_prefix="/api/v1")

    @extra.get("/widgets")
    def list_widgets():
        return jsonify(widgets=[])

    @extra.post("/widgets")
    @api_doc(tag="widgets", status=201)
    def create_widget():
        return jsonify(), 201

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    app.register_blueprint(extra)
    undocumented, phantom = _out_of_step(app, build_spec(app))
    assert undocumented == [("get", "/api/v1/widgets")]
    assert phantom == []


def test_the_description_names_auth_errors_and_schemas(client):
    """Bearer admin tokens, one error shape for every route, schemas from marshmallow."""
    spec = client.get(SPEC_PATH).get_json()
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert spec["security"] == [{"adminToken": []}]
    assert spec["paths"][SPEC_PATH]["get"]["security"] == []
    users = spec["paths"]["/api/v1/users"]["get"]
    assert {p["name"] for p in users["parameters"]} >= {"offset", "limit", "status", "license"}
    assert users["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    license_body = spec["paths"]["/api/v1/users/{user_id}/license"]["put"]["requestBody"]
    assert license_body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LicenseBody"
    }
    assert spec["components"]["schemas"]["UserOut"]["properties"]["userName"]["type"] == "string"
    assert spec["paths"]["/api/v1/users/{user_id}"]["delete"]["responses"]["204"]


def test_the_description_loads_as_openapi(client):
    """schemathesis reads it as an OpenAPI 3.1 schema with every operation."""
    spec = client.get(SPEC_PATH).get_json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == len(_documented(spec))


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/audit"])
def test_the_data_still_needs_a_token(client, path):
    """The description is public; the API behind it is not."""
    assert client.get(path).status_code == 401
