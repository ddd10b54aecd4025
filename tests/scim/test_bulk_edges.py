"""Bulk (RFC 7644 §3.7): an operation's version that cannot be an If-Match header, and a long chain of bulkId references."""

from __future__ import annotations

from scim_server.scim import bulk as bulk_module

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(scim, *ops, **extra):
    return scim.post("/scim/v2/Bulk", {"schemas": [BULK], "Operations": list(ops), **extra})


def test_version_with_newline_is_not_a_500(scim):
    """An operation's `version` with CR/LF must be refused per operation (400/412), not crash Bulk."""
    user = scim.create_user("v@x")
    for version in ["\n", 'W/"1"\r\nX-Evil: 1']:
        resp = bulk(scim, {"method": "DELETE", "path": f"/Users/{user['id']}", "version": version})
        assert resp.status_code == 200, (version, resp.status_code, resp.get_json())
        (op,) = resp.get_json()["Operations"]
        assert op["status"] in ("400", "412"), op
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200


def test_a_reverse_chain_of_bulk_ids_runs_each_operation_once_after_its_referent(monkeypatch):
    """1,000 operations (maxOperations), each naming the next one's bulkId: each runs once,
    right after its referent (the last first), and each referent is looked up once per
    reference (``run_bulk`` releases waiters as referents run: the previous scheduler
    rescanned every pending operation per pass, 13 s of CPU here before any write)."""
    dispatched = []

    def fake_dispatch(op, created):
        dispatched.append(op.index)
        if op.bulk_id:
            created[op.bulk_id] = f"id-{op.bulk_id}"
        return {"method": op.method, "status": "201"}

    monkeypatch.setattr(bulk_module, "_dispatch", fake_dispatch)
    n = 1000
    ops = [
        bulk_module.Operation(
            i, "POST", "/Users", f"u{i}", None, {}, {f"u{i + 1}"} if i < n - 1 else set()
        )
        for i in range(n)
    ]
    result = bulk_module.run_bulk(ops, None)
    assert [o["status"] for o in result["Operations"]] == ["201"] * n
    assert dispatched == list(reversed(range(n)))
