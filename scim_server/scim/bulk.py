"""Bulk (RFC 7644 §3.7): many operations in one request, each its own transaction.

``bulk`` is the endpoint. Each operation is dispatched through the same
endpoints as a single request (same
validation, same services, same errors), inside the bulk request's context: its events
carry the Bulk request's address, user agent, ids and arrival time
(``observability.PARENT_REQUEST``). An operation refused before it runs is logged as
refused, as one its endpoint refuses is.
``bulkId`` references (``"bulkId:qwerty"``) in later operations are replaced by
the ids of resources created earlier in the request; operations whose
references cannot be resolved (unknown or circular) fail with 409 instead of
waiting forever. A bulkId is unique in the request, whatever the operation's
method, and only a POST's defines a reference (it names what the POST creates).
A reference is a whole value in a reference position (``_REF_KEYS``, the path's
id): "bulkId:u1" as a title or inside a longer text is kept as sent.
"""

from __future__ import annotations

import heapq
import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from scim_server.errors import InvalidSyntaxError, InvalidValueError
from scim_server.observability import PARENT_REQUEST, parent_request
from scim_server.scim.audit_hooks import WRITE_ACTIONS, record_refused
from scim_server.scim.body import json_body
from scim_server.scim.errors import ScimError, error_body
from scim_server.scim.render import scim_response
from scim_server.scim.schema import BULK_REQUEST, BULK_RESPONSE
from scim_server.urls import scim_root

BULK_REF = re.compile(r"bulkId:([A-Za-z0-9._~-]{1,100})")
METHODS = ("POST", "PUT", "PATCH", "DELETE")
PATH = re.compile(r"^/(Users|Groups)(/[^/?#]+)?$")
# Each method's endpoint verb (``scim.<verb>_user``, ``scim.<verb>_group``).
_VERBS = {"POST": "create", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}
# RFC 7644 §3.7.2: a bulkId reference stands for a resource's id, so it is looked for
# where an id goes: a member's or manager's "value" (and a PATCH operation's "value": a
# manager's id, or a list of member ids), a "$ref", and the manager as a bare id (Entra
# sends the manager as a bare id). Keys compared folded (RFC 7643 §2.1).
_REF_KEYS = frozenset({"value", "$ref", "manager"})


@dataclass
class Operation:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any
    refs: set[str] = field(default_factory=set)


def parse_bulk_request(body: Any, max_operations: int) -> tuple[list[Operation], int | None]:
    """Validate the BulkRequest envelope; return its operations and failOnErrors."""
    if not isinstance(body, dict):
        raise InvalidSyntaxError("The request body must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
        raise InvalidSyntaxError(f"'schemas' must contain {BULK_REQUEST}.")
    raw_ops = body.get("Operations")
    if not isinstance(raw_ops, list):
        raise InvalidSyntaxError("'Operations' must be an array.")
    if len(raw_ops) > max_operations:
        # RFC 7644 §3.7.4: too many operations is a 413.
        raise ScimError(
            f"The request has {len(raw_ops)} operations; the maximum is {max_operations} "
            "(SCIM_BULK_MAX_OPERATIONS).",
            status=413,
        )
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or fail_on_errors < 1
    ):
        raise InvalidValueError("'failOnErrors' must be a positive integer.")
    ops: list[Operation] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_ops):
        if not isinstance(raw, dict):
            raise InvalidSyntaxError(f"Operation {index} must be a JSON object.")
        method = raw.get("method")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise InvalidSyntaxError(f"Operation {index}: 'method' must be one of {METHODS}.")
        method = method.upper()
        path = raw.get("path")
        if not isinstance(path, str) or not PATH.match(path):
            raise InvalidSyntaxError(f"Operation {index}: 'path' must be /Users or /Groups[/id].")
        has_id = PATH.match(path).group(2) is not None  # type: ignore[union-attr]
        if (method == "POST") == has_id:
            raise InvalidSyntaxError(f"Operation {index}: {method} does not fit path {path}.")
        bulk_id = raw.get("bulkId")
        if method == "POST" and (
            not isinstance(bulk_id, str) or not BULK_REF.fullmatch(f"bulkId:{bulk_id}")
        ):
            raise InvalidSyntaxError(f"Operation {index}: a POST needs a 'bulkId'.")
        if isinstance(bulk_id, str):
            # RFC 7644 §3.7: a bulkId is "unique within a bulk request", whatever the
            # method: a PATCH repeating a POST's would make a reference to it ambiguous.
            if bulk_id in seen:
                raise InvalidSyntaxError(f"Operation {index}: bulkId {bulk_id!r} is repeated.")
            seen.add(bulk_id)
        version = raw.get("version")
        data = raw.get("data")
        if method != "DELETE" and not isinstance(data, dict):
            raise InvalidSyntaxError(f"Operation {index}: 'data' must be a JSON object.")
        refs = _references(data) if data is not None else set()
        path_ref = _path_reference(path)
        if path_ref is not None:
            refs.add(path_ref)
        ops.append(
            Operation(
                index,
                method,
                path,
                bulk_id if isinstance(bulk_id, str) else None,
                version if isinstance(version, str) else None,
                data,
                refs,
            )
        )
    return ops, fail_on_errors


