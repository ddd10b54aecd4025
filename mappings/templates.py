"""Username templates: ``{given}.{family}``, ``{email}``, ...

Parsed with ``string.Formatter`` but rendered by hand, with a closed set of
placeholders and no format specs, so a template can never reach anything but
the five values below.
"""

from __future__ import annotations

import string

from mappings.identity import ExternalIdentity

# placeholder → attribute of the common vocabulary
PLACEHOLDERS = {
    "userName": "userName",
    "email": "email",
    "given": "givenName",
    "family": "familyName",
    "externalId": "externalId",
}
MAX_TEMPLATE_LENGTH = 200
_KNOWN = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


class TemplateError(ValueError):
    """A template that is malformed, or that this identity cannot fill."""


def parse_template(template: str) -> tuple[tuple[str, str | None], ...]:
    """The template as (literal text, placeholder or None) pairs; raises TemplateError."""
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"is longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"is malformed ({exc}); write a literal brace as {{{{ or }}}}"
        ) from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and name not in PLACEHOLDERS:
            raise TemplateError(f"has unknown placeholder {{{name}}}; use {_KNOWN}")
        if spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} takes no format spec or conversion")
        pieces.append((literal, name))
    if not any(name for _, name in pieces):
        raise TemplateError(
            f"has no placeholder (every user would get the same name); use {_KNOWN}"
        )
    return tuple(pieces)


def render_username(template: str, identity: ExternalIdentity) -> str:
    """Fill the template from the identity; a placeholder without a value is an error."""
    out = []
    for literal, name in parse_template(template):
        out.append(literal)
        if name is not None:
            value = identity.first(PLACEHOLDERS[name])
            if value is None or not value.strip():
                raise TemplateError(f"cannot render {template!r}: {{{name}}} has no value")
            out.append(value.strip())
    return "".join(out).strip()
