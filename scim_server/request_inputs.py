"""What a browser sent, checked before any view reads it: NUL anywhere in the request.

PostgreSQL text cannot hold NUL: a NUL in a path segment (an id, a link token) or a
query or form value reached a lookup and the database refused it, a 500 (SQLite stored
it and found nothing). The pages a browser uses (the sign-in and OAuth endpoints of
``sso``, the console) refuse such a request up front with this one check; the admin API
refuses NUL in its schemas, the SCIM API in its authentication.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from flask import Request

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# A larger form (an upload, a body past a page's limit) is not read here: the view refuses
# it, or reads it, with its own answer.
MAX_FORM_BYTES = 64 * 1024


def has_nul(req: Request) -> bool:
    """Whether the path, a query value or a (small) form's value holds NUL."""
    if "\x00" in req.path:
        return True
    if req.environ.get("QUERY_STRING") and _any_nul(req.args.listvalues()):
        return True
    return (
        req.method == "POST"
        and req.mimetype in FORMS
        and req.content_length is not None
        and req.content_length <= MAX_FORM_BYTES
        and _any_nul(req.form.listvalues())
    )


def _any_nul(values: Any) -> bool:
    return any("\x00" in value for value in chain.from_iterable(values))