def _referenced(value: Any) -> str | None:
    """The bulkId a whole value names ("bulkId:qwerty"), else None."""
    if isinstance(value, str):
        found = BULK_REF.fullmatch(value)
        if found is not None:
            return found.group(1)
    return None


def _reference_values(key: str, value: Any) -> list[Any]:
    """The values under ``key`` that stand in reference positions (``_REF_KEYS``): the value
    itself, or the items of a list of bare ids."""
    if key.lower() not in _REF_KEYS:
        return []
    return value if isinstance(value, list) else [value]


def _references(data: Any) -> set[str]:
    """The bulkIds ``data`` references in reference positions (never in free text)."""
    found: set[str] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                for candidate in _reference_values(str(key), item):
                    ref = _referenced(candidate)
                    if ref is not None:
                        found.add(ref)
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _substitute(value: Any, created: dict[str, str], key: str = "") -> Any:
    """``value`` with each reference to a created resource replaced by its id; free text and
    references to nothing created are kept as sent."""
    if isinstance(value, dict):
        return {k: _substitute(v, created, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        # A list under a reference key holds bare ids (PATCH members); any other, objects.
        return [_substitute(item, created, key) for item in value]
    if key.lower() in _REF_KEYS:
        ref = _referenced(value)
        if ref is not None and ref in created:
            return created[ref]
    return value


def _path_reference(path: str) -> str | None:
    """The bulkId the path's id names, when the whole id is a reference (``/Users/bulkId:k``)."""
    named = PATH.match(path)
    segment = named.group(2) if named is not None else None
    return _referenced(segment[1:]) if segment else None


def _resolved_path(op: Operation, created: dict[str, str]) -> str:
    ref = _path_reference(op.path)
    if ref is None or ref not in created:
        return op.path
    return f"{op.path.rsplit('/', 1)[0]}/{created[ref]}"


def _location(op: Operation, path: str) -> str | None:
    """RFC 7644 §3.7: the resource's location is "REQUIRED in a response, except in the
    event of a POST failure" (a POST that succeeded answers its own). None for a POST, or
    for a path whose bulkId names nothing created."""
    if op.method == "POST" or _path_reference(path) is not None:
        return None
    return f"{scim_root()}{path}"


def _dispatch(op: Operation, created: dict[str, str]) -> dict[str, Any]:
    path = _resolved_path(op, created)
    if op.version is not None and any(c in op.version for c in "\r\n\x00"):
        # It becomes the operation's If-Match header, which cannot hold a line break.
        return _refused(op, path, 400, "The operation's version is not an ETag.", "invalidValue")
    headers = [("Authorization", request.headers.get("Authorization", ""))]
    if op.version:
        headers.append(("If-Match", op.version))
    user_agent = request.environ.get("HTTP_USER_AGENT")
    if user_agent:
        headers.append(("User-Agent", user_agent))
    builder = EnvironBuilder(
        path=f"/scim/v2{path}",
        method=op.method,
        headers=headers,
        data=json.dumps(_substitute(op.data, created)) if op.data is not None else None,
        content_type="application/scim+json" if op.data is not None else None,
        base_url=request.host_url,
        # The operation comes from the Bulk request's client, in the Bulk request: its
        # events carry that address, and its ids and arrival time (PARENT_REQUEST, an
        # environ key no client can send).
        environ_base={"REMOTE_ADDR": request.remote_addr, PARENT_REQUEST: parent_request()},
    )
    with current_app.request_context(builder.get_environ()):
        resp = current_app.full_dispatch_request()
    result: dict[str, Any] = {"method": op.method, "status": str(resp.status_code)}
    if op.bulk_id:
        result["bulkId"] = op.bulk_id
    if resp.headers.get("ETag"):
        result["version"] = resp.headers["ETag"]
    body = resp.get_json(silent=True) if resp.data else None
    if resp.status_code < 400:
        location = resp.headers.get("Location") or (body or {}).get("meta", {}).get("location")
        location = location or _location(op, path)
        if op.method == "POST" and body and op.bulk_id:
            created[op.bulk_id] = body["id"]
    else:
        location = _location(op, path)
        result["response"] = body
    if location:
        result["location"] = location
    return result


def run_bulk(ops: list[Operation], fail_on_errors: int | None) -> dict[str, Any]:
    """Run operations in order, an operation waiting on another's bulkId after it.

    The next to run is always the first, in request order, whose referents have all run
    (a heap of the ready ones): each operation runs once and each reference is released
    once, so a chain of 1,000 references in reverse order costs what 1,000 operations do,
    not a pass over the rest per operation. What is left waits on itself (a cycle)."""
    created: dict[str, str] = {}
    # Only a POST defines a reference: it names the resource it creates.
    by_bulk_id = {op.bulk_id: op for op in ops if op.bulk_id and op.method == "POST"}
    waiters: dict[str, list[Operation]] = {}
    blockers: dict[int, set[str]] = {}
    ready: list[tuple[int, Operation]] = []
    for op in ops:
        # Referents defined by another operation of the request (an unknown one, or the
        # operation's own bulkId, resolves to nothing: a 409 when it runs).
        wait = {ref for ref in op.refs if ref in by_bulk_id and ref != op.bulk_id}
        for ref in wait:
            waiters.setdefault(ref, []).append(op)
        if wait:
            blockers[op.index] = wait
        else:
            heapq.heappush(ready, (op.index, op))
    results: dict[int, dict[str, Any]] = {}
    errors = 0
    stopped = False
    while ready:
        _index, op = heapq.heappop(ready)
        unresolved = op.refs - created.keys()
        results[op.index] = (
            _unresolved(op, unresolved, created) if unresolved else _dispatch(op, created)
        )
        if int(results[op.index]["status"]) >= 400:
            errors += 1
            if fail_on_errors is not None and errors >= fail_on_errors:
                stopped = True
                break
        released = op.bulk_id if op.bulk_id in by_bulk_id else None
        for waiter in waiters.pop(released or "", []):
            left = blockers[waiter.index]
            left.discard(released or "")
            if not left:
                heapq.heappush(ready, (waiter.index, waiter))
    if not stopped:
        # RFC 7644 §3.7.1: what never became ready waits on itself (a cycle).
        for op in ops:
            if op.index not in results:
                results[op.index] = _unresolved(op, op.refs - created.keys(), created)
    return {
        "schemas": [BULK_RESPONSE],
        "Operations": [results[i] for i in sorted(results)],
    }


def _unresolved(op: Operation, refs: set[str], created: dict[str, str]) -> dict[str, Any]:
    detail = (
        f"bulkId reference(s) {sorted(refs)} could not be resolved (unknown, failed or circular)."
    )
    return _refused(op, _resolved_path(op, created), 409, detail, "invalidValue")


def _refused(op: Operation, path: str, status: int, detail: str, scim_type: str) -> dict[str, Any]:
    """An operation's result refused before it ran: its SCIM error, and its failure event
    (what an operation refused by its endpoint gets from ``audit_hooks.record_refusal``)."""
    response = error_body(status, detail, scim_type)
    kind, named = PATH.match(op.path).groups()  # type: ignore[union-attr]  # parse checked it
    action, resource_type = WRITE_ACTIONS[f"scim.{_VERBS[op.method]}_{kind[:-1].lower()}"]
    # The id in the path, once its bulkId (if any) is resolved.
    resource_id = path.split("/", 2)[2] if named and _path_reference(path) is None else None
    identity = {
        field: op.data[key]
        for key, field in (("userName", "user_name"), ("externalId", "external_id"))
        if op.method in ("POST", "PUT") and isinstance(op.data.get(key), str)
    }
    record_refused(action, resource_type, resource_id, status, response, **identity)
    result: dict[str, Any] = {"method": op.method, "status": str(status), "response": response}
    if op.bulk_id:
        result["bulkId"] = op.bulk_id
    location = _location(op, path)
    if location:
        result["location"] = location
    return result


def bulk() -> Response:
    """POST /Bulk (RFC 7644 §3.7)."""
    cfg = current_app.config
    _read_payload(cfg["BULK_MAX_PAYLOAD_BYTES"])
    ops, fail_on_errors = parse_bulk_request(json_body(), cfg["BULK_MAX_OPERATIONS"])
    return scim_response(run_bulk(ops, fail_on_errors))


def _read_payload(limit: int) -> None:
    """Read the request body (kept for ``json_body``) within ``limit``, maxPayloadSize; 413
    past it (RFC 7644 §3.7.4).

    The limit is this view's, not the app's request limit (SCIM_MAX_BODY_BYTES), so Bulk
    takes what ServiceProviderConfig advertises, larger or smaller. A Content-Length over
    it is refused unread; a chunked body (no Content-Length) is judged by the bytes read:
    at most ``limit + 1``, one more than allowed tells it is too large (werkzeug stops
    quietly at its limit, it would hand on a cut body)."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)
    req.max_content_length = limit + 1
    try:
        data = req.get_data(cache=True)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    if len(data) > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> ScimError:
    return ScimError(
        f"The bulk request is larger than {limit} bytes (SCIM_BULK_MAX_PAYLOAD_BYTES).",
        status=413,
    )


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/Bulk", view_func=bulk, methods=["POST"])
