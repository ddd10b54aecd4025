"""Domain errors: the one hierarchy raised by services and by the SCIM protocol code.

Each carries the status class and the SCIM ``scimType`` it maps to (RFC 7644
§3.12), so that a protocol layer renders it without a table of its own, while
the code that raises it stays free of HTTP. Rendering (SCIM Error bodies) is in
``scim_server.scim.errors``; the admin API renders the same classes its own way.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    scim_type: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidValueError(DomainError):
    scim_type = "invalidValue"


class InvalidSyntaxError(DomainError):
    scim_type = "invalidSyntax"


class MutabilityError(DomainError):
    scim_type = "mutability"


class InvalidFilterError(DomainError):
    scim_type = "invalidFilter"


class InvalidPathError(DomainError):
    scim_type = "invalidPath"


class NoTargetError(DomainError):
    scim_type = "noTarget"


class TooManyError(DomainError):
    scim_type = "tooMany"


class ForbiddenError(DomainError):
    """Allowed to the role, not on this target (a console person acting on an account that
    holds more console capabilities than theirs)."""

    status = 403


class NotFoundError(DomainError):
    status = 404


class UniquenessError(DomainError):
    """A unique value is taken; ``existing_id`` names the resource that holds it, when known.

    The id lets a client link the resource it meant to create: a create that
    committed but whose answer was lost (a connection cut during a database
    restart) is retried, and the retry lands here.
    """

    status = 409
    scim_type = "uniqueness"

    def __init__(
        self, detail: str, *, existing_id: str | None = None, resource_type: str | None = None
    ) -> None:
        super().__init__(detail)
        self.existing_id = existing_id
        self.resource_type = resource_type


class PreconditionFailedError(DomainError):
    status = 412


class ConflictError(DomainError):
    """The request is well formed but the current state refuses it."""

    status = 409
