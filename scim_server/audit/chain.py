"""Canonical form, hashes and signatures of the chain.

The canonical form is sorted-key JSON of every field but ``hash``; each hash
covers the previous one, so the chain can only be rewritten by recomputing
every later hash, and the head signature (HMAC with a key kept out of the
database) makes that, or dropping the tail, detectable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import operator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from scim_server.db import AUDIT_KEY_INFO
from scim_server.models import AuditEvent

FIELDS = [c.name for c in AuditEvent.__table__.columns if c.name != "hash"]


def signing_key(session: Session) -> bytes:
    """The signing key of the app whose session factory made ``session``.

    It travels with the session (``db.make_session_factory`` puts it in
    ``session.info``) rather than in a module global: two apps in one process
    each sign with their own key, and services need no Flask to reach it.
    """
    key = session.info.get(AUDIT_KEY_INFO)
    if not key:
        raise RuntimeError("audit signing key not configured on this session's factory")
    return bytes(key)


def genesis_hash(org_id: str) -> str:
    return hashlib.sha256(f"scim-server audit genesis {org_id}".encode()).hexdigest()


_VALUES = operator.attrgetter(*FIELDS)
# The types whose orjson form is byte for byte ``json.dumps``'s (sorted keys, compact,
# non-ASCII kept, the same escapes): not floats (``1e-05`` is ``0.00001`` to orjson), nor
# the types orjson writes and ``json`` refuses (UUID, enums...), nor subclasses.
_ORJSON_SAME = frozenset({str, int, bool, type(None), dict, list, tuple})
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _orjson_same(values: list[Any]) -> bool:
    """Whether every value, nested ones too, is of a type in ``_ORJSON_SAME`` (``values``
    is consumed)."""
    stack = values
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind not in _ORJSON_SAME:
            return False
        if kind is dict:
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
    return True


def canonical(event: Any) -> bytes:
    """The hashed form of an event (a stored ``AuditEvent`` or one being recorded): sorted-key
    compact JSON (``json.dumps(doc, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``), its datetimes (top level) in ISO form. orjson writes the same
    bytes several times faster when ``_orjson_same``; anything else (a float, an integer past
    64 bits, a key not a string) goes through ``json`` as it always did."""
    values = [
        value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value
        for value in _VALUES(event)
    ]
    doc = dict(zip(FIELDS, values, strict=True))
    if _orjson_same(list(values)):
        try:
            return orjson.dumps(doc, option=_SORTED)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer past 64 bits
            pass
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: Any) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def sign(key: bytes, *parts: object) -> str:
    message = "|".join(str(p) for p in parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def head_signature(
    key: bytes, org_id: str, seq: int, head_hash: str, base_seq: int, base_hash: str
) -> str:
    return sign(key, "head", org_id, seq, head_hash, base_seq, base_hash)


def checkpoint_signature(key: bytes, org_id: str, seq: int, head_hash: str, kind: str) -> str:
    return sign(key, "checkpoint", org_id, seq, head_hash, kind)


def signatures_match(expected: str, actual: str) -> bool:
    return hmac.compare_digest(expected, actual)
