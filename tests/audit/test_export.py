"""Audit export over HTTP: ends with its manifest when complete, with an error record if not."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy.exc import OperationalError

from scim_server.audit import queries
from tests.support import Scim


def _make_events(scim: Scim, n: int) -> None:
    for i in range(n):
        scim.create_user(f"export{i}@example.com")


@pytest.fixture
def broken_midway(monkeypatch):
    """The database goes away after two events have been streamed."""
    real = queries.stream

    def stream(session, org_id, flt, batch=1000, through=None):
        for n, event in enumerate(real(session, org_id, flt, batch, through)):
            if n == 2:
                raise OperationalError("SELECT audit_events", {}, Exception("server closed"))
            yield event

    monkeypatch.setattr(queries, "stream", stream)


def test_a_complete_export_ends_with_its_manifest(scim, admin):
    """Every event, then the manifest with the count; no error record."""
    _make_events(scim, 3)
    lines = admin.get("/api/v1/audit/export").get_data(as_text=True).splitlines()
    records = [json.loads(line) for line in lines]
    assert all("error" not in r for r in records)
    manifest = records[-1]["manifest"]
    assert manifest["count"] == len(records) - 1 >= 3
    assert manifest["last_seq"] == records[-2]["seq"]


def test_an_export_failing_midway_ends_with_an_error_record(scim, admin, broken_midway):
    """NDJSON: the events sent so far, then an explicit error record instead of a manifest."""
    _make_events(scim, 4)
    resp = admin.get("/api/v1/audit/export")
    assert resp.status_code == 200
    records = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert not any("manifest" in r for r in records)
    error = records[-1]["error"]
    assert error["count"] == 2 == len(records) - 1
    assert error["last_seq"] == records[1]["seq"] and error["reason"] == "OperationalError"
    assert "incomplete" in error["detail"] and error["organization"] == scim.org_id


def test_a_csv_export_failing_midway_ends_with_an_error_line(scim, admin, broken_midway):
    """CSV: header, the rows sent so far, then a ``# error`` line (never a bare stop)."""
    _make_events(scim, 4)
    lines = admin.get("/api/v1/audit/export?format=csv").get_data(as_text=True).splitlines()
    assert lines[-1].startswith("# error ")
    assert not any(line.startswith("# manifest") for line in lines)
    error = json.loads(lines[-1].removeprefix("# error "))
    rows = list(csv.reader(io.StringIO("\n".join(lines[:-1]))))
    assert error["count"] == 2 == len(rows) - 1


