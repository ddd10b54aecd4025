"""Mapping rules (``/admin/rules``): edit the YAML, validate, preview, versions, activate, apply.

The same ``services.rule_sets`` calls as the admin API's ``/api/v1/rulesets``:
validate and preview change nothing (``rules.read``: auditors may check a
draft); saving a version needs ``rules.write`` (a saved version acts on nobody);
activating and applying need ``rules.activate`` (org admins: active rules act on
every account, theirs included). Apply re-evaluates every user, so it is a job for
``scim-server worker`` (as through the API); its page follows the job's progress.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from flask import Blueprint, Response, redirect, request, url_for

import mappings
from mappings.locate import line_of
from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.services import jobs, rule_sets

bp = Blueprint("rules", __name__, url_prefix="/rules")

MAX_TEXT = 512 * 1024
EXAMPLE = """\
# Mapping rules: the first rule that matches decides (mode: first-match).
mode: first-match
rules:
  - name: engineering
    when: {member_of: Engineering}
    then:
      license: Engineer
      roles: [Engineer]
"""

log = logging.getLogger(__name__)


def _yaml(document: Any) -> str:
    return mappings.dump(document, "yaml")


def _problems(text: str, err: rule_sets.RuleSetInvalidError) -> list[dict[str, Any]]:
    """Each problem with the line of the editor it is at (when it can be found).

    The line is a help to the reader, the problem is the answer: text that cannot be
    located (nested past the parser's limit, say) is reported without a line, never a 500.
    """

    def line(problem: dict[str, Any]) -> int | None:
        try:
            return line_of(text, problem["path"], problem["message"])
        except Exception:  # a line is optional: the problem is still reported
            log.warning(
                "No editor line for the rules problem at %s", problem["path"], exc_info=True
            )
            return None

    return sorted(
        ({**p, "line": line(p)} for p in err.problems),
        key=lambda p: (p["line"] is None, p["line"] or 0),
    )


def _draft() -> str:
    text = request.form.get("text", "")
    if len(text) > MAX_TEXT:
        raise rule_sets.RuleSetInvalidError(
            [{"path": "$", "message": f"The text is longer than {MAX_TEXT} characters."}]
        )
    return text


def _check(text: str) -> tuple[Any, list[dict[str, Any]]]:
    """The document in ``text`` if it is valid, else every problem with its line."""
    try:
        document = rule_sets.parse_text(text, "yaml")
        rule_sets.check_storable(document)
        rule_sets.validate_document(db.session, person().org_id, document)
    except rule_sets.RuleSetInvalidError as err:
        return None, _problems(text, err)
    finally:
        db.session.rollback()
    return document, []


def _page(text: str, *, status: int = 200, block: str | None = None, **extra: Any) -> Response:
    versions = rule_sets.list_rule_sets(db.session, person().org_id)
    return render(
        "console/rules/index.html",
        block=block,
        status=status,
        text=text,
        versions=list(reversed(versions)),
        **{"problems": None, "preview": None, "saved": None, **extra},
    )


@bp.get("/")
@require("rules.read")
def edit_rules() -> Response:
    """The editor holds the active version (else the newest, else an example)."""
    versions = rule_sets.list_rule_sets(db.session, person().org_id)
    current = next((v for v in versions if v.active), versions[-1] if versions else None)
    text = _yaml(current.document) if current else EXAMPLE
    return _page(text, base=current)


@bp.post("/validate")
@require("rules.read")
def validate_draft() -> Response:
    text = _draft()
    _document, problems = _check(text)
    return _page(text, block="checks", problems=problems)


@bp.post("/preview")
@require("rules.read")
def preview_draft() -> Response:
    """Who would move if this draft were active: counts and examples; changes nothing."""
    text = _draft()
    document, problems = _check(text)
    if problems:
        return _page(text, block="checks", problems=problems)
    return _page(text, block="checks", preview=_preview(document))


def _preview(document: Any) -> dict[str, Any]:
    session = db.session
    try:
        document = rule_sets.with_settings_defaults(session, person().org_id, document)
        return rule_sets.preview(session, person().org_id, document)
    finally:
        session.rollback()  # a preview changes nothing, whatever happened


@bp.post("/")
@require("rules.write")
def save_version() -> Response:
    """Store the draft as a new version (not active yet)."""
    text = _draft()
    document, problems = _check(text)
    if problems:
        return _page(text, status=422, problems=problems)
    name = (request.form.get("name") or "").strip() or "rules"
    rs = rule_sets.create_rule_set(db.session, person().org_id, name, document)
    return redirect(url_for("console.rules.show_version", rule_set_id=rs.id), code=303)  # type: ignore[return-value]


@bp.get("/versions/<rule_set_id>")
@require("rules.read")
def show_version(rule_set_id: str) -> Response:
    """One version: its YAML, the diff from another version (default: the one before)."""
    org_id = person().org_id
    rs = rule_sets.get_rule_set(db.session, org_id, rule_set_id)
    versions = rule_sets.list_rule_sets(db.session, org_id)
    against_id = request.args.get("against")
    earlier = [v for v in versions if v.version < rs.version]
    against = next((v for v in versions if v.id == against_id), earlier[-1] if earlier else None)
    diff = None
    if against is not None and against.id != rs.id:
        diff = list(
            difflib.unified_diff(
                _yaml(against.document).splitlines(),
                _yaml(rs.document).splitlines(),
                f"version {against.version}",
                f"version {rs.version}",
                lineterm="",
            )
        )
    return render(
        "console/rules/version.html",
        rs=rs,
        text=_yaml(rs.document),
        versions=versions,
        against=against,
        diff=diff,
        preview=None,
        active_nav="console.rules.edit_rules",
    )


@bp.post("/versions/<rule_set_id>/preview")
@require("rules.read")
def preview_version(rule_set_id: str) -> Response:
    rs = rule_sets.get_rule_set(db.session, person().org_id, rule_set_id)
    return render(
        "console/rules/version.html",
        block="preview",
        rs=rs,
        preview=_preview(rs.document),
        text="",
        versions=[],
        against=None,
        diff=None,
        active_nav="console.rules.edit_rules",
    )


@bp.post("/versions/<rule_set_id>/activate")
@require("rules.activate")
def activate_version(rule_set_id: str) -> Response:
    """Make this version the active one; users move on their next change or on Apply."""
    rule_sets.activate(db.session, person().org_id, rule_set_id)
    return redirect(  # type: ignore[return-value]
        url_for("console.rules.show_version", rule_set_id=rule_set_id, activated=1), code=303
    )


@bp.post("/apply")
@require("rules.activate")
def apply_rules() -> Response:
    """Queue the re-evaluation of every user (a job for the worker); follow its progress."""
    job = rule_sets.start_apply(db.session, person().org_id)
    return redirect(url_for("console.rules.show_job", job_id=job.id), code=303)  # type: ignore[return-value]


@bp.get("/jobs/<job_id>")
@require("rules.read")
def show_job(job_id: str) -> Response:
    job = jobs.get_job(db.session, person().org_id, job_id)
    return render(
        "console/rules/job.html",
        block="status",
        job=jobs.job_to_dict(job),
        active_nav="console.rules.edit_rules",
    )
