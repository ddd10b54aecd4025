"""Before/after of the attributes a change touched, with secrets redacted."""

from __future__ import annotations

from typing import Any

REDACTED = "[REDACTED]"
SECRET_KEYS = frozenset({"password", "secret", "token", "client_secret"})
_ABSENT = object()


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k.lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _flatten(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if ":" in key and isinstance(value, dict):
            for sub, sub_value in value.items():
                out[f"{key}:{sub}"] = sub_value
        else:
            out[key] = value
    return out


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """``{attribute: {"before": ..., "after": ...}}`` for every attribute that differs.

    A top-level value that is the same object in both (a PATCH leaves the attributes it
    did not address as they were stored) is not flattened nor compared: it is the same."""
    before, after = before or {}, after or {}
    if before and after:
        kept = {key for key, value in before.items() if after.get(key, _ABSENT) is value}
        if kept:
            before = {key: value for key, value in before.items() if key not in kept}
            after = {key: value for key, value in after.items() if key not in kept}
    old, new = _flatten(before), _flatten(after)
    changes: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key.rsplit(":", 1)[-1].lower() in SECRET_KEYS:
            changes[key] = {"changed": True, "value": REDACTED}
            continue
        entry: dict[str, Any] = {}
        if key in old:
            entry["before"] = redact(old[key])
        if key in new:
            entry["after"] = redact(new[key])
        changes[key] = entry
    return changes
