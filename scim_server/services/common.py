"""Helpers shared by the resource services: ETags and preconditions."""

from __future__ import annotations

from collections.abc import Sequence

from scim_server.errors import PreconditionFailedError


def etag(version: int) -> str:
    """A weak entity tag (RFC 7232 §2.3) for ``meta.version``."""
    return f'W/"{version}"'


def opaque_tag(tag: str) -> str:
    """An entity tag without its weakness indicator: what RFC 7232 §2.3.2's weak comparison
    compares (``W/"1"`` and ``"1"`` match weakly)."""
    return tag.strip().removeprefix("W/")


def check_if_match(current: int, if_match: Sequence[str] | None) -> None:
    """RFC 7644 §3.14: a stale If-Match fails with 412 and changes nothing."""
    if not if_match:
        return
    if "*" in if_match:
        return
    wanted = {opaque_tag(tag) for tag in if_match}
    if f'"{current}"' not in wanted:
        raise PreconditionFailedError(
            f"The resource changed: its version is {etag(current)}, "
            f"the request was for {', '.join(if_match)}."
        )


def check_if_none_match(current: int, if_none_match: Sequence[str] | None) -> None:
    """RFC 7232 §3.2: on a write, If-None-Match ``*`` (the resource exists) or naming the
    current version (weak comparison) is false: 412, and nothing is changed. Checked after
    If-Match (RFC 7232 §6), under the same row lock."""
    if not if_none_match:
        return
    if "*" in if_none_match or f'"{current}"' in {opaque_tag(tag) for tag in if_none_match}:
        raise PreconditionFailedError(
            f"If-None-Match names the resource's current version {etag(current)}: "
            "the request is not performed."
        )
