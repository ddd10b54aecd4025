"""Parsing console form posts: trimmed text with length bounds, one clear message per problem.

Forms arrive as ``request.form`` (strings); marshmallow turns them into values or
a ``ValidationError`` the view shows next to the field.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


def text(max_length: int, *, required: bool = False, **kwargs: Any) -> fields.String:
    """Optional by default: an empty field is None."""
    return fields.String(
        required=required,
        allow_none=not required,
        validate=[validate.Length(min=1 if required else 0, max=max_length), _no_nul],
        error_messages={"required": "Required.", "null": "Required."},
        **kwargs,
    )


class FormSchema(Schema):
    """Strings trimmed, empty ones None; fields the form does not know are ignored (the
    CSRF token, the submit button)."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _trim(self, data: Any, **_kw: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in data:
            value = data.get(key)
            if isinstance(value, str):
                value = value.strip() or None
            out[key] = value
        return {k: v for k, v in out.items() if v is not None or k in self.fields}


class PersonFieldsForm(FormSchema):
    """A contact's own fields, as the user profile and the contact page edit them."""

    name = text(512, required=True)
    given_name = text(512)
    family_name = text(512)
    email = fields.Email(allow_none=True, validate=lambda v: len(v) <= 320)
    phone = text(64)
    title = text(512)
    department = text(512)


def parse(schema: type[Schema], form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, {}) or ({}, {field: first message}) for the form."""
    try:
        return schema().load(form), {}
    except ValidationError as err:
        messages = err.normalized_messages()
        return {}, {
            k: (v[0] if isinstance(v, list) else str(v))
            for k, v in messages.items()
            if isinstance(k, str)
        }
