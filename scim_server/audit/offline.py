#!/usr/bin/env python3
"""Verify an audit export of scim-server on any machine: no database, no server secret.

For auditors. This file is standalone: it needs Python 3.11+ and the
``cryptography`` package, nothing else (``pip install cryptography``). Get it
with ``scim-server audit verifier > verify_audit_export.py`` or from the source
tree (``scim_server/audit/offline.py``); ``scim-server audit verify-export``
runs this very code, so both give the same answers.

    python verify_audit_export.py EXPORT [--public-key KEYS] [--checkpoint FILED.json ...]

EXPORT is an NDJSON or CSV export (``scim-server audit export`` or
``GET /api/v1/audit/export``). KEYS is the server's published key document
(``GET /.well-known/audit-keys`` or ``scim-server audit public-key --json``) or
one public key in PEM. FILED.json is a checkpoint a compliance team filed
(``scim-server audit checkpoint --org X``).

What is checked: every event's hash (its content); the chain from the first
event's ``prev_hash`` to the last (an export of a period starts mid-chain and
says so in its manifest); the order and count of events; the manifest's
Ed25519 signature, by a published key valid when it was made; the signed
checkpoints the manifest carries and any filed one that falls in the range. An
export without filters is the whole log: from the chain's base to its signed
head, without a gap. A filed checkpoint made before the export and beyond its
chain head vouches for history since removed. The first line at fault is named.
Exit status: 0 verified, 1 not.

In a CSV export whose manifest says ``"csv_version": 2``, a cell that starts with
=, +, -, @, a tab, a carriage return or ' has one ' put before it, so that a
spreadsheet shows it as text and never runs it as a formula; the verifier takes
exactly that ' off again before hashing. Older CSV exports (no ``csv_version``)
have their cells as stored, and are read as such. From ``csv_version`` 3 the
manifest lists the header's columns, and the header must be exactly those; an
older export's must be the log's columns as they were then (``LEGACY_HEADER``).

The export is read as a stream, whatever its size: the manifest from the file's
end, then one record at a time; what is kept is a line and the hashes the checks
compare, not the file.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import hashlib
import io
import itertools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST_TYPE = "scim-server.audit.export-manifest"
CHECKPOINT_TYPE = "scim-server.audit.checkpoint"


# -- shared with the server (scim_server.audit.signing imports these) ----------------------


def canonical(doc: dict[str, Any]) -> bytes:
    """What a signature covers: sorted-key compact JSON, UTF-8, without ``signature``."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: dict[str, Any]) -> str:
    """An event's hash: SHA-256 of the canonical JSON of every field but ``hash``."""
    body = {k: v for k, v in event.items() if k != "hash"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A key's id: the first 16 hex digits of the SHA-256 of its 32 raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def digest_line(seq: int, hash_: str) -> bytes:
    """One event's part of the manifest's ``events_digest``."""
    return f"{seq}:{hash_}\n".encode()


# How a CSV export writes its cells; its manifest says which (``csv_version``, signed with
# it; absent in exports made before there was a choice). 1: each cell as stored. 2: a
# cell a spreadsheet would run as a formula (it starts with =, +, -, @, tab or CR) has a
# ' before it (OWASP's CSV injection advice), and so has one that starts with ' itself:
# reading back, exactly one leading ' comes off every cell that has one, so each value
# is read back as it was hashed and no two values are written the same.
# 3: as 2, and the manifest lists the header's columns (``header``): a column given twice
# (a spreadsheet shows the first, the hash covers the last), added or dropped is refused.
CSV_VERSION = 3
CSV_VERSIONS = (1, 2, 3)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# The header of a CSV export made before its manifest listed it (csv_version 1 and 2).
LEGACY_HEADER = (
    "org_id",
    "seq",
    "occurred_at",
    "received_at",
    "actor_type",
    "actor_id",
    "actor_name",
    "source_ip",
    "user_agent",
    "request_id",
    "correlation_id",
    "action",
    "resource_type",
    "resource_id",
    "external_id",
    "user_name",
    "outcome",
    "status",
    "scim_type",
    "detail",
    "changes",
    "explanation",
    "prev_hash",
    "hash",
)


def csv_escape(text: str) -> str:
    """A cell's text as a version 2 CSV export writes it."""
    return "'" + text if text[:1] in (*FORMULA_START, "'") else text


def csv_unescape(text: str) -> str:
    """A version 2 cell's text as it was before ``csv_escape``."""
    return text[1:] if text[:1] == "'" else text


# -- published keys ----------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey
    key_id: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def valid_at(self, when: datetime | None) -> bool:
        """Made before the key was retired (``valid_from`` only says since when it is in use).
        A statement with no readable date is the current key's to vouch for, never a retired
        one's: left out, the date would let a retired key sign anything."""
        if self.valid_until is None:
            return True
        return when is not None and when <= self.valid_until


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _pem_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_public_keys(text: str) -> dict[str, PublicKey]:
    """A key document (``{"keys": [...]}``) or one PEM public key, by key id."""
    if text.lstrip().startswith("-----BEGIN"):
        key = _pem_key(text)
        return {key_id(key): PublicKey(key, key_id(key))}
    doc = json.loads(text)
    keys: dict[str, PublicKey] = {}
    for entry in doc.get("keys", []) if isinstance(doc, dict) else []:
        key = _pem_key(entry["public_key"])
        kid = key_id(key)
        if entry.get("key_id") not in (None, kid):
            raise ValueError(f"key {entry.get('key_id')} does not match its public key")
        keys[kid] = PublicKey(
            key, kid, parse_time(entry.get("valid_from")), parse_time(entry.get("valid_until"))
        )
    return keys


def check_signature(
    doc: dict[str, Any], keys: dict[str, PublicKey], when: datetime | None
) -> str | None:
    """None if ``doc`` is signed by one of ``keys`` valid at ``when``; else what is wrong."""
    kid, signature = doc.get("key_id"), doc.get("signature")
    if not isinstance(kid, str) or not isinstance(signature, str):
        return "it carries no Ed25519 signature"
    public = keys.get(kid)
    if public is None:
        return f"it is signed by key {kid}, which is not among the public keys given"
    try:
        public.key.verify(base64.b64decode(signature, validate=True), canonical(doc))
    except (InvalidSignature, ValueError):
        return f"its signature does not verify with key {kid} (forged or altered)"
    if not public.valid_at(when):
        return f"key {kid} was retired before {when.isoformat() if when else '?'}"
    return None


# -- reading an export -------------------------------------------------------------


class Malformed(ValueError):
    """JSON that parses but is not what the server writes; the text says what is wrong."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise Malformed(
                f"the key {json.dumps(key)} appears twice in one object (a viewer shows one"
                " value, the hash covers the other): altered"
            )
        doc[key] = value
    return doc


# An escaped UTF-16 surrogate: the only way JSON text decodes to a str that is not Unicode
# text (a pair is fine; a lone one cannot be encoded, so cannot be hashed).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str) -> Any:
    """JSON as the server writes it: each key once, Unicode text, nested within reason;
    ``Malformed`` (a ``ValueError``) saying which rule is broken otherwise."""
    try:
        doc = json.loads(text, object_pairs_hook=_unique)
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(doc, ensure_ascii=False).encode()
    except RecursionError:
        raise Malformed("a value is nested too deeply to be the server's: altered") from None
    except UnicodeEncodeError:
        raise Malformed("a value is not Unicode text (a lone surrogate escape): altered") from None
    return doc


@dataclass
class Line:
    number: int  # the file's line where the record starts (1-based)
    kind: str  # "event", "manifest", "error", "header", "bad"
    data: Any = None
    problem: str | None = None


# An export is read as a stream, a line (or a CSV record) at a time, never whole: a year's
# export runs to gigabytes, and an auditor checks it on a laptop. ``BLOCK``: the bytes read
# at once where the file is read by blocks (its end, the UTF-8 check).
BLOCK = 1 << 16


@dataclass
class _Layout:
    """How a CSV export's records read, as its manifest says: the types of its cells, how
    they are written (``csv_version``) and the header they must have."""

    columns: Any = field(default_factory=dict)
    version: int = 1
    expected: Any = LEGACY_HEADER

    def take(self, manifest: Any) -> None:
        """Fold in a manifest line of the trailer (the last one found decides, as ever)."""
        if isinstance(manifest, dict):
            self.columns = manifest.get("columns") or {}
            self.version = csv_version(manifest)
            if self.version >= 3:
                self.expected = manifest.get("header")


class Export:
    """An export file, read as a stream from a binary file (or bytes).

    What each check needs is found without holding the file: its last line (the manifest)
    read from its end, the rest line by line from its start. A CSV record may run over
    several lines (a quoted value's line breaks), and whether a line of it is the manifest
    depends on the quotes before it: the manifest found from the end is taken on trial,
    and a pass that does not end with that very line (``lines`` yields it last) is done
    again from the start (``survey``), as the file truly reads. That only happens to a
    file that fails anyway.
    """

    def __init__(self, source: bytes | BinaryIO) -> None:
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        elif not source.seekable():  # a pipe: read from its end, so held (as it used to be)
            source = io.BytesIO(source.read())
        self.file: BinaryIO = source
        self.format = "csv"
        self.folded = _Layout()  # the layout the last ``lines`` pass found in its trailer

    def open(self) -> Line | None:
        """Check the file is UTF-8 text (``UnicodeDecodeError``), tell its format, and read
        its last line: the trailer on trial (a CSV record that is not a ``# `` line: None,
        the file is read to find its end)."""
        last_at = self._last_line_at()
        decoder = codecs.getincrementaldecoder("utf-8")()
        first = ""
        newlines = 0  # before the last line
        self.file.seek(0)
        offset = 0
        while block := self.file.read(BLOCK):
            text = decoder.decode(block)
            if not first:
                first = text.lstrip()[:1]
            if last_at is not None and offset < last_at:
                newlines += block.count(b"\n", 0, last_at - offset)
            offset += len(block)
        decoder.decode(b"", final=True)
        self.format = "ndjson" if first == "{" else "csv"
        if last_at is None:
            return None
        self.file.seek(last_at)
        text = self.file.readline().decode("utf-8").removesuffix("\n")
        if self.format == "ndjson":
            return _ndjson_line(newlines + 1, text)
        if not text.startswith("# "):
            return None
        return _trailer_line(newlines + 1, text)

    def exact(self) -> bool:
        """Whether the line ``open`` read is the last record for sure (NDJSON: a record is a
        line), or on trial (CSV)."""
        return self.format == "ndjson"

    def layout(self, trailer: Line | None) -> _Layout:
        """The CSV layout a trailer on trial gives (the one manifest of a good export)."""
        layout = _Layout()
        if trailer is not None and trailer.kind == "manifest":
            layout.take(trailer.data)
        return layout

    def lines(self, layout: _Layout) -> Iterator[Line]:
        """The records, each with its line number, in file order (the trailer last)."""
        self.file.seek(0)
        if self.format == "ndjson":
            return _ndjson_lines(self.file)
        self.folded = _Layout()
        texts = (raw.decode("utf-8") for raw in self.file)
        return _csv_lines(texts, layout, self.folded)

    def survey(self) -> tuple[Line | None, _Layout]:
        """Read the whole file for its last record and the layout its trailer gives."""
        last = None
        for line in self.lines(_Layout()):
            last = line
        return last, self.folded

    def _last_line_at(self) -> int | None:
        """Where the file's last line that is not blank starts (None: none), read backwards
        by blocks from the end."""
        pos = self.file.seek(0, io.SEEK_END)
        after: list[bytes] = []  # the rest of the line being looked at, last block first
        while pos > 0:
            size = min(BLOCK, pos)
            pos -= size
            self.file.seek(pos)
            block = self.file.read(size)
            end = len(block)
            while (cut := block.rfind(b"\n", 0, end)) >= 0:
                if _text(block[cut + 1 : end], after).strip():
                    return pos + cut + 1
                after, end = [], cut
            after.append(block[:end])
        return 0 if _text(b"", after).strip() else None


def _text(head: bytes, after: list[bytes]) -> str:
    """A line's text from its first bytes and the blocks after them (last block first), to
    tell whether it is blank (any byte that is not UTF-8 is not blank: the file fails)."""
    return (head + b"".join(reversed(after))).decode("utf-8", "replace")


def _all_but_last(lines: Iterator[Line], last: list[Line]) -> Iterator[Line]:
    """``lines`` but the last one, which is put in ``last`` once they are all read."""
    previous = None
    for line in lines:
        if previous is not None:
            yield previous
        previous = line
    if previous is not None:
        last.append(previous)


_CELL_END = re.compile(r"[,\r\n]")


def _csv_items(texts: Iterator[str]) -> Iterator[tuple[str, int, Any]]:
    """RFC 4180 records as ("record", first line, [(value, was_quoted)]): ``""`` is text,
    empty is null; then ("trailer", line, text) for each line that is not blank from the
    first record that starts with ``# `` (the manifest and error lines after the last
    record); or at the end ("error", line, what) for a file that is not CSV.

    ``texts``: the file's lines, each with its line break. A quoted value's own lines are
    never taken for a trailer, whatever they start with (a userName may hold a line break).
    """
    buf, i, line, newlines = "", 0, 1, 0

    def more() -> bool:
        nonlocal buf, newlines
        text = next(texts, None)
        if text is None:
            return False
        buf += text
        newlines += text.count("\n")
        return True

    while True:
        if i >= len(buf):
            buf, i = "", 0
            if not more():
                return
        elif i > BLOCK:
            buf, i = buf[i:], 0
        if buf.startswith("# ", i):
            # Its lines as ``splitlines`` cuts them (each text ends with its line break).
            k = 0
            for rest in itertools.chain([buf[i:]], texts):
                for piece in rest.splitlines():
                    if piece.strip():
                        yield "trailer", line + k, piece
                    k += 1
            return
        start_line = line
        fields: list[tuple[str, bool]] = []
        while True:
            if i < len(buf) and buf[i] == '"':
                i += 1
                parts = []
                while True:
                    j = buf.find('"', i)
                    while j < 0:
                        searched = len(buf)
                        if not more():
                            what = f"line {start_line}: unterminated quoted field"
                            yield "error", newlines + 1, what
                            return
                        j = buf.find('"', searched)
                    parts.append(buf[i:j])
                    line += buf.count("\n", i, j)
                    if j + 1 < len(buf) and buf[j + 1] == '"':
                        parts.append('"')
                        i = j + 2
                        continue
                    i = j + 1
                    break
                fields.append(("".join(parts), True))
            else:
                end = _CELL_END.search(buf, i)
                j = end.start() if end else len(buf)
                fields.append((buf[i:j], False))
                i = j
            if i < len(buf) and buf[i] == ",":
                i += 1
                continue
            break
        if buf.startswith("\r\n", i):
            i += 2
        elif i < len(buf) and buf[i] in "\r\n":
            i += 1
        line += 1
        yield "record", start_line, fields


def _typed(value: str, quoted: bool, kind: str, version: int) -> Any:
    if value == "" and not quoted:
        return None
    if version >= 2:
        value = csv_unescape(value)
    if kind == "integer":
        return int(value)
    if kind == "json":
        return loads(value)
    return value


def _trailer(line: str) -> tuple[str, Any] | None:
    for kind, prefix in (("manifest", "# manifest "), ("error", "# error ")):
        if line.startswith(prefix):
            return kind, loads(line[len(prefix) :])
    return None


def _trailer_line(number: int, text: str) -> Line:
    found = _safe_trailer(text)
    if found is None:
        return Line(number, "bad", problem="an unreadable manifest line (cut or altered)")
    return Line(number, found[0], found[1])


def _ndjson_line(number: int, line: str) -> Line:
    try:
        doc = loads(line)
    except Malformed as exc:
        return Line(number, "bad", problem=str(exc))
    except ValueError:
        return Line(number, "bad", problem="not a complete JSON record (cut or altered)")
    if isinstance(doc, dict) and set(doc) == {"manifest"}:
        return Line(number, "manifest", doc["manifest"])
    if isinstance(doc, dict) and set(doc) == {"error"}:
        return Line(number, "error", doc["error"])
    if isinstance(doc, dict):
        return Line(number, "event", doc)
    return Line(number, "bad", problem="not a JSON object")


def _ndjson_lines(raw_lines: Iterator[bytes]) -> Iterator[Line]:
    for number, raw in enumerate(raw_lines, start=1):
        line = raw.decode("utf-8").removesuffix("\n")
        if line.strip():
            yield _ndjson_line(number, line)


def _csv_lines(texts: Iterator[str], layout: _Layout, folded: _Layout) -> Iterator[Line]:
    # The manifest (and error) lines are comments after the last record; ``layout`` is what
    # the manifest says of the records before it (``Export`` reads it first), and ``folded``
    # gets what the trailer read here says, to be compared.
    header: list[str] | None = None
    version = layout.version
    skipping = False  # after a header that is not the export's: no record is read
    for kind, number, item in _csv_items(texts):
        if kind == "error":
            yield Line(number, "bad", problem=f"unreadable CSV ({item})")
            return
        if kind == "trailer":
            line = _trailer_line(number, item)
            if line.kind == "manifest":
                folded.take(line.data)
            yield line
            continue
        if skipping:
            continue
        fields = item
        if header is None:
            header = [csv_unescape(v) if version >= 2 else v for v, _q in fields]
            expected = layout.expected
            if not isinstance(expected, list | tuple) or header != list(expected):
                # Each record is read by its header: a column named twice keeps the value a
                # spreadsheet does not show; one added or dropped is not what was signed.
                yield Line(
                    number,
                    "bad",
                    problem="the header is not the export's columns (a column duplicated,"
                    " added, dropped or renamed): altered",
                )
                skipping = True
                continue
            yield Line(number, "header", header)
            continue
        if len(fields) != len(header):
            yield Line(number, "bad", problem="wrong number of columns (cut or altered)")
            continue
        if version >= 2 and any(csv_escape(csv_unescape(v)) != v for v, _q in fields):
            # Two spellings of one value must not both verify: a formula with its ' taken
            # off would open live in a spreadsheet from a file said to be verified.
            yield Line(
                number,
                "bad",
                problem="a cell is not written as the export writes it (a formula without"
                " its leading ', or a ' too many): altered",
            )
            continue
        try:
            doc = {
                name: _typed(v, q, layout.columns.get(name, "string"), version)
                for name, (v, q) in zip(header, fields, strict=True)
            }
        except Malformed as exc:
            yield Line(number, "bad", problem=str(exc))
            continue
        except ValueError:
            yield Line(number, "bad", problem="a value is not of its column's type")
            continue
        yield Line(number, "event", doc)


def csv_version(manifest: dict[str, Any]) -> int:
    """How a CSV export's cells are written, as its manifest says (``CSV_VERSION``); 1 if it
    does not say (made before there was a choice), 0 if what it says is not a version."""
    version = manifest.get("csv_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def _safe_trailer(line: str) -> tuple[str, Any] | None:
    try:
        return _trailer(line)
    except ValueError:
        return None


# -- verification ------------------------------------------------------------------


@dataclass
class Report:
    ok: bool = True
    line: int | None = None  # the first line at fault
    reason: str | None = None
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    notes: list[str] = field(default_factory=list)

    def fail(self, line: int | None, reason: str) -> Report:
        if self.ok:
            self.ok, self.line, self.reason = False, line, reason
        return self

    def text(self) -> str:
        if not self.ok:
            where = f"line {self.line}: " if self.line is not None else ""
            return f"FAILED {where}{self.reason}"
        span = f", seq {self.first_seq}..{self.last_seq}" if self.count else ""
        return "\n".join([f"OK: {self.count} events{span}", *(f"  {n}" for n in self.notes)])


def verify_export(
    raw: bytes | BinaryIO,
    keys: dict[str, PublicKey] | None,
    filed: list[dict[str, Any]] | None = None,
) -> Report:
    """Check an export's content, order, chain, manifest and checkpoints; the first fault wins.

    ``raw``: the export's bytes, or a binary file open on it (read as a stream: what is held
    is a line, the manifest, and the hashes the checkpoints name)."""
    export = Export(raw)
    export.file.seek(0)
    if export.file.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
        # The server writes none: an editor or a spreadsheet saved the file again. Said as
        # such, not as the header or first line it makes unreadable.
        return Report().fail(
            None,
            "the file starts with a byte order mark (U+FEFF), which the server never writes: "
            "it was saved again by another program; verify the file as downloaded",
        )
    try:
        trailer = export.open()
    except UnicodeDecodeError:
        return Report().fail(None, "the file is not UTF-8 text (not an export, or altered)")
    if trailer is not None:
        report, confirmed = _verify(
            export, trailer, export.layout(trailer), keys, filed or [], trial=not export.exact()
        )
        if confirmed:
            return report
    # No trailer found from the end, or not the one the file ends with as it reads.
    trailer, layout = export.survey()
    report, _confirmed = _verify(export, trailer, layout, keys, filed or [], trial=False)
    return report


def _verify(
    export: Export,
    trailer: Line | None,
    layout: _Layout,
    keys: dict[str, PublicKey] | None,
    filed: list[dict[str, Any]],
    trial: bool,
) -> tuple[Report, bool]:
    """The checks, with ``trailer`` as the export's last record; and whether it is (a
    ``trial``'s is confirmed by reading the records to their end, which a good file does
    anyway)."""
    report = Report()
    records: Iterator[Line] | None = None
    last: list[Line] = []
    if trailer is None:
        report.fail(1, "the file is empty")
    elif trailer.kind == "error":
        report.fail(trailer.number, "the export is incomplete: it ends with an error record")
    elif trailer.kind == "bad":
        report.fail(trailer.number, f"the file is truncated or altered: {trailer.problem}")
    elif trailer.kind != "manifest":
        report.fail(trailer.number + 1, "the file is truncated: it does not end with its manifest")
    elif not isinstance(trailer.data, dict) or trailer.data.get("type") != MANIFEST_TYPE:
        report.fail(trailer.number, "the manifest is not a signed export manifest")
    elif export.format == "csv" and csv_version(trailer.data) not in CSV_VERSIONS:
        report.fail(
            trailer.number,
            f"the manifest's csv_version {trailer.data.get('csv_version')!r} is not one this"
            " verifier reads (get the current one: `scim-server audit verifier`)",
        )
    else:
        manifest = trailer.data
        records = _all_but_last(export.lines(layout), last)
        seen = _check_events(report, records, trailer, manifest, _named_seqs(manifest, filed))
        if report.ok:
            _check_manifest(report, trailer.number, manifest, keys)
        if report.ok and unfiltered(manifest):
            last_hash = seen.get(report.last_seq) if report.last_seq is not None else None
            cut = _cut_tail(manifest, report.last_seq, last_hash)
            if cut:
                report.fail(trailer.number, cut)
            else:
                report.notes.append("the whole log: from the chain's base to its signed head")
        if report.ok:
            _check_checkpoints(report, trailer.number, manifest, keys, filed, seen)
    if not trial:
        return report, True
    if records is None:
        records = _all_but_last(export.lines(layout), last)
    for _line in records:  # what the checks did not read, to the end
        pass
    return report, last == [trailer] and export.folded == layout


def _named_seqs(manifest: dict[str, Any], filed: list[Any]) -> set[int]:
    """The seqs the checkpoints (the manifest's and the filed ones) name: the events whose
    hashes ``_check_checkpoints`` compares."""
    carried = manifest.get("checkpoints")
    docs = [*(carried if isinstance(carried, list) else []), *filed]
    return {cp["seq"] for cp in docs if isinstance(cp, dict) and isinstance(cp.get("seq"), int)}


def _check_events(
    report: Report,
    records: Iterator[Line],
    trailer: Line,
    manifest: dict[str, Any],
    named: set[int],
) -> dict[int, str]:
    """Each event in turn (``records``: those before the trailer); the hashes seen of the
    events ``named`` and of the last one, by seq (for the checkpoints and the head)."""
    # An unfiltered export is the whole log, contiguous whatever its manifest says (a server
    # that signed over a deleted event said it was not).
    whole = unfiltered(manifest)
    contiguous = bool(manifest.get("contiguous")) or whole
    base = manifest.get("chain_base") if whole else None
    digest = hashlib.sha256()
    prev_seq: int | None = None
    prev_hash: str | None = None
    seen: dict[int, str] = {}
    for ln in records:
        if ln.kind == "header":
            continue
        if ln.kind != "event":
            report.fail(ln.number, ln.problem or f"an unexpected {ln.kind} record")
            return seen
        event = ln.data
        seq, hash_ = event.get("seq"), event.get("hash")
        if not isinstance(seq, int) or not isinstance(hash_, str):
            report.fail(ln.number, "an event without its seq and hash")
            return seen
        if event_hash(event) != hash_:
            report.fail(ln.number, f"event {seq}: content does not match its hash (edited)")
            return seen
        if prev_seq is None:
            if seq != manifest.get("first_seq"):
                report.fail(
                    ln.number,
                    f"event {seq} is first but the manifest starts at {manifest.get('first_seq')}"
                    " (lines dropped or reordered)",
                )
                return seen
            if event.get("prev_hash") != manifest.get("first_prev_hash"):
                report.fail(ln.number, f"event {seq}: prev_hash is not the manifest's start")
                return seen
            if (
                isinstance(base, dict)
                and isinstance(base.get("seq"), int)
                and (seq != base["seq"] + 1 or event.get("prev_hash") != base.get("hash"))
            ):
                report.fail(
                    ln.number,
                    f"event {seq} is first but the log starts at event {base['seq'] + 1}"
                    " (events removed at its start)",
                )
                return seen
        elif seq <= prev_seq:
            report.fail(ln.number, f"event {seq} is out of order (after event {prev_seq})")
            return seen
        elif contiguous and seq != prev_seq + 1:
            report.fail(
                ln.number,
                f"event {prev_seq + 1} is missing (next present is {seq}): dropped or reordered",
            )
            return seen
        elif contiguous and event.get("prev_hash") != prev_hash:
            report.fail(ln.number, f"event {seq}: prev_hash does not link to the previous event")
            return seen
        prev_seq, prev_hash = seq, hash_
        if seq in named:
            seen[seq] = hash_
        digest.update(digest_line(seq, hash_))
        report.count += 1
        report.first_seq = seq if report.first_seq is None else report.first_seq
        report.last_seq = seq
    if prev_seq is not None and prev_hash is not None:
        seen[prev_seq] = prev_hash
    where = trailer.number
    if report.count != manifest.get("count"):
        report.fail(
            where,
            f"the file has {report.count} events but the manifest says {manifest.get('count')}"
            " (lines dropped or added)",
        )
    elif report.count and (
        prev_seq != manifest.get("last_seq") or prev_hash != manifest.get("last_hash")
    ):
        report.fail(where, f"the last event is {prev_seq}, not the manifest's (tail dropped)")
    elif digest.hexdigest() != manifest.get("events_digest"):
        report.fail(where, "the events do not match the manifest's digest (dropped or replaced)")
    report.notes.append(
        "chain intact from the first event's prev_hash"
        + (" (the export starts mid-chain)" if manifest.get("starts_mid_chain") else "")
        if contiguous
        else "every event's hash checked; a filtered export is not a contiguous chain"
    )
    report.notes += _scope(manifest, report.last_seq)
    return seen


def unfiltered(manifest: dict[str, Any]) -> bool:
    """Whether the export is the whole log: its parameters are none at all, as the server
    writes them for an export without a filter (an empty ``action`` is a filter there)."""
    return manifest.get("parameters") == {}


def _cut_tail(manifest: dict[str, Any], last_seq: int | None, last_hash: str | None) -> str | None:
    """What is wrong with the end of an export of the whole log: its last event (or, with
    none, the chain's base) must be the signed chain head, which the server read first."""
    head, base = manifest.get("chain_head"), manifest.get("chain_base")
    if last_seq is None and isinstance(base, dict):
        last_seq, last_hash = base.get("seq"), base.get("hash")
    if head is None and last_seq is None:
        return None  # an organization without a log
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int):
        return "the manifest names no chain head for the whole log it exports"
    if head["seq"] != last_seq:
        return (
            f"the export ends at event {last_seq} but the log's signed head is at event"
            f" {head['seq']} (tail truncated)"
        )
    if head.get("hash") != last_hash:
        return f"event {last_seq} is not the log's signed head (rewritten)"
    return None


def _scope(manifest: dict[str, Any], last_seq: int | None) -> list[str]:
    """What part of the log the export is, as its manifest says (checked with the rest of
    it by the signature): a filtered export's events can be consecutive, and must not read
    as the whole log."""
    notes = []
    parameters = manifest.get("parameters")
    if isinstance(parameters, dict):
        given = {k: v for k, v in sorted(parameters.items()) if v not in (None, "", [])}
        if given:
            shown = ", ".join(f"{k}={v}" for k, v in given.items())
            notes.append(f"a filtered export ({shown}): the events that match, not the whole log")
    head = manifest.get("chain_head")
    if isinstance(head, dict) and isinstance(head.get("seq"), int) and head["seq"] != last_seq:
        notes.append(f"the log's head was at seq {head['seq']} when this was exported")
    return notes


def _check_manifest(
    report: Report, line: int, manifest: dict[str, Any], keys: dict[str, PublicKey] | None
) -> None:
    if keys is None:
        report.fail(line, "the manifest's signature was not checked: give --public-key")
        return
    problem = check_signature(manifest, keys, parse_time(manifest.get("generated_at")))
    if problem:
        report.fail(line, f"the manifest is not authentic: {problem}")
        return
    report.notes.append(f"manifest signed by key {manifest['key_id']}")


def _check_checkpoints(
    report: Report,
    line: int,
    manifest: dict[str, Any],
    keys: dict[str, PublicKey] | None,
    filed: list[dict[str, Any]],
    seen: dict[int, str],
) -> None:
    first_seq = manifest.get("first_seq")
    if isinstance(first_seq, int) and manifest.get("first_prev_hash"):
        seen.setdefault(first_seq - 1, manifest["first_prev_hash"])
    head = manifest.get("chain_head")
    head_seq = 0  # no head: no log
    read_at = parse_time(manifest.get("generated_at"))
    if isinstance(head, dict) and isinstance(head.get("seq"), int):
        head_seq, read_at = head["seq"], parse_time(head.get("read_at"))
        if isinstance(head.get("hash"), str):  # a filed checkpoint of the head compares too
            seen.setdefault(head_seq, head["hash"])
    org = manifest.get("organization")
    carried = [(cp, "the manifest's checkpoint") for cp in manifest.get("checkpoints") or []]
    for cp, label in [*carried, *((cp, "the filed checkpoint") for cp in filed)]:
        if not isinstance(cp, dict) or cp.get("type") != CHECKPOINT_TYPE:
            report.fail(line, f"{label} is not a checkpoint document")
            return
        if cp.get("organization") != org:
            report.fail(line, f"{label} is of another organization ({cp.get('organization')})")
            return
        if keys is not None:
            problem = check_signature(cp, keys, parse_time(cp.get("created_at")))
            if problem:
                report.fail(line, f"{label} at seq {cp.get('seq')} is not authentic: {problem}")
                return
        seq = cp.get("seq")
        if isinstance(seq, int) and seq in seen:
            if seen[seq] != cp.get("hash"):
                report.fail(
                    line,
                    f"event {seq} differs from {label} (history rewritten after it was made)",
                )
                return
            report.notes.append(f"{label} at seq {seq} matches")
        elif label == "the filed checkpoint":
            made = parse_time(cp.get("created_at"))
            if isinstance(seq, int) and seq > head_seq and _earlier(made, read_at):
                # The head only moves on: read after the checkpoint was made, it was at the
                # checkpoint's event or past it (``compare_filed`` on the server says so too).
                report.fail(
                    line,
                    f"the filed checkpoint at seq {seq} was made before this export, yet the"
                    f" log's signed head was at seq {head_seq} when it was exported: history"
                    " removed after a filed checkpoint",
                )
                return
            report.notes.append(f"the filed checkpoint at seq {seq} is outside this export")


def _earlier(a: datetime | None, b: datetime | None) -> bool:
    """``a`` before ``b``, both known (a time without a zone is UTC, as the server writes)."""
    if a is None or b is None:
        return False
    return a.replace(tzinfo=a.tzinfo or UTC) < b.replace(tzinfo=b.tzinfo or UTC)


# -- command line -------------------------------------------------------------------


def run(export: str, public_key: str | None, checkpoints: list[str]) -> tuple[int, str]:
    """(exit status, text to print): what both command lines do."""
    try:
        file = open(export, "rb")  # noqa: SIM115  (read as a stream, closed below)
    except OSError as exc:
        return 2, f"ERROR: cannot read the input: {exc}"
    with file:
        try:
            keys = None
            if public_key:
                with open(public_key, encoding="utf-8") as f:
                    keys = load_public_keys(f.read())
            filed = []
            for path in checkpoints:
                with open(path, encoding="utf-8") as f:
                    filed.append(loads(f.read()))
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            return 2, f"ERROR: cannot read the input: {exc}"
        try:
            report = verify_export(file, keys, filed)
        except Exception as exc:  # never a traceback, never OK: a file it cannot check
            return 1, f"FAILED: the export cannot be checked ({type(exc).__name__}: {exc})"
    return (0 if report.ok else 1), report.text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a scim-server audit export offline.")
    parser.add_argument("export", help="the NDJSON or CSV export file")
    parser.add_argument("--public-key", help="the published key document (JSON) or a PEM key")
    parser.add_argument(
        "--checkpoint", action="append", default=[], help="a filed checkpoint (JSON); repeatable"
    )
    args = parser.parse_args(argv)
    status, text = run(args.export, args.public_key, args.checkpoint)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
