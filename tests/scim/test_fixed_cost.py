"""What every SCIM request does around its resource work, answered as before by the cheaper
paths of issue 17 (scim_server/urls.py's root URLs, observability's metric children and
request ids, the audit context, db.KeyRead's token read, the cookie-less session)."""

from __future__ import annotations

from sqlalchemy import event

from scim_server.db import db
from scim_server.observability import REQUESTS
from scim_server.services.tokens import _BY_HASH, hash_token


def test_each_host_gets_locations_of_its_own(scim):
    """meta.location starts with the root the request came in on, host by host (RFC 7644
    §3.1), one request after another: the root kept per host is never another host's."""
    user = scim.create_user("ann@example.com")
    for base in ("http://a.example", "https://b.example:8443", "http://a.example/prefix"):
        got = scim.get(f"/scim/v2/Users/{user['id']}", base_url=base)
        assert got.status_code == 200, got.get_data(as_text=True)
        assert got.get_json()["meta"]["location"] == f"{base}/scim/v2/Users/{user['id']}"


def test_the_request_ids_and_user_agent_reach_the_audit_event(scim, admin):
    """X-Request-Id (ours when the client's is safe), the IdP's correlation header and the
    user agent as sent are what the change's audit event names."""
    user = scim.create_user("kim@example.com")
    headers = {
        "X-Request-Id": "req-1.a:b",
        "X-Okta-Request-Id": "okta-7",
        "User-Agent": "Okta SCIM Client 1.0",
    }
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Boss"},
        headers=headers,
    )
    assert resp.status_code == 200 and resp.headers["X-Request-Id"] == "req-1.a:b"
    unsafe = scim.get(f"/scim/v2/Users/{user['id']}", headers={"X-Request-Id": "a b"})
    assert len(unsafe.headers["X-Request-Id"]) == 32  # ours instead
    timeline = admin.get(f"/api/v1/audit/timeline/{user['id']}").get_json()["events"]
    patch = timeline[-1]
    assert patch["action"] == "user.patch"
    assert patch["request_id"] == "req-1.a:b" and patch["correlation_id"] == "okta-7"
    assert patch["user_agent"] == "Okta SCIM Client 1.0"


def test_every_request_is_counted_by_endpoint_method_and_status(scim):
    """The Prometheus counter goes up once per request, under its own labels each time."""

    def counted(status: str) -> float:
        value = REQUESTS.labels("/scim/v2/Users/<user_id>", "GET", status)._value.get()
        return float(value)

    user = scim.create_user("lee@example.com")
    found, missing = counted("200"), counted("404")
    for _ in range(3):
        assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200
    assert scim.get("/scim/v2/Users/nobody").status_code == 404
    assert counted("200") == found + 3 and counted("404") == missing + 1


def test_a_scim_answer_sets_and_varies_on_no_cookie(scim):
    """A SCIM request carries no cookie and its session is never used: no Set-Cookie, no
    ``Vary: Cookie``."""
    resp = scim.get("/scim/v2/Users")
    assert resp.status_code == 200
    assert "Set-Cookie" not in resp.headers
    assert "Cookie" not in resp.headers.get("Vary", "")


def test_the_token_read_is_what_execute_reads(app, scim):
    """db.KeyRead's token row is the row ``execute`` returns, through the engine's events."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    params = {"token_hash": hash_token(scim.token)}
    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", count)
    try:
        with db.reader(app)() as session:
            connection = session.connection()
            fast = _BY_HASH.execute(connection, params).first()
            plain = connection.execute(_BY_HASH.statement, params).first()
            assert _BY_HASH.execute(connection, {"token_hash": "0" * 64}).first() is None
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert fast is not None and fast == plain and fast._mapping == plain._mapping
    assert fast.org_id == scim.org_id
    assert sum("FROM scim_tokens" in s for s in seen) == 3


def test_our_request_ids_are_uuid4_hex(scim):
    """A request without an id of its own gets ``uuid.uuid4().hex``: a new one each request."""
    import uuid

    ids = {scim.get("/scim/v2/Users").headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_the_access_line_is_logged_as_logger_info_logs_it(scim, caplog):
    """One record per request on ``scim_server.access``: the message, its fields, and the
    caller (this module's ``_finish``) as ``Logger.info`` would name it."""
    import logging

    with caplog.at_level(logging.INFO, logger="scim_server.access"):
        resp = scim.get("/scim/v2/Users", headers={"X-Okta-Request-Id": "okta-9"})
    (record,) = [r for r in caplog.records if r.name == "scim_server.access"]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("GET /scim/v2/Users 200 ")
    assert record.getMessage().endswith("ms")
    assert record.fields == {
        "request_id": resp.headers["X-Request-Id"],
        "correlation_id": "okta-9",
        "org_id": scim.org_id,
        "method": "GET",
        "path": "/scim/v2/Users",
        "status": 200,
        "duration_ms": record.fields["duration_ms"],
    }
    assert record.funcName == "_finish" and record.pathname.endswith("observability.py")
    assert record.module == "observability" and record.lineno > 0


def test_the_formatters_time_is_logging_s_to_the_millisecond():
    """Text and JSON lines carry the time ``logging.Formatter`` would write, for records
    of one second and of seconds apart, in any order."""
    import logging

    from scim_server.observability import JsonFormatter, TextFormatter

    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    ours, theirs = TextFormatter(fmt), logging.Formatter(fmt)
    as_json = JsonFormatter()
    for created in (1765000000.001, 1765000000.999, 1765000001.5, 1765000000.25, 1700000000.0):
        record = logging.LogRecord("scim_server.access", logging.INFO, "f", 1, "m", (), None)
        record.created, record.msecs = created, float(int((created % 1) * 1000))
        assert ours.format(record) == theirs.format(record)
        stamp = logging.Formatter.formatTime(as_json, record, "%Y-%m-%dT%H:%M:%S")
        assert as_json.formatTime(record, "%Y-%m-%dT%H:%M:%S") == stamp
