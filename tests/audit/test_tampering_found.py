"""The provisioning log as a compliance team relies on it: tampering that verify and the
exports missed, and searches that missed events. Each test failed before its fix (found by a
probe of the log's search, export and verify)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from scim_server.cli import main
from scim_server.db import db
from scim_server.models import AuditEvent
from tests.support import Scim
from tests.support.console import sign_in_console


def _export(
    admin: Scim, tmp_path: Path, fmt: str = "ndjson", name: str = "", **params: str
) -> Path:
    resp = admin.get("/api/v1/audit/export", query_string={"format": fmt, **params})
    assert resp.status_code == 200
    path = tmp_path / (name or f"export.{fmt}")
    path.write_bytes(resp.get_data())
    return path


def _keys(client, tmp_path: Path) -> Path:
    resp = client.get("/.well-known/audit-keys")
    path = tmp_path / "keys.json"
    path.write_text(resp.get_data(as_text=True))
    return path


def _verify_file(export: Path, keys: Path, *filed: Path) -> tuple[int, str]:
    args = [str(export), "--public-key", str(keys)]
    for cp in filed:
        args += ["--checkpoint", str(cp)]
    res = CliRunner().invoke(main, ["audit", "verify-export", *args])
    return res.exit_code, res.output.strip()


def _events(app, org_id: str) -> list[AuditEvent]:
    with db.reader(app)() as s:
        return list(s.query(AuditEvent).filter_by(org_id=org_id).order_by(AuditEvent.seq))


# -- search -------------------------------------------------------------------------------


def _edited(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cli(tmp_path: Path, monkeypatch):
    from scim_server.audit.signing import new_private_pem

    key = tmp_path / "signing.pem"
    key.write_bytes(new_private_pem())
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", str(key))
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args))

    return run


def test_api_search_by_user_name_ignores_case(scim, admin):
    """userName is case-insensitive in this product (README: unique case-insensitively);
    a compliance search for the person typed in another case must find their events."""
    scim.create_user("bjensen@example.com")
    resp = admin.get("/api/v1/audit", query_string={"user_name": "BJensen@Example.com"})
    assert resp.status_code == 200
    actions = [e["action"] for e in resp.get_json()["events"]]
    assert "user.create" in actions, actions


def test_api_search_by_user_name_matches_unicode_forms(scim, admin):
    """NFC and NFD spellings of one userName are one account (README: unique under NFKC):
    a search in the other form must find its events."""
    scim.create_user(unicodedata.normalize("NFC", "jos\u00e9@example.com"))
    nfd = unicodedata.normalize("NFD", "jos\u00e9@example.com")
    resp = admin.get("/api/v1/audit", query_string={"user_name": nfd})
    assert resp.status_code == 200
    actions = [e["action"] for e in resp.get_json()["events"]]
    assert "user.create" in actions, actions


def test_console_search_by_a_user_name_shaped_like_an_id(app, client, scim):
    """A userName of 36 characters with four dashes is taken for an account id, and the
    search by it finds nothing."""
    name = "mary-ann-leee-van-dyke@example.co.uk"
    assert len(name) == 36 and name.count("-") == 4
    user = scim.create_user(name)
    sign_in_console(app, client, scim, "auditor")
    create = next(
        e
        for e in _events(app, scim.org_id)
        if e.action == "user.create" and e.resource_id == user["id"]
    )
    page = client.get("/admin/log/", query_string={"user": name, "action": "user.create"})
    assert page.status_code == 200
    assert f"/admin/log/events/{create.seq}" in page.get_data(as_text=True)


def test_an_event_forged_at_a_negative_seq_is_not_listed_as_part_of_a_verified_log(
    app, scim, admin, session
):
    """A row inserted at seq -1 is never read by verify's walk (it starts at seq > -1) nor
    by ``unvouched`` (only rows past the head), so verify says OK; yet search, timeline and
    the failures report list it as part of the log."""
    user = scim.create_user("victim@example.com")
    session.rollback()
    first = session.get(AuditEvent, (scim.org_id, 1))
    values = {c.name: getattr(first, c.name) for c in AuditEvent.__table__.columns}
    values.update(
        seq=-1,
        action="user.delete",
        resource_id=user["id"],
        user_name="victim@example.com",
        outcome="failure",
        status=500,
        hash="0" * 64,
    )
    session.execute(AuditEvent.__table__.insert().values(**values))
    session.commit()
    verify = admin.get("/api/v1/audit/verify")
    listed = admin.get("/api/v1/audit", query_string={"user_name": "victim@example.com"})
    seqs = [e["seq"] for e in listed.get_json()["events"]]
    timeline = admin.get(f"/api/v1/audit/timeline/{user['id']}").get_json()["events"]
    # Either the tampering is found, or the forged row is not shown as part of the log.
    assert verify.status_code == 409 or (
        -1 not in seqs and -1 not in [e["seq"] for e in timeline]
    ), (
        verify.get_json(),
        seqs,
    )


def test_a_period_export_of_a_log_with_an_event_deleted_inside_the_period_is_not_signed(
    app, client, scim, admin, session, tmp_path
):
    """README: "The server signs no export of a log that does not verify". An event deleted
    in the middle of the period: verify says BROKEN, yet the period's export is signed
    ("contiguous": false) and the offline verifier says OK."""
    for i in range(4):
        scim.create_user(f"period{i}@example.com")
    events = _events(app, scim.org_id)
    since = events[1].occurred_at.isoformat()
    middle = events[len(events) // 2].seq
    session.execute(
        text("DELETE FROM audit_events WHERE org_id = :o AND seq = :s"),
        {"o": scim.org_id, "s": middle},
    )
    session.commit()
    assert admin.get("/api/v1/audit/verify").status_code == 409
    export = _export(admin, tmp_path, since=since)
    last = json.loads(export.read_text().splitlines()[-1])
    status, out = _verify_file(export, _keys(client, tmp_path))
    assert "manifest" not in last or status == 1, (last, out)


def test_a_filtered_export_during_which_a_purge_commits_ends_with_an_error(
    app, client, scim, admin, session, tmp_path, monkeypatch
):
    """README: "A purge that commits while an export reads ends it with an error record to
    run it again." A period export (since=...) read in batches while a purge commits: the
    events it had not read yet are gone; it must not end with a signed manifest."""
    from datetime import timedelta

    from scim_server.audit import queries
    from scim_server.audit.queries import purge
    from scim_server.db import utcnow

    for i in range(4):
        scim.create_user(f"purged{i}@example.com")
    session.rollback()
    since = _events(app, scim.org_id)[0].occurred_at.isoformat()
    real = queries.stream
    done = []

    def stream(session_, org_id, flt, batch=1000, through=None):
        for n, event in enumerate(real(session_, org_id, flt, 1, through)):
            if n == 2 and not done:
                done.append(True)
                with db.reader(app)() as other:
                    cutoff = utcnow() + timedelta(seconds=1)
                    purge(other, scim.org_id, cutoff, now=cutoff + timedelta(days=1))
            yield event

    monkeypatch.setattr(queries, "stream", stream)
    export = _export(admin, tmp_path, since=since)
    assert done
    last = json.loads(export.read_text().splitlines()[-1])
    assert "error" in last, last


def _sqlite_only(session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL's column types refuse such values")


def test_verify_names_an_event_whose_time_was_overwritten_with_garbage(
    app, scim, admin, session, monkeypatch
):
    """An event's occurred_at overwritten in the database (SQLite keeps any text): verify
    must answer 409 naming the event, not fail with a 500."""
    _sqlite_only(session)
    scim.create_user("garbage@example.com")
    session.execute(
        text("UPDATE audit_events SET occurred_at = 'tampered' WHERE org_id = :o AND seq = 2"),
        {"o": scim.org_id},
    )
    session.commit()
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    resp = admin.get("/api/v1/audit/verify")
    assert resp.status_code == 409, resp.status_code
    assert resp.get_json()["broken_seq"] == 2


def test_verify_names_an_event_whose_changes_are_not_json(app, scim, admin, session, monkeypatch):
    """As above: a ``changes`` cell that is no JSON (SQLite keeps any text) is an edited
    event (409), not a 500."""
    _sqlite_only(session)
    scim.create_user("garbage2@example.com")
    last = session.scalar(
        text("SELECT max(seq) FROM audit_events WHERE org_id = :o"), {"o": scim.org_id}
    )
    session.execute(
        text("UPDATE audit_events SET changes = '{not json' WHERE org_id = :o AND seq = :s"),
        {"o": scim.org_id, "s": last},
    )
    session.commit()
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    resp = admin.get("/api/v1/audit/verify")
    assert resp.status_code == 409, resp.status_code


def test_cli_verify_and_export_report_a_deleted_event(tmp_path, monkeypatch):
    """``audit verify`` exit 1 naming the event; ``audit export`` (whole log) exit 1; a
    period export covering the deleted event must not be signed either."""
    import sqlite3

    run = _cli(tmp_path, monkeypatch)
    assert run("org", "create", "acme").exit_code == 0
    for i in range(4):
        assert run("token", "create", "--org", "acme", "--name", f"t{i}").exit_code == 0
    ok = run("audit", "verify", "--org", "acme")
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output
    con = sqlite3.connect(tmp_path / "cli.db")
    con.execute("DELETE FROM audit_events WHERE seq = 3")
    con.commit()
    con.close()
    res = run("audit", "verify", "--org", "acme")
    assert res.exit_code == 1 and "BROKEN at event 3" in res.output, res.output
    out = tmp_path / "whole.ndjson"
    res = run("audit", "export", "--org", "acme", "-o", str(out))
    assert res.exit_code == 1, res.output
    out = tmp_path / "period.ndjson"
    res = run("audit", "export", "--org", "acme", "--since", "2000-01-01", "-o", str(out))
    assert res.exit_code == 1, (res.exit_code, out.read_text().splitlines()[-1][:300])


def test_a_log_wiped_entirely_does_not_verify(app, client, scim, admin, session, tmp_path):
    """Every organization's log starts with its organization.create event (README), so an
    organization that exists with no event, no head and no checkpoint had its log wiped:
    verify must not say OK, nor may the export be signed as the whole (empty) log."""
    scim.create_user("wiped@example.com")
    for table in ("audit_events", "audit_heads", "audit_checkpoints"):
        session.execute(text(f"DELETE FROM {table} WHERE org_id = :o"), {"o": scim.org_id})
    session.commit()
    verify = admin.get("/api/v1/audit/verify")
    export = _export(admin, tmp_path)
    last = json.loads(export.read_text().splitlines()[-1])
    status, out = _verify_file(export, _keys(client, tmp_path))
    assert verify.status_code == 409, verify.get_json()
    assert "manifest" not in last and status == 1, (last, out)


def test_api_search_refuses_an_inverted_time_range(admin):
    """The console refuses since >= until ("The end must be after the start"); the admin
    API answers 200 with nothing found."""
    resp = admin.get(
        "/api/v1/audit",
        query_string={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    )
    assert resp.status_code == 400, resp.status_code


def test_a_log_wiped_entirely_then_written_to_does_not_verify(scim, admin, session):
    """As above, then the IdP provisions someone: the new log starts at seq 1 from genesis,
    signed, and verify says OK: the whole history is gone without a trace."""
    for i in range(3):
        scim.create_user(f"wiped{i}@example.com")
    for table in ("audit_events", "audit_heads", "audit_checkpoints"):
        session.execute(text(f"DELETE FROM {table} WHERE org_id = :o"), {"o": scim.org_id})
    session.commit()
    scim.create_user("after-wipe@example.com")
    verify = admin.get("/api/v1/audit/verify")
    assert verify.status_code == 409, verify.get_json()


def test_a_retired_key_cannot_sign_a_manifest_by_leaving_out_its_date(
    app, client, scim, admin, tmp_path
):
    """README: a rotated-out key "stays listed with its end date, so what it signed still
    verifies, and nothing it signs after its retirement does". A manifest signed by the
    retired key with no (or an unreadable) ``generated_at`` is taken as valid: the date
    check is skipped when the date is missing."""
    from scim_server.audit.signing import new_private_pem, signer_from_pem
    from scim_server.db import AUDIT_SIGNER_INFO

    scim.create_user("rot0@example.com")
    admin.post("/api/v1/audit/checkpoints", {})  # the old key registered
    old_signer = app.config["AUDIT_SIGNER"]
    new_signer = signer_from_pem(new_private_pem())
    app.config["AUDIT_SIGNER"] = new_signer
    state = app.extensions["scim_db"]
    try:
        for factory in (state.reader, state.writer):
            factory.kw["info"][AUDIT_SIGNER_INFO] = new_signer
        scim.create_user("rot1@example.com")
        export = _export(admin, tmp_path)  # signed by the new key; the old one retired
        keys = _keys(client, tmp_path)
        published = {k["key_id"]: k for k in json.loads(keys.read_text())["keys"]}
        assert published[old_signer.key_id]["valid_until"] is not None
    finally:
        app.config["AUDIT_SIGNER"] = old_signer
        for factory in (state.reader, state.writer):
            factory.kw["info"][AUDIT_SIGNER_INFO] = old_signer
    lines = export.read_text().splitlines(keepends=True)
    manifest = json.loads(lines[-1])["manifest"]
    for forged_date in (None, "later"):
        doc = {
            k: v for k, v in manifest.items() if k not in ("signature", "key_id", "generated_at")
        }
        if forged_date is not None:
            doc["generated_at"] = forged_date
        forged = old_signer.sign(doc)
        path = tmp_path / f"forged-{forged_date}.ndjson"
        path.write_text("".join(lines[:-1]) + json.dumps({"manifest": forged}) + "\n")
        status, out = _verify_file(path, keys)
        assert status == 1, (forged_date, out)


def test_an_export_saved_again_with_a_bom_is_named_as_such(client, scim, admin, tmp_path):
    """A UTF-8 byte order mark (Notepad, Excel's "CSV UTF-8"): an NDJSON file was read as
    CSV and refused as "the header is not the export's columns". The verifier now says what
    happened to the file."""
    scim.create_user("bom@example.com")
    keys = _keys(client, tmp_path)
    for fmt in ("ndjson", "csv"):
        raw = _export(admin, tmp_path, fmt).read_bytes()
        assert _verify_file(_edited(tmp_path / f"plain.{fmt}", raw), keys)[0] == 0
        status, out = _verify_file(_edited(tmp_path / f"bom.{fmt}", b"\xef\xbb\xbf" + raw), keys)
        assert status == 1 and "byte order mark" in out, (fmt, out)
