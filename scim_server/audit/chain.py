"""Canonical form, hashes and signatures of the chain.

The canonical form is sorted-key JSON of every field but ``hash``; each hash
covers the previous one, so the chain can only be rewritten by recomputing
every later hash, and the head signature (HMAC with a key kept out of the
database) makes that, or dropping the tail, detectable. A head the server finds not
signed is never signed over: the write after it gets a ``marked_head_signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import operator
from datetime import datetime
from decimal import Decimal
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
_SCALARS = frozenset({str, int, bool, type(None)})
assert _SCALARS | {dict, list, tuple} == _ORJSON_SAME
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _orjson_same(values: list[Any]) -> bool:
    """Whether every value, nested ones too, is of a type in ``_ORJSON_SAME`` (``values``
    is consumed)."""
    stack = values
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind in _SCALARS:  # most values: one test
            continue
        if kind is dict:
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
        else:
            return False
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


def as_stored(value: Any) -> Any:
    """``value`` (an event's JSON field) with each float as PostgreSQL's ``jsonb`` gives it
    back, so the hash made of it at the write is the hash of what is read to verify it.

    ``jsonb`` keeps a number as a decimal (``numeric``) of its JSON text and writes it back
    without an exponent: ``1e+16`` comes back ``10000000000000000`` (an integer to a JSON
    reader), ``1.5e+300`` as 301 digits, ``-0.0`` as ``0.0``; other floats come back the
    same float. SQLite keeps the text, so the same value is stored there too. The value
    itself (no float in it: every write but a rule set with a number) is returned as is."""
    if not _has_float(value):
        return value
    return _stored_numbers(value)


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
    return False


def _stored_numbers(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        # The decimal of its JSON text (``repr``), written plain, read as JSON reads it.
        text = format(Decimal(repr(value)), "f")
        if text.startswith("-") and Decimal(text) == 0:
            text = text[1:]  # numeric has no negative zero
        return json.loads(text)
    if kind is dict:
        return {k: _stored_numbers(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_stored_numbers(v) for v in value]
    return value


def event_hash(event: Any) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


# The canonical form in three pieces around the two fields given only under the head lock
# (``prev_hash``, ``seq``): the keys before, between and after them, in sorted order.
_BEFORE = [name for name in sorted(FIELDS) if name < "prev_hash"]
_BETWEEN = [name for name in sorted(FIELDS) if "prev_hash" < name < "seq"]
_AFTER = [name for name in sorted(FIELDS) if name > "seq"]
assert sorted(FIELDS) == [*_BEFORE, "prev_hash", *_BETWEEN, "seq", *_AFTER]
# Each piece holds a key: ``unchained`` joins them with the commas between keys.
assert _BEFORE and _BETWEEN and _AFTER
_BEFORE_VALUES = operator.attrgetter(*_BEFORE)
_BETWEEN_VALUES = operator.attrgetter(*_BETWEEN)
_AFTER_VALUES = operator.attrgetter(*_AFTER)
# The only fields a datetime is expected in (any other datetime: ``canonical``'s own way).
_TIMES = ("occurred_at", "received_at")
assert all(name in _BEFORE or name in _BETWEEN for name in _TIMES)


class Unchained:
    """An event's hash made ready before its place in the chain is known: the SHA-256 of its
    canonical form fed up to ``"prev_hash":"``, and the bytes after that but for ``seq``.
    The write path makes one before it locks the head (``recorder.prepare``), so what is
    done under the lock, which serialises an organization's writers, is two short updates
    of the hash, not the event's serialisation."""

    __slots__ = ("_middle", "_sha", "_tail")

    def __init__(self, sha: Any, middle: bytes, tail: bytes) -> None:
        self._sha, self._middle, self._tail = sha, middle, tail

    def hash(self, prev_hash: str, seq: int) -> str | None:
        """The event's hash at ``seq`` after ``prev_hash`` (``event_hash``'s); None when
        those two are not of the plain form the pieces assume (then ``event_hash``). Once."""
        if type(seq) is not int or type(prev_hash) is not str or not _plain(prev_hash):
            return None
        sha = self._sha
        sha.update(prev_hash.encode() + self._middle + str(seq).encode() + self._tail)
        return str(sha.hexdigest())


def _plain(text: str) -> bool:
    """Whether ``text`` is written as JSON by quoting it alone (letters and digits: a hash)."""
    return text.isascii() and text.isalnum()


def unchained(event: Any) -> Unchained | None:
    """``event``'s hash ready but for ``prev_hash`` and ``seq`` (``Unchained``), or None when
    its canonical form is not orjson's (``_orjson_same``): ``event_hash`` then, as ever."""
    before = dict(zip(_BEFORE, _BEFORE_VALUES(event), strict=True))
    between = dict(zip(_BETWEEN, _BETWEEN_VALUES(event), strict=True))
    after = dict(zip(_AFTER, _AFTER_VALUES(event), strict=True))
    for doc in (before, between):
        for name in _TIMES:
            value = doc.get(name)
            if isinstance(value, datetime):
                doc[name] = value.isoformat(timespec="microseconds")
    if not _orjson_same([*before.values(), *between.values(), *after.values()]):
        return None
    try:
        head = orjson.dumps(before, option=_SORTED)
        middle = orjson.dumps(between, option=_SORTED)
        tail = orjson.dumps(after, option=_SORTED)
    except TypeError:  # as in ``canonical``
        return None
    # {"a":..} + {"b":..} + {"c":..} -> {"a":..,"prev_hash":"<prev>","b":..,"seq":<seq>,"c":..}
    sha = hashlib.sha256(head[:-1] + b',"prev_hash":"')
    return Unchained(sha, b'",' + middle[1:-1] + b',"seq":', b"," + tail[1:])


def sign(key: bytes, *parts: object) -> str:
    message = "|".join(str(p) for p in parts).encode()
    # One call into OpenSSL (``hmac.new(...).hexdigest()``'s bytes, without its objects).
    return hmac.digest(key, message, "sha256").hex()


def head_signature(
    key: bytes, org_id: str, seq: int, head_hash: str, base_seq: int, base_hash: str
) -> str:
    return sign(key, "head", org_id, seq, head_hash, base_seq, base_hash)


def marked_head_signature(
    key: bytes, org_id: str, seq: int, head_hash: str, base_seq: int, base_hash: str
) -> str:
    """The server's signature of a head it wrote onto one it had not signed (moved back,
    altered, or signed with a key it no longer has): not a head signature, so ``verify``
    and exports keep refusing the log, yet the server's own, so the next write knows the
    head is as it left it (no second marker) and nobody without the key can make one."""
    return sign(key, "head-over-unsigned", org_id, seq, head_hash, base_seq, base_hash)


def checkpoint_signature(key: bytes, org_id: str, seq: int, head_hash: str, kind: str) -> str:
    return sign(key, "checkpoint", org_id, seq, head_hash, kind)


def key_signature(
    key: bytes,
    key_id: str,
    algorithm: str,
    public_key: str,
    valid_from: datetime | None,
    valid_until: datetime | None,
) -> str:
    """The server's HMAC of a published key's row (``signing.published_keys``)."""
    times = [t.isoformat(timespec="microseconds") if t else "" for t in (valid_from, valid_until)]
    return sign(key, "signing-key", key_id, algorithm, public_key, *times)


def signatures_match(expected: str, actual: str) -> bool:
    return hmac.compare_digest(expected, actual)
