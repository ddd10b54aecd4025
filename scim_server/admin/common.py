"""What the admin views share: strict JSON bodies, arguments, refusals in the log.

Bodies are parsed as strictly as SCIM bodies (no duplicate keys, no NaN, no
NUL, bounded depth): an admin tool must not have a typo guessed at either.
Every refused change is written to the log too, in a transaction of its own,
because "someone tried to give Bob a license and was told no" is evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.exceptions import UnsupportedMediaType

from scim_server.admin.blueprint import bp
from scim_server.audit import record_failure
from scim_server.db import db, release
from scim_server.errors import InvalidSyntaxError
from scim_server.scim.body import parse_json
from scim_server.services.rule_sets import RuleSetInvalidError
from scim_server.text import MAX_INT

F = TypeVar("F", bound=Callable[..., Any])
MAX_PAGE = 1000


def _no_nul(value: str) -> None:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValidationError("NUL characters are not allowed.")


def text(max_length: int, *, min_length: int = 0, **kwargs: Any) -> fields.String:
    """A string field with a length bound and no NUL characters."""
    return fields.String(
        validate=[validate.Length(min=min_length, max=max_length), _no_nul], **kwargs
    )


class JsonBoolean(fields.Boolean):
    """``true`` or ``false`` only. marshmallow's ``truthy={True}`` let ``1`` and ``0`` in
    (``1 == True``, one hash): ``{"override": 1}`` overrode a warning."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _comparable(value: datetime) -> None:
    # The database holds UTC: a time whose UTC form is outside year 1..9999 cannot be
    # stored or compared (9999-12-31T23:59:59-14:00 is in year 10000 at UTC).
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValidationError("Not a time between years 1 and 9999 in UTC.") from None


def instant(**kwargs: Any) -> fields.AwareDateTime:
    """An ISO 8601 time with its zone, whose UTC form a datetime (and a column) can hold."""
    return fields.AwareDateTime(validate=_comparable, **kwargs)


class PageArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_INT))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_PAGE))


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def json_object(*, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; ``optional``: an empty body is ``{}``."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Unsupported content type {mimetype!r}; send application/json.")
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return {}
    value = parse_json(raw)  # strict JSON; raises InvalidSyntaxError
    if not isinstance(value, dict):
        raise InvalidSyntaxError("The body must be a JSON object.")
    return value


def load(schema: type[Schema], data: Any, **kwargs: Any) -> dict[str, Any]:
    """Validate with marshmallow; a ValidationError becomes the blueprint's 400."""
    result: dict[str, Any] = schema(**kwargs).load(data)
    return result


def page(total: int, offset: int, limit: int, key: str, items: list[Any]) -> Response:
    return jsonify(total=total, offset=offset, limit=limit, **{key: items})


@bp.errorhandler(RuleSetInvalidError)
def _invalid_rule_set(err: RuleSetInvalidError) -> tuple[Response, int]:
    """Every problem, each with its path in the document, so an admin can fix them all at once."""
    return jsonify(error="invalid_rule_set", detail=err.detail, problems=err.problems), 400


# -- refused changes in the log ---------------------------------------------------------

# The view attribute ``audited`` sets: the action a refusal of the view is recorded as.
AUDIT_ACTION = "audit_action"
_RESOURCE_TYPES = {
    "user": "User",
    "contact": "Contact",
    "license": "License",
    "mail": "Mail",
    "role": "Role",
    "ruleset": "RuleSet",
    "settings": "Organization",
    "webhook": "Webhook",
}
# Actions whose resource is not named by their first word (the SSO blueprint's).
_RESOURCE_PREFIXES = (
    ("sso.connection.", "SsoConnection"),
    ("sso.certificate.", "SsoConnection"),
    ("sso.domain.", "SsoEmailDomain"),
    ("sso.identity_unlinked", "User"),
)
_RESOURCE_ARGS = (
    "user_id",
    "contact_id",
    "license_id",
    "role_id",
    "rule_set_id",
    "mail_id",
    "webhook_id",
    "connection_id",
    "domain",
)


def _resource_type(action: str) -> str | None:
    """The refused action's resource type, as its success event names it."""
    for prefix, kind in _RESOURCE_PREFIXES:
        if action.startswith(prefix):
            return kind
    return _RESOURCE_TYPES.get(action.split(".")[0])


def audited(action: str | Callable[[dict[str, Any]], str]) -> Callable[[F], F]:
    """Mark a view as a change: a refusal of it is recorded as a failure of ``action``.

    ``action`` is the event name, or a function of the URL's arguments that names
    it. It is kept on the view itself (the app's ``view_functions`` hold it), so no
    table is filled at import time.
    """

    def mark(view: F) -> F:
        setattr(view, AUDIT_ACTION, action)
        return view

    return mark


def audit_action(endpoint: str | None) -> str | Callable[[dict[str, Any]], str] | None:
    """The action ``audited`` gave the view of ``endpoint`` in the current app, if any."""
    view = current_app.view_functions.get(endpoint or "")
    return getattr(view, AUDIT_ACTION, None)


def _resource_id(action: str, args: dict[str, Any]) -> str | None:
    if action.startswith("settings."):
        org_id: str = g.org_id
        return org_id
    return next((args[k] for k in _RESOURCE_ARGS if k in args), None)


@bp.after_request
def _record_refusal(resp: Response) -> Response:
    action = audit_action(request.endpoint)
    if action is None or resp.status_code < 400 or not g.get("org_id"):
        return resp
    if resp.status_code == 503:
        return resp  # the database is down: there is nowhere to write the failure event
    args = request.view_args or {}
    name = action(args) if callable(action) else action
    session = g.get("_scim_session")
    if session is not None and session.in_transaction():
        # Release any lock before the failure event's own transaction; a dead
        # connection is discarded here, not raised over the client's answer.
        release(session)
    error = resp.get_json(silent=True) or {}
    detail = error.get("detail")
    record_failure(
        db.writer(),
        g.org_id,
        name,
        resource_type=_resource_type(name),
        resource_id=_resource_id(name, args),
        status=resp.status_code,
        detail=detail if isinstance(detail, str) or detail is None else json.dumps(detail),
    )
    return resp


def install_admin_hooks(blueprint: Blueprint) -> None:
    """Give another package's blueprint under ``/api/v1`` what the admin blueprint does.

    Its admin-token authentication (``before_request``), its JSON error bodies
    and the refusal log (``after_request``), copied from ``bp`` so a package such
    as ``sso.connections.admin`` serves its own routes without adding them to ``bp``.
    """
    for hook in bp.before_request_funcs.get(None, []):
        blueprint.before_request(hook)
    for handlers in bp.error_handler_spec[None].values():
        for exc_class, handler in handlers.items():
            blueprint.register_error_handler(exc_class, handler)
    for after in bp.after_request_funcs.get(None, []):
        blueprint.after_request(after)