def test_the_cli_export_exits_1_when_incomplete(tmp_path, monkeypatch):
    """``scim-server audit export`` writes the error record and exits 1 with a clear message."""
    from click.testing import CliRunner

    from scim_server.cli import main

    def stream(session, org_id, flt, batch=1000, through=None):
        raise OperationalError("SELECT audit_events", {}, Exception("server closed"))
        yield  # a generator, like the real one

    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"]).exit_code == 0
    monkeypatch.setattr(queries, "stream", stream)
    out = tmp_path / "out.ndjson"
    result = runner.invoke(main, ["audit", "export", "--org", "acme", "-o", str(out)])
    assert result.exit_code == 1 and "the export is incomplete" in result.output
    (last,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert last["error"]["count"] == 0 and last["error"]["reason"] == "OperationalError"


def test_an_export_of_an_edited_event_ends_with_an_error_and_signs_nothing(scim, admin, session):
    """An event edited in the database (its hash not redone): the export stops there with
    an error record naming it, and no signed manifest; the CSV export the same."""
    from scim_server.models import AuditEvent

    _make_events(scim, 3)
    edited = session.get(AuditEvent, (scim.org_id, 2))
    edited.actor_name = "nobody"
    session.commit()
    for fmt in ("ndjson", "csv"):
        text = admin.get("/api/v1/audit/export", query_string={"format": fmt}).get_data(
            as_text=True
        )
        assert "manifest" not in text
        last = text.splitlines()[-1]
        error = json.loads(last[len("# error ") :] if fmt == "csv" else last)
        error = error if fmt == "csv" else error["error"]
        assert error["broken_seq"] == 2 and error["count"] == 1
        assert "does not verify" in error["detail"]


def _seqs(session, org_id: str) -> list[int]:
    from sqlalchemy import select

    from scim_server.models import AuditEvent

    stmt = select(AuditEvent.seq).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
    return list(session.scalars(stmt))


def _delete(session, org_id: str, *seqs: int) -> None:
    """Events deleted in the database: no key needed, no hash to redo."""
    from sqlalchemy import delete

    from scim_server.models import AuditEvent

    session.execute(delete(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.seq.in_(seqs)))
    session.commit()


def _refused(admin: Scim, fmt: str, **params: str) -> dict:
    """The export's error record (no manifest anywhere in it)."""
    resp = admin.get("/api/v1/audit/export", query_string={"format": fmt, **params})
    text = resp.get_data(as_text=True)
    assert "manifest" not in text
    last = text.splitlines()[-1]
    return json.loads(last.removeprefix("# error ")) if fmt == "csv" else json.loads(last)["error"]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_an_export_of_the_whole_log_with_a_deleted_middle_event_signs_nothing(
    scim, admin, session, fmt
):
    """README: the server signs no export of a log that does not verify. An event deleted
    from the middle leaves neighbours whose links are each sound: the whole log's export
    names the missing event in an error record, as ``verify`` does (it was signed, said
    ``contiguous: false``, and verified offline)."""
    _make_events(scim, 5)
    seqs = _seqs(session, scim.org_id)
    victim = seqs[len(seqs) // 2]
    _delete(session, scim.org_id, victim)
    assert admin.get("/api/v1/audit/verify").status_code == 409
    error = _refused(admin, fmt)
    assert error["broken_seq"] == victim and error["count"] == victim - 1
    assert "does not verify" in error["detail"] and f"event {victim} is missing" in error["detail"]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_an_export_of_the_whole_log_with_its_tail_cut_signs_nothing(scim, admin, session, fmt):
    """The last two events deleted, the signed head row left: the export's last event must
    be the head (it was signed, the head a mere note offline)."""
    _make_events(scim, 5)
    last = _seqs(session, scim.org_id)[-1]
    _delete(session, scim.org_id, last - 1, last)
    assert admin.get("/api/v1/audit/verify").status_code == 409
    error = _refused(admin, fmt)
    assert error["broken_seq"] == last - 1 and error["count"] == last - 2
    assert "tail truncated" in error["detail"]


def test_an_export_of_the_whole_log_with_its_first_event_deleted_signs_nothing(
    scim, admin, session
):
    """The whole log starts after the head's base (genesis here): a deleted first event is a
    gap too, not an export that starts mid-chain."""
    _make_events(scim, 2)
    _delete(session, scim.org_id, 1)
    error = _refused(admin, "ndjson")
    assert error["broken_seq"] == 1 and error["count"] == 0
    assert "event 1 is missing" in error["detail"]


def test_a_filtered_export_of_a_log_with_a_gap_is_still_signed(scim, admin, session):
    """A filtered export skips events by design: it is signed, and says it is not contiguous."""
    _make_events(scim, 5)
    seqs = _seqs(session, scim.org_id)
    _delete(session, scim.org_id, seqs[len(seqs) // 2])
    lines = admin.get("/api/v1/audit/export", query_string={"action": "user.create"})
    manifest = json.loads(lines.get_data(as_text=True).splitlines()[-1])["manifest"]
    assert manifest["parameters"] == {"action": "user.create"} and manifest["count"] >= 4


def test_a_purge_while_the_export_reads_is_not_called_tampering(scim, admin, session, monkeypatch):
    """A purge that commits while the whole log is read (PostgreSQL: each batch sees it)
    removes events the export had not reached: an incomplete export to run again, not a log
    that does not verify."""
    from datetime import timedelta

    from scim_server.db import utcnow

    _make_events(scim, 3)
    real = queries.stream

    def stream(session_, org_id, flt, batch=1000, through=None):
        for n, event in enumerate(real(session_, org_id, flt, 2, through)):
            if n == 1:
                session.rollback()
                cutoff = utcnow() + timedelta(seconds=1)
                queries.purge(session, org_id, cutoff, now=cutoff + timedelta(days=1))
            yield event

    monkeypatch.setattr(queries, "stream", stream)
    error = _refused(admin, "ndjson")
    assert error["reason"] == "PurgedWhileReading" and "broken_seq" not in error
    assert "Run it again" in error["detail"]


def _delete_head(session, org_id: str) -> None:
    from sqlalchemy import text

    session.execute(text("DELETE FROM audit_heads WHERE org_id = :o"), {"o": org_id})
    session.commit()


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
@pytest.mark.parametrize("params", [{}, {"action": "user.create"}], ids=["whole", "filtered"])
def test_an_export_of_a_log_without_its_head_row_signs_nothing(scim, admin, session, fmt, params):
    """The head row deleted, the events left: the export signed a manifest of 0 events and
    no chain head as the whole log (the offline verifier said OK). It ends with its error
    record instead, as for any log that does not verify; filtered or not."""
    _make_events(scim, 4)
    _delete_head(session, scim.org_id)
    error = _refused(admin, fmt, **params)
    assert error["broken_seq"] == 1 and error["count"] == 0
    assert "does not verify" in error["detail"] and "chain head missing" in error["detail"]


def test_an_export_of_the_whole_log_with_an_event_beyond_its_head_signs_nothing(
    scim, admin, session
):
    """An event forged past the signed head: verify refuses the log, so the whole log's
    export is not signed either (the forged event was left out and the rest signed)."""
    from scim_server.models import AuditEvent, AuditHead

    _make_events(scim, 3)
    head = session.get(AuditHead, scim.org_id)
    last = session.get(AuditEvent, (scim.org_id, head.seq))
    values = {c.name: getattr(last, c.name) for c in AuditEvent.__table__.columns}
    values.update(seq=head.seq + 1, prev_hash=last.hash, hash="0" * 64)
    session.execute(AuditEvent.__table__.insert().values(**values))
    session.commit()
    error = _refused(admin, "ndjson")
    assert error["broken_seq"] == head.seq + 1 and "beyond the signed head" in error["detail"]
