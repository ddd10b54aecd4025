"""Exports an auditor verifies offline: with the public key only, and every tampering found.

The same files go through ``scim-server audit verify-export`` and the
standalone one-file verifier (run as a separate Python process): the answers
must be identical.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import itertools
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from scim_server.audit import offline
from scim_server.audit.signing import new_private_pem, signer_from_pem
from scim_server.cli import main
from tests.support import Scim

STANDALONE = Path(offline.__file__)


def _make_events(scim: Scim, n: int = 4) -> None:
    for i in range(n):
        scim.create_user(f"offline{i}@example.com", displayName=f'Person, {i}\n"quoted"')


def _export(admin: Scim, tmp_path: Path, fmt: str = "ndjson", **params: str) -> Path:
    resp = admin.get("/api/v1/audit/export", query_string={"format": fmt, **params})
    assert resp.status_code == 200
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(resp.get_data())
    return path


def _keys(client, tmp_path: Path) -> Path:
    resp = client.get("/.well-known/audit-keys")
    assert resp.status_code == 200
    path = tmp_path / "keys.json"
    path.write_text(resp.get_data(as_text=True))
    return path


def _both(export: Path, keys: Path | None, *checkpoints: Path) -> tuple[int, str]:
    """The CLI's and the standalone script's answers, checked to be the same."""
    args = [str(export)]
    if keys is not None:
        args += ["--public-key", str(keys)]
    for cp in checkpoints:
        args += ["--checkpoint", str(cp)]
    via_cli = CliRunner().invoke(main, ["audit", "verify-export", *args])
    script = subprocess.run(
        [sys.executable, "-I", str(STANDALONE), *args], capture_output=True, text=True, check=False
    )
    assert (via_cli.exit_code, via_cli.output) == (script.returncode, script.stdout)
    return script.returncode, script.stdout.strip()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_the_standalone_verifier_needs_only_the_standard_library_and_cryptography():
    """Its imports: the standard library and cryptography, nothing of ours."""
    tree = ast.parse(STANDALONE.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - sys.stdlib_module_names == {"cryptography"}


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_an_untouched_export_verifies_with_the_public_key_only(scim, admin, client, tmp_path, fmt):
    """Every hash, the chain and the manifest's signature check out; no database, no secret."""
    _make_events(scim)
    status, text = _both(_export(admin, tmp_path, fmt), _keys(client, tmp_path))
    assert status == 0, text
    assert text.startswith("OK: ") and "manifest signed by key" in text


def test_without_a_public_key_the_manifest_is_not_taken_on_trust(scim, admin, tmp_path):
    """Hashes alone do not verify an export: the signature needs a published key."""
    _make_events(scim)
    status, text = _both(_export(admin, tmp_path), None)
    assert status == 1 and "give --public-key" in text


def _event(line: str, fmt: str) -> tuple[int, str]:
    """(seq, hash) of an export line (CSV: seq is the 2nd column, hash the last)."""
    if fmt == "csv":
        cells = next(csv.reader([line]))
        return int(cells[1]), cells[-1]
    doc = json.loads(line)
    return doc["seq"], doc["hash"]


def _edit(lines: list[str], index: int, old: str, new: str) -> None:
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)


