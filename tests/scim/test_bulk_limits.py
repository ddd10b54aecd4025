"""Bulk's maxPayloadSize (RFC 7644 §3.7.4): the bytes actually read, and the limit advertised
is the limit enforced."""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Flask

from tests.support import USER_SCHEMA, Scim, assert_error

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _post_user(bulk_id: str, user_name: str, **attrs: object) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": {"schemas": [USER_SCHEMA], "userName": user_name, **attrs},
    }


def _payload(count: int, **attrs: object) -> bytes:
    ops = [_post_user(f"u{i}", f"u{i}@example.com", **attrs) for i in range(count)]
    return json.dumps({"schemas": [BULK], "Operations": ops}).encode()


def _chunked(scim: Scim, payload: bytes) -> Any:
    """POST /Bulk with no Content-Length, as a chunked request reaches the app (gunicorn sets
    wsgi.input_terminated and leaves the length out)."""
    return scim.client.open(
        "/scim/v2/Bulk",
        method="POST",
        input_stream=io.BytesIO(payload),
        headers={
            "Authorization": f"Bearer {scim.token}",
            "Content-Type": "application/scim+json",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_rfc_7644_3_7_4_a_chunked_bulk_request_over_max_payload_size_is_413(
    app: Flask, scim: Scim
) -> None:
    """A Bulk body over maxPayloadSize sent chunked (no Content-Length) is refused 413 on the
    bytes read, naming the Bulk limit; no operation runs."""
    app.config["BULK_MAX_PAYLOAD_BYTES"] = 2000
    payload = _payload(30)
    assert len(payload) > 2000
    body = assert_error(_chunked(scim, payload), 413)
    assert "2000 bytes (SCIM_BULK_MAX_PAYLOAD_BYTES)" in body["detail"]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 0


def test_a_chunked_bulk_request_of_exactly_max_payload_size_runs(app: Flask, scim: Scim) -> None:
    """A chunked Bulk body of exactly maxPayloadSize bytes is read whole and runs."""
    payload = _payload(2)
    app.config["BULK_MAX_PAYLOAD_BYTES"] = len(payload)
    resp = _chunked(scim, payload)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["201", "201"]


def test_a_bulk_request_with_a_content_length_over_max_payload_size_is_413(
    app: Flask, scim: Scim
) -> None:
    """With a Content-Length over maxPayloadSize the request is refused before it is read."""
    app.config["BULK_MAX_PAYLOAD_BYTES"] = 2000
    ops = json.loads(_payload(30))["Operations"]
    resp = scim.post("/scim/v2/Bulk", {"schemas": [BULK], "Operations": ops})
    body = assert_error(resp, 413)
    assert "SCIM_BULK_MAX_PAYLOAD_BYTES" in body["detail"]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 0


def test_bulk_accepts_the_max_payload_size_it_advertises_above_the_body_limit(
    app: Flask, scim: Scim
) -> None:
    """SCIM_BULK_MAX_PAYLOAD_BYTES above SCIM_MAX_BODY_BYTES: ServiceProviderConfig advertises
    the Bulk limit (RFC 7643 §5) and a Bulk request under it runs, with or without a
    Content-Length; any other request keeps the app-wide limit."""
    app.config["MAX_CONTENT_LENGTH"] = 4096
    app.config["BULK_MAX_PAYLOAD_BYTES"] = 64 * 1024
    spc = scim.get("/scim/v2/ServiceProviderConfig").get_json()
    assert spc["bulk"]["maxPayloadSize"] == 64 * 1024
    ops = json.loads(_payload(10, title="x" * 500, displayName="y" * 500))["Operations"]
    first = {"schemas": [BULK], "Operations": ops[:5]}
    second = json.dumps({"schemas": [BULK], "Operations": ops[5:]}).encode()
    assert len(json.dumps(first)) > 4096 and len(second) > 4096
    resp = scim.post("/scim/v2/Bulk", first)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["201"] * 5
    resp = _chunked(scim, second)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["201"] * 5
    big = {"schemas": [USER_SCHEMA], "userName": "big@example.com", "title": "x" * 5000}
    body = assert_error(scim.post("/scim/v2/Users", big), 413)
    assert "SCIM_MAX_BODY_BYTES" in body["detail"]
