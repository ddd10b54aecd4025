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
from datetime import datetime
from typing import Any

from scim_server.models import AuditEvent

FIELDS = [c.name for c in AuditEvent.__table__.columns if c.name != "hash"]

_key: bytes = b""


def configure(key: bytes) -> None:
    """Set the signing key (from configuration) for this process."""
    global _key
    _key = key


def genesis_hash(org_id: str) -> str:
    return hashlib.sha256(f"scim-server audit genesis {org_id}".encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def canonical(event: AuditEvent) -> bytes:
    doc = {name: _plain(getattr(event, name)) for name in FIELDS}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def sign(*parts: object) -> str:
    if not _key:
        raise RuntimeError("audit signing key not configured")
    message = "|".join(str(p) for p in parts).encode()
    return hmac.new(_key, message, hashlib.sha256).hexdigest()


def head_signature(org_id: str, seq: int, head_hash: str, base_seq: int, base_hash: str) -> str:
    return sign("head", org_id, seq, head_hash, base_seq, base_hash)


def checkpoint_signature(org_id: str, seq: int, head_hash: str, kind: str) -> str:
    return sign("checkpoint", org_id, seq, head_hash, kind)


def signatures_match(expected: str, actual: str) -> bool:
    return hmac.compare_digest(expected, actual)
