"""Admin API for mapping rule sets: validate, store, export, preview, activate, apply.

A rule set arrives as a JSON document or as YAML/JSON text
(``{"format": "yaml", "text": "..."}``); either way it is checked against
the organization's licenses and roles, and every problem comes back with its
path in the document (``400 invalid_rule_set``).
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request, url_for
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

import mappings
from scim_server.admin.apidoc import Content, Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, iso, json_object, load, text
from scim_server.admin.jobs_api import JobOut
from scim_server.db import db
from scim_server.models import RuleSet
from scim_server.services import rule_sets
from scim_server.services.jobs import job_to_dict

FORMATS = ("yaml", "json")
MAX_TEXT = 512 * 1024


class TextSource(Schema):
    class Meta:
        unknown = RAISE

    format = fields.String(required=True, validate=validate.OneOf(FORMATS))
    text = fields.String(required=True, validate=validate.Length(max=MAX_TEXT))


class NewRuleSet(Schema):
    class Meta:
        unknown = RAISE

    name = text(200, min_length=1, required=True)
    document = fields.Raw(allow_none=False)
    format = fields.String(validate=validate.OneOf(FORMATS))
    text = fields.String(validate=validate.Length(max=MAX_TEXT))


class ExportArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    format = fields.String(load_default="yaml", validate=validate.OneOf(FORMATS))


# A rule set: the document itself (JSON), ``{"document": ...}``, or ``{"format", "text"}``
# (TextSource); checked by ``services.rule_sets`` with every problem and its path.
RULE_SET_BODY = Content(("application/json",), {"type": "object"})


class RuleSetOut(Out):
    """A stored rule set version (with its document where the route says so)."""

    id = always(fields.String)
    name = always(fields.String)
    version = always(fields.Integer)
    active = always(fields.Boolean)
    created_at = nullable(fields.String)
    activated_at = nullable(fields.String)
    document = fields.Raw()


class RuleSetListOut(Out):
    """Every stored version, oldest first."""

    rule_sets = always(fields.List, cls_or_instance=fields.Nested(RuleSetOut))


class ValidOut(Out):
    """The document is valid (problems are a 400 ``invalid_rule_set``)."""

    valid = always(fields.Boolean)


class PreviewOut(Out):
    """What activating the rules would change, user by user; nothing is changed."""

    users = always(fields.Integer)
    would_change = always(fields.Integer)
    given_by_other_rules = always(fields.Integer)
    license_moves = always(fields.Dict)
    roles_added = always(fields.Dict)
    roles_removed = always(fields.Dict)
    # Users the seats do not fit, by license: waiting (lenient) or refused (strict).
    license_shortages = always(fields.Dict)
    license_refusals = always(fields.Dict)
    contact_changes = always(fields.Dict)  # contact fields the rules set, by field
    examples = always(fields.List, cls_or_instance=fields.Dict())


def document_from(body: dict[str, Any]) -> Any:
    """The rule set a request carries: ``{"format", "text"}``, ``{"document"}`` or the body."""
    if "text" in body or "format" in body:
        source = load(TextSource, body)
        document = rule_sets.parse_text(source["text"], source["format"])
        rule_sets.check_storable(document)
        return document
    if set(body) == {"document"}:
        return body["document"]
    return body


def rule_set_to_dict(rs: RuleSet, *, document: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rs.id,
        "name": rs.name,
        "version": rs.version,
        "active": rs.active,
        "created_at": iso(rs.created_at),
        "activated_at": iso(rs.activated_at),
    }
    if document:
        out["document"] = rs.document
    return out


@bp.post("/rulesets/validate")
@api_doc(tag="rulesets", body=RULE_SET_BODY, response=ValidOut)
def validate_rule_set() -> Response:
    """200 ``{"valid": true}``, or 400 with every problem and its path."""
    rule_sets.validate_document(db.session, g.org_id, document_from(json_object()))
    return jsonify(valid=True)


@bp.post("/rulesets")
@audited("ruleset.create")
@api_doc(tag="rulesets", body=NewRuleSet, response=RuleSetOut, status=201)
def create_rule_set() -> tuple[Response, int]:
    """Store a new version (not yet active): ``{name, document}`` or ``{name, format, text}``."""
    body = load(NewRuleSet, json_object())
    has_text = "text" in body or "format" in body
    if has_text == ("document" in body):
        raise ValidationError("Give either document, or format and text.", "document")
    name = body.pop("name")
    document = document_from(body)
    rs = rule_sets.create_rule_set(db.session, g.org_id, name, document)
    return jsonify(rule_set_to_dict(rs, document=True)), 201


@bp.get("/rulesets")
@api_doc(tag="rulesets", response=RuleSetListOut)
def list_rule_sets() -> Response:
    """Every stored version, oldest first; at most one is active."""
    rows = rule_sets.list_rule_sets(db.session, g.org_id)
    return jsonify(rule_sets=[rule_set_to_dict(rs) for rs in rows])


@bp.get("/rulesets/<rule_set_id>")
@api_doc(tag="rulesets", response=RuleSetOut)
def get_rule_set(rule_set_id: str) -> Response:
    rs = rule_sets.get_rule_set(db.session, g.org_id, rule_set_id)
    return jsonify(rule_set_to_dict(rs, document=True))


@bp.get("/rulesets/<rule_set_id>/export")
@api_doc(
    tag="rulesets", query=ExportArgs, response=Content(("application/yaml", "application/json"), {})
)
def export_rule_set(rule_set_id: str) -> Response:
    """The document as YAML (default) or JSON text, ready to edit and import again."""
    fmt = load(ExportArgs, request.args)["format"]
    rs = rule_sets.get_rule_set(db.session, g.org_id, rule_set_id)
    resp = Response(mappings.dump(rs.document, fmt), mimetype=f"application/{fmt}")
    resp.headers["Content-Disposition"] = f'inline; filename="rules-v{rs.version}.{fmt}"'
    return resp


@bp.post("/rulesets/<rule_set_id>/activate")
@audited("ruleset.activate")
@api_doc(tag="rulesets", response=RuleSetOut)
def activate_rule_set(rule_set_id: str) -> Response:
    """Make this version the active one; users move on their next change or on apply."""
    rs = rule_sets.activate(db.session, g.org_id, rule_set_id)
    return jsonify(rule_set_to_dict(rs))


def _preview(document: Any) -> Response:
    session = db.session
    try:
        document = rule_sets.with_settings_defaults(session, g.org_id, document)
        return jsonify(rule_sets.preview(session, g.org_id, document))
    finally:
        session.rollback()  # a preview changes nothing, whatever happened


@bp.post("/rulesets/preview")
@api_doc(tag="rulesets", body=RULE_SET_BODY, response=PreviewOut)
def preview_document() -> Response:
    """What activating this document would change, user by user; changes nothing."""
    return _preview(document_from(json_object()))


@bp.post("/rulesets/<rule_set_id>/preview")
@api_doc(tag="rulesets", response=PreviewOut)
def preview_rule_set(rule_set_id: str) -> Response:
    """What activating this stored version would change; changes nothing."""
    document = rule_sets.get_rule_set(db.session, g.org_id, rule_set_id).document
    return _preview(document)


@bp.post("/rulesets/apply")
@audited("ruleset.apply")
@api_doc(tag="rulesets", response=JobOut, status=202)
def apply_rule_set() -> tuple[Response, int, dict[str, str]]:
    """Queue a re-evaluation of every user against the active rules; manual choices stay.

    It can outlast any request (100,000 users), so ``scim-server worker`` runs
    it: 202 with the job, whose state and progress ``Location`` shows.
    """
    job = rule_sets.start_apply(db.session, g.org_id)
    return jsonify(job_to_dict(job)), 202, {"Location": url_for("admin.get_job", job_id=job.id)}