@pytest.mark.parametrize(
    ("fmt", "tamper", "line", "reason"),
    [
        ("ndjson", "edit", 3, "does not match its hash (edited)"),
        ("ndjson", "drop", 3, "event 3 is missing"),
        ("ndjson", "drop_last_event", None, "lines dropped or added"),
        ("ndjson", "reorder", 2, "event 2 is missing (next present is 3): dropped or reordered"),
        ("ndjson", "truncate_mid_line", None, "truncated"),
        ("ndjson", "truncate_manifest", None, "does not end with its manifest"),
        ("ndjson", "forge_manifest", None, "the manifest is not authentic"),
        ("ndjson", "sign_with_another_key", None, "not among the public keys given"),
        ("csv", "edit", 4, "does not match its hash (edited)"),
        ("csv", "drop", 4, "event 3 is missing"),
        ("csv", "reorder", 3, "event 2 is missing (next present is 3): dropped or reordered"),
        ("csv", "truncate_manifest", None, "does not end with its manifest"),
        ("csv", "forge_manifest", None, "the manifest is not authentic"),
    ],
)
def test_each_tampering_is_found_at_the_first_line_at_fault(
    scim, admin, client, tmp_path, fmt, tamper, line, reason
):
    """Edited, dropped, reordered lines, a cut file, a forged manifest: FAILED, with the line."""
    _make_events(scim)
    export = _export(admin, tmp_path, fmt)
    lines = _lines(export)
    events = len(lines) - (2 if fmt == "csv" else 1)
    manifest_line = len(lines)
    offset = 1 if fmt == "csv" else 0  # the CSV header is line 1
    if tamper == "edit":
        _edit(lines, 2 + offset, "token.create", "token.revoke")
    elif tamper == "drop":
        del lines[2 + offset]
    elif tamper == "drop_last_event":
        del lines[-2]
        line = manifest_line - 1
    elif tamper == "reorder":
        lines[1 + offset], lines[2 + offset] = lines[2 + offset], lines[1 + offset]
    elif tamper == "truncate_mid_line":
        lines = [*lines[:-2], lines[-2][: len(lines[-2]) // 2]]
        line = manifest_line - 1
    elif tamper == "truncate_manifest":
        lines = lines[:-1]
        line = manifest_line
    elif tamper in ("forge_manifest", "sign_with_another_key"):
        prefix = "# manifest " if fmt == "csv" else ""
        raw = lines[-1][len(prefix) :]
        doc = json.loads(raw)
        manifest = doc if fmt == "csv" else doc["manifest"]
        if tamper == "forge_manifest":  # drop the last event; make the manifest agree
            del lines[-2]
            kept = [_event(ln, fmt) for ln in lines[offset:-1]]
            manifest["count"] = events - 1
            manifest["last_seq"], manifest["last_hash"] = kept[-1]
            manifest["events_digest"] = hashlib.sha256(
                b"".join(offline.digest_line(seq, h) for seq, h in kept)
            ).hexdigest()
        else:
            manifest = signer_from_pem(new_private_pem()).sign(manifest)
        body = manifest if fmt == "csv" else {"manifest": manifest}
        lines[-1] = prefix + json.dumps(body) + "\n"
        line = len(lines)
    export.write_text("".join(lines), encoding="utf-8")
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith(f"FAILED line {line}: "), text
    assert reason in text, text


def test_reordering_events_kept_in_place_breaks_the_links(scim, admin, client, tmp_path):
    """Two events swapped with their seq numbers swapped back still fail: links and hashes."""
    _make_events(scim)
    export = _export(admin, tmp_path)
    lines = _lines(export)
    a, b = json.loads(lines[2]), json.loads(lines[3])
    a["seq"], b["seq"] = b["seq"], a["seq"]
    lines[2], lines[3] = json.dumps(b) + "\n", json.dumps(a) + "\n"
    export.write_text("".join(lines))
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1 and text.startswith("FAILED line 3: ")


def test_a_period_export_starting_mid_chain_verifies_from_its_first_prev_hash(
    scim, admin, client, tmp_path
):
    """A ``since`` export: the manifest says it starts mid-chain; its chain still checks."""
    _make_events(scim, 2)
    events = admin.get("/api/v1/audit", query_string={"limit": 1000}).get_json()["events"]
    middle = sorted(events, key=lambda e: e["seq"])[2]
    export = _export(admin, tmp_path, since=middle["occurred_at"])
    manifest = json.loads(_lines(export)[-1])["manifest"]
    assert manifest["starts_mid_chain"] is True and manifest["contiguous"] is True
    assert manifest["first_seq"] == middle["seq"] and manifest["first_prev_hash"]
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 0 and "mid-chain" in text


def test_a_filtered_export_checks_each_hash_and_the_digest(scim, admin, client, tmp_path):
    """One action only: not a contiguous chain, yet a dropped event is still found."""
    for i in range(3):  # each create followed by another event: the creates are not contiguous
        created = scim.create_user(f"offline{i}@example.com")
        scim.patch_ops(
            f"/scim/v2/Users/{created['id']}", {"op": "replace", "path": "title", "value": "X"}
        )
    export = _export(admin, tmp_path, action="user.create")
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 0 and "not a contiguous chain" in text
    lines = _lines(export)
    del lines[1]
    export.write_text("".join(lines))
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1 and "manifest says 3" in text


def test_an_export_that_failed_midway_does_not_verify(scim, admin, client, tmp_path):
    """An error record in place of the manifest: incomplete, never OK."""
    _make_events(scim, 1)
    export = _export(admin, tmp_path)
    lines = _lines(export)
    lines[-1] = json.dumps({"error": {"detail": "incomplete"}}) + "\n"
    export.write_text("".join(lines))
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1 and "incomplete" in text


def test_csv_keeps_null_and_empty_text_apart(scim, admin, client, session, tmp_path):
    """An event whose detail is "" (not null) verifies from CSV: the cell is quoted, null is not."""
    from scim_server.audit import record

    with session.begin():
        record(session, scim.org_id, "test.empty", detail="", user_name=None)
    export = _export(admin, tmp_path, "csv", action="test.empty")
    row = _lines(export)[1]
    assert ',"",' in row
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 0, text


def test_an_export_after_a_purge_starts_at_the_purge_checkpoint(
    scim, admin, client, session, tmp_path
):
    """The chain now starts mid-way; the signed purge checkpoint vouches for its start."""
    from datetime import timedelta

    from scim_server.audit.queries import purge
    from scim_server.db import utcnow

    _make_events(scim, 2)
    session.rollback()
    cutoff = utcnow() + timedelta(seconds=1)
    purge(session, scim.org_id, cutoff, now=cutoff + timedelta(days=1))
    scim.create_user("after-purge@example.com")
    export = _export(admin, tmp_path)
    manifest = json.loads(_lines(export)[-1])["manifest"]
    assert manifest["starts_mid_chain"] is True
    purge_cp = next(cp for cp in manifest["checkpoints"] if cp["kind"] == "purge")
    assert purge_cp["seq"] == manifest["first_seq"] - 1
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 0, text
    assert f"the manifest's checkpoint at seq {purge_cp['seq']} matches" in text


def _signed_without(app, export: Path, *dropped: int) -> None:
    """The NDJSON export with the events at ``dropped`` (0-based event lines) taken out and its
    manifest made to agree, signed with the server's own key: what a server that signed over
    a log with events deleted produced."""
    from scim_server.audit.signing import AUDIT_SIGNER_INFO
    from scim_server.db import db

    lines = _lines(export)
    kept = [ln for i, ln in enumerate(lines[:-1]) if i not in dropped]
    events = [json.loads(ln) for ln in kept]
    manifest = json.loads(lines[-1])["manifest"]
    manifest.update(
        count=len(events),
        first_seq=events[0]["seq"],
        first_prev_hash=events[0]["prev_hash"],
        last_seq=events[-1]["seq"],
        last_hash=events[-1]["hash"],
        contiguous=all(
            b["seq"] == a["seq"] + 1 and b["prev_hash"] == a["hash"]
            for a, b in itertools.pairwise(events)
        ),
        events_digest=hashlib.sha256(
            b"".join(offline.digest_line(e["seq"], e["hash"]) for e in events)
        ).hexdigest(),
    )
    with db.reader(app)() as session:
        signer = session.info[AUDIT_SIGNER_INFO]
    export.write_text("".join(kept) + json.dumps({"manifest": signer.sign(manifest)}) + "\n")


def test_a_signed_export_of_the_whole_log_with_a_gap_fails(app, scim, admin, client, tmp_path):
    """An unfiltered export is the whole log: a missing event fails at its place, whatever
    ``contiguous`` its manifest says (a server that signed over a deleted event said false,
    and this verifier said OK)."""
    _make_events(scim, 4)
    export = _export(admin, tmp_path)
    _signed_without(app, export, 3)
    assert json.loads(_lines(export)[-1])["manifest"]["contiguous"] is False
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith("FAILED line 4: event 4 is missing (next present is 5)"), text


def test_a_signed_export_of_the_whole_log_with_its_tail_cut_fails(
    app, scim, admin, client, tmp_path
):
    """The signed chain head is past the export's last event: the tail was cut (it was OK,
    with a note on the head)."""
    _make_events(scim, 4)
    export = _export(admin, tmp_path)
    events = len(_lines(export)) - 1
    _signed_without(app, export, events - 2, events - 1)
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith(f"FAILED line {events - 1}: the export ends at event {events - 2}")
    assert f"signed head is at event {events} (tail truncated)" in text


def test_a_signed_export_of_the_whole_log_without_its_first_event_fails(
    app, scim, admin, client, tmp_path
):
    """The whole log starts right after its base (genesis, or the last purged event)."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path)
    _signed_without(app, export, 0)
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith("FAILED line 1: event 2 is first but the log starts at event 1"), text


def _cut_back_after_a_filed_checkpoint(admin: Scim, scim: Scim, session, tmp_path) -> Path:
    """The documented limit: someone with the database and a copy of an old head row cuts
    the log back to it and puts that row back, after the compliance team filed a checkpoint.
    The checkpoint's file."""
    from sqlalchemy import delete

    from scim_server.models import AuditCheckpoint, AuditEvent, AuditHead

    _make_events(scim, 3)
    session.expire_all()
    old = session.get(AuditHead, scim.org_id)
    kept = (old.seq, old.hash, old.base_seq, old.base_hash, old.signature)
    session.rollback()
    for i in range(3):
        scim.create_user(f"later{i}@example.com")
    filed = admin.post("/api/v1/audit/checkpoints", {})
    assert filed.status_code == 201, filed.get_json()
    session.execute(
        delete(AuditEvent).where(AuditEvent.org_id == scim.org_id, AuditEvent.seq > kept[0])
    )
    session.execute(
        delete(AuditCheckpoint).where(
            AuditCheckpoint.org_id == scim.org_id, AuditCheckpoint.seq > kept[0]
        )
    )
    head = session.get(AuditHead, scim.org_id)
    head.seq, head.hash, head.base_seq, head.base_hash, head.signature = kept
    session.commit()
    path = tmp_path / "filed.json"
    path.write_text(json.dumps(filed.get_json()))
    return path


def test_a_filed_checkpoint_beyond_the_exported_head_fails(scim, admin, client, session, tmp_path):
    """An export made after the cut ends at the old head, before the filed checkpoint's
    event: the history it vouches for was removed (README: exit 1), as ``audit verify
    --checkpoint`` says (it was OK, the checkpoint "outside this export")."""
    filed = _cut_back_after_a_filed_checkpoint(admin, scim, session, tmp_path)
    assert admin.get("/api/v1/audit/verify").status_code == 200  # the old head row verifies
    seq = json.loads(filed.read_text())["seq"]
    for params in ({}, {"action": "user.create"}):
        status, text = _both(_export(admin, tmp_path, **params), _keys(client, tmp_path), filed)
        assert status == 1, text
        assert f"the filed checkpoint at seq {seq} was made before this export" in text
        assert "history removed after a filed checkpoint" in text


def test_a_checkpoint_filed_after_the_export_is_outside_it(scim, admin, client, tmp_path):
    """Last quarter's export checked with this quarter's checkpoint: beyond its head, yet
    made after it, so nothing is missing."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path)
    scim.create_user("later@example.com")
    filed = tmp_path / "filed.json"
    filed.write_text(json.dumps(admin.post("/api/v1/audit/checkpoints", {}).get_json()))
    status, text = _both(export, _keys(client, tmp_path), filed)
    assert status == 0, text
    assert "the filed checkpoint at seq" in text and "is outside this export" in text


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_a_key_given_twice_in_one_object_is_refused(scim, admin, client, tmp_path, fmt):
    """A viewer that keeps the first ``user_name`` shows a forged one; the hash covers the
    last: a duplicate key, at the top of an event or in a JSON cell, fails at its line."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path, fmt)
    lines = _lines(export)
    at = next(i for i, ln in enumerate(lines) if "offline0@example.com" in ln and "{" in ln)
    if fmt == "ndjson":
        lines[at] = '{"user_name": "mallory@evil.example", ' + lines[at][1:]
    else:  # the changes cell: a first, forged userName before the real one
        _edit(lines, at, '"{""', '"{""userName"": ""mallory@evil.example"", ""')
    export.write_text("".join(lines), encoding="utf-8")
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith(f"FAILED line {at + 1}: "), text
    assert "appears twice in one object" in text, text


def _csv_columns(export: Path, tamper: str) -> None:
    """The CSV's records (not its manifest) with a column duplicated, added or dropped."""
    records, manifest = export.read_bytes().decode().split("# manifest ", 1)
    out: list[str] = []
    for i, row in enumerate(records.split("\r\n")):
        if not row:
            out.append(row)
        elif tamper == "duplicated":  # a spreadsheet shows the first, the hash the last
            out.append(("user_name," if i == 0 else "mallory@evil.example,") + row)
        elif tamper == "added":
            out.append(("note," if i == 0 else ",") + row)
        else:  # dropped: the first column (org_id), header and cells
            out.append(row.split(",", 1)[1])
    export.write_bytes(("\r\n".join(out) + "# manifest " + manifest).encode())


@pytest.mark.parametrize("tamper", ["duplicated", "added", "dropped"])
def test_a_csv_whose_columns_are_not_the_exports_is_refused(scim, admin, client, tmp_path, tamper):
    """The header must be exactly the columns the signed manifest lists."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path, "csv")
    assert json.loads(_lines(export)[-1].removeprefix("# manifest "))["header"][:2] == [
        "org_id",
        "seq",
    ]
    _csv_columns(export, tamper)
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith("FAILED line 1: the header is not the export's columns"), text


def _as_csv_version_2(app, export: Path) -> None:
    """The CSV export as the previous format wrote it (no ``header`` in the manifest, its
    ``csv_version`` 2), signed with the server's key."""
    from scim_server.audit.signing import AUDIT_SIGNER_INFO
    from scim_server.db import db

    records, manifest_line = export.read_bytes().decode().split("# manifest ", 1)
    manifest = json.loads(manifest_line)
    del manifest["header"]
    manifest["csv_version"] = 2
    with db.reader(app)() as session:
        signed = session.info[AUDIT_SIGNER_INFO].sign(manifest)
    export.write_bytes((records + "# manifest " + json.dumps(signed) + "\n").encode())


def test_a_csv_export_of_version_2_verifies_against_the_columns_of_its_time(
    app, scim, admin, client, tmp_path
):
    """A manifest from before it listed the columns: the header must be the log's columns as
    they were then; a duplicated one still fails."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path, "csv")
    _as_csv_version_2(app, export)
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 0, text
    _csv_columns(export, "duplicated")
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1 and text.startswith("FAILED line 1: the header is not"), text


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        ('"\\ud800"', "not Unicode text (a lone surrogate escape)"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_a_hostile_line_is_named_not_a_crash(scim, admin, client, tmp_path, hostile, reason):
    """README: the verifier prints ``FAILED line N: ...``. A lone surrogate escape (valid
    JSON, not text once decoded) or a value nested past the parser's depth raised out of the
    verifier with a traceback; both commands."""
    _make_events(scim, 1)
    export = _export(admin, tmp_path)
    lines = _lines(export)
    lines[1] = lines[1].rstrip("}\n") + f', "note": {hostile}}}\n'
    export.write_text("".join(lines), encoding="utf-8")
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith("FAILED line 2: ") and reason in text, text


def test_an_empty_filter_is_a_filter(scim, admin, client, tmp_path):
    """``?action=`` selects the events whose action is empty (none): not the whole log, so
    no head to end at."""
    _make_events(scim, 1)
    export = _export(admin, tmp_path, action="")
    assert json.loads(_lines(export)[-1])["manifest"]["parameters"] == {"action": ""}
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 0, text


def _csv_cell(value: object) -> str:
    """A cell as the server writes it (``csv_version`` 3): null empty, JSON for objects."""
    if value is None:
        return ""
    text = (
        json.dumps(value, sort_keys=True, ensure_ascii=False)
        if isinstance(value, dict)
        else str(value)
    )
    return offline.csv_escape(text)


def _synthetic_export(n: int, fmt: str) -> tuple[bytes, dict]:
    """A valid, signed export of ``n`` events written as the server writes one, and its keys."""
    signer = signer_from_pem(new_private_pem())
    prev = first_prev = hashlib.sha256(b"base").hexdigest()
    digest = hashlib.sha256()
    events = []
    for seq in range(1, n + 1):
        ev = {
            "org_id": "o",
            "seq": seq,
            "occurred_at": "2026-01-01T00:00:00.000000",
            "received_at": None,
            "actor_type": "token",
            "actor_id": "a",
            "actor_name": "okta",
            "source_ip": "10.0.0.1",
            "user_agent": "Okta SCIM Client 1.0" * 5,
            "request_id": "r",
            "correlation_id": None,
            "action": "user.create",
            "resource_type": "User",
            "resource_id": "x",
            "external_id": None,
            "user_name": f"u{seq}@example.com",
            "outcome": "success",
            "status": 201,
            "scim_type": None,
            "detail": None,
            "changes": {"displayName": {"after": f'Person, {seq}\n"quoted"'}},
            "explanation": None,
            "prev_hash": prev,
        }
        ev["hash"] = prev = offline.event_hash(ev)
        digest.update(offline.digest_line(seq, ev["hash"]))
        events.append(ev)
    manifest = {
        "type": offline.MANIFEST_TYPE,
        "organization": "o",
        "parameters": {"action": "user.create"},
        "format": fmt,
        "count": n,
        "first_seq": 1,
        "last_seq": n,
        "first_prev_hash": first_prev,
        "last_hash": prev,
        "contiguous": True,
        "starts_mid_chain": False,
        "events_digest": digest.hexdigest(),
        "chain_head": None,
        "chain_base": None,
        "checkpoints": [],
        "generated_at": "2026-01-01T00:00:00",
    }
    if fmt == "ndjson":
        lines = [json.dumps(ev, sort_keys=True, ensure_ascii=False) + "\n" for ev in events]
        lines.append(json.dumps({"manifest": signer.sign(manifest)}) + "\n")
    else:
        header = list(offline.LEGACY_HEADER)
        manifest.update(
            columns={
                "seq": "integer",
                "status": "integer",
                "changes": "json",
                "explanation": "json",
            },
            header=header,
            csv_version=offline.CSV_VERSION,
        )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        for ev in events:
            writer.writerow(_csv_cell(ev[c]) for c in header)
        lines = [out.getvalue(), "# manifest " + json.dumps(signer.sign(manifest)) + "\n"]
    return "".join(lines).encode(), offline.load_public_keys(signer.public_pem)


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_the_offline_verifier_reads_the_export_as_a_stream(fmt):
    """An auditor verifies a year's export (gigabytes) on a laptop: the verifier held the
    raw bytes, their decoded text and every parsed event at once (about 7x the file). It
    reads line by line: what it holds beyond the file stays under the file's own size."""
    raw, keys = _synthetic_export(10_000, fmt)
    tracemalloc.start()
    try:
        report = offline.verify_export(raw, keys)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.text()
    assert report.count == 10_000
    assert peak < len(raw), f"{peak / 1e6:.1f} MB held for a {len(raw) / 1e6:.1f} MB export"


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (None, "the file is truncated or altered: wrong number of columns"),
        ("# manifest {}\n", "the file is truncated or altered: unreadable CSV (line"),
    ],
    ids=["closed-in-the-manifest", "never-closed"],
)
def test_a_quote_opened_in_the_last_record_swallows_the_manifest(
    scim, admin, client, tmp_path, manifest, reason
):
    """A quote opened at the end of the last record takes the manifest line into a cell: the
    file does not end with its manifest (the last line looks like one, and is not)."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path, "csv")
    lines = _lines(export)
    lines[-2] = lines[-2].rstrip("\r\n") + ',"\r\n'
    if manifest is not None:
        lines[-1] = manifest
    export.write_text("".join(lines), encoding="utf-8")
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith("FAILED line ") and reason in text, text


def test_a_file_that_is_not_utf8_is_named_before_anything_else(scim, admin, client, tmp_path):
    """A byte that is not UTF-8 in the middle of an export: refused as not text, whatever
    else it holds."""
    _make_events(scim, 2)
    export = _export(admin, tmp_path)
    raw = export.read_bytes()
    export.write_bytes(raw[:40] + b"\xff" + raw[40:])
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1 and text == "FAILED the file is not UTF-8 text (not an export, or altered)"
