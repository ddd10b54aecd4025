"""Domain errors raised by services. Protocol layers translate them.

Each carries the SCIM ``scimType`` it maps to (RFC 7644 §3.12) so that the
SCIM layer needs no table of its own, while services stay free of HTTP.
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


class NotFoundError(DomainError):
    status = 404


class UniquenessError(DomainError):
    status = 409
    scim_type = "uniqueness"


class PreconditionFailedError(DomainError):
    status = 412
