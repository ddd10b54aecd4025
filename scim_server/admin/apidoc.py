"""How an ``/api/v1`` route documents itself: ``@api_doc(...)`` next to the route.

The OpenAPI description (``admin.openapi``) is generated from these marks and
the marshmallow schemas they name: the request schemas the view already loads
with, and a response schema beside it. A route without a mark fails
``tests/admin/test_openapi.py``, so the description cannot fall behind the code.

    @bp.get("/licenses/<license_id>")
    @api_doc(response=LicenseOut, tag="licenses")
    def get_license(license_id): ...

The mark is kept on the view function (as ``common.audited`` does), so nothing
is registered at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from marshmallow import INCLUDE, Schema, fields

F = TypeVar("F", bound=Callable[..., Any])
API_DOC = "api_doc"


@dataclass(frozen=True)
class Content:
    """A body that is not described by a marshmallow schema: its media type(s) and a JSON schema."""

    media_types: tuple[str, ...]
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


# A response or request body given as a marshmallow schema (class or instance), or as
# ``Content(media_types, json_schema)`` for what is not a JSON object (CSV, YAML, XML).
Body: TypeAlias = type[Schema] | Schema | Content | None


@dataclass(frozen=True)
class ApiDoc:
    tag: str
    query: type[Schema] | None = None
    body: Body = None
    body_required: bool = True
    responses: dict[int, Body] = field(default_factory=dict)
    public: bool = False  # no admin token needed


def api_doc(
    *,
    tag: str,
    response: Body = None,
    status: int = 200,
    query: type[Schema] | None = None,
    body: Body = None,
    body_required: bool = True,
    responses: dict[int, Body] | None = None,
    public: bool = False,
) -> Callable[[F], F]:
    """Document the view: query schema, body schema, the success response(s).

    ``response`` with ``status`` is the usual single success; ``responses`` maps
    several statuses. Errors need nothing: every route answers them in the
    admin API's one error shape (``ErrorOut``), documented once for all.
    """
    doc = ApiDoc(
        tag=tag,
        query=query,
        body=body,
        body_required=body_required,
        responses=responses if responses is not None else {status: response},
        public=public,
    )

    def mark(view: F) -> F:
        setattr(view, API_DOC, doc)
        return view

    return mark


def doc_of(view: Any) -> ApiDoc | None:
    found = getattr(view, API_DOC, None)
    return found if isinstance(found, ApiDoc) else None


# -- shared response schemas -----------------------------------------------------------------


class Out(Schema):
    """A response body: the fields listed are always there; more may be added later."""

    class Meta:
        unknown = INCLUDE


def nullable(field_class: type[fields.Field], **kwargs: Any) -> fields.Field:
    return field_class(allow_none=True, required=True, **kwargs)


def always(field_class: type[fields.Field], **kwargs: Any) -> fields.Field:
    return field_class(required=True, **kwargs)


class ErrorOut(Out):
    """Every error of the admin API: a short name and a detail (text, or field -> messages)."""

    error = always(fields.String)
    detail = fields.Raw(allow_none=True, metadata={"description": "Text, or field -> messages."})
    problems = fields.List(
        fields.Dict(), metadata={"description": "Rule set problems, each with its path."}
    )


class PageOut(Out):
    total = always(fields.Integer)
    offset = always(fields.Integer)
    limit = always(fields.Integer)


class AnyObject(Out):
    """A JSON object whose members the route's description lists."""
