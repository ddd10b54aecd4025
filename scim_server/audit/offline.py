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
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
        """Made before the key was retired (``valid_from`` only says since when it is in use)."""
        return when is None or self.valid_until is None or when <= self.valid_until


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


def _csv_records(
    text: str, trailer_at: list[tuple[int, int]] | None = None
) -> Iterator[tuple[int, list[tuple[str, bool]]]]:
    """RFC 4180 records as (first line, [(value, was_quoted)]): ``""`` is text, empty is null.

    ``trailer_at``: stop at a record that starts with ``# `` (the manifest and error lines
    after the last record) and append its (offset, line) to it. A quoted value's own lines
    are never taken for one, whatever they start with (a userName may hold a line break)."""
    i, n, line = 0, len(text), 1
    while i < n:
        if trailer_at is not None and text.startswith("# ", i):
            trailer_at.append((i, line))
            return
        start_line = line
        fields: list[tuple[str, bool]] = []
        while True:
            if i < n and text[i] == '"':
                i += 1
                buf = []
                while True:
                    j = text.find('"', i)
                    if j < 0:
                        raise ValueError(f"line {start_line}: unterminated quoted field")
                    buf.append(text[i:j])
                    line += text.count("\n", i, j)
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        i = j + 2
                        continue
                    i = j + 1
                    break
                fields.append(("".join(buf), True))
            else:
                j = i
                while j < n and text[j] not in ",\r\n":
                    j += 1
                fields.append((text[i:j], False))
                i = j
            if i < n and text[i] == ",":
                i += 1
                continue
            break
        if text.startswith("\r\n", i):
            i += 2
        elif i < n and text[i] in "\r\n":
            i += 1
        line += 1
        yield start_line, fields


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


def read_export(raw: bytes) -> tuple[str, list[Line]]:
    """The format and the records of an export, each with its line number."""
    text = raw.decode("utf-8")
    first = text.lstrip()[:1]
    if first == "{":
        return "ndjson", list(_ndjson_lines(text))
    return "csv", list(_csv_lines(text))


def _ndjson_lines(text: str) -> Iterator[Line]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            doc = loads(line)
        except Malformed as exc:
            yield Line(number, "bad", problem=str(exc))
            continue
        except ValueError:
            yield Line(number, "bad", problem="not a complete JSON record (cut or altered)")
            continue
        if isinstance(doc, dict) and set(doc) == {"manifest"}:
            yield Line(number, "manifest", doc["manifest"])
        elif isinstance(doc, dict) and set(doc) == {"error"}:
            yield Line(number, "error", doc["error"])
        elif isinstance(doc, dict):
            yield Line(number, "event", doc)
        else:
            yield Line(number, "bad", problem="not a JSON object")


def _csv_lines(text: str) -> Iterator[Line]:
    # The manifest (and error) lines are comments after the last record: the records are
    # read first (a quoted value's lines are part of it), and what follows them is those.
    trailer_at: list[tuple[int, int]] = []
    try:
        records = list(_csv_records(text, trailer_at))
    except ValueError as exc:
        yield Line(text.count("\n") + 1, "bad", problem=f"unreadable CSV ({exc})")
        return
    trailers: list[tuple[int, str]] = []
    if trailer_at:
        offset, first = trailer_at[0]
        rest = text[offset:].splitlines()
        trailers = [(first + k, ln) for k, ln in enumerate(rest) if ln.strip()]
    header: list[str] | None = None
    columns: dict[str, str] = {}
    version = 1
    expected: Any = LEGACY_HEADER
    for kind_line in trailers:
        found = _safe_trailer(kind_line[1])
        if found and found[0] == "manifest" and isinstance(found[1], dict):
            columns = found[1].get("columns") or {}
            version = csv_version(found[1])
            if version >= 3:
                expected = found[1].get("header")
    for number, fields in records:
        if header is None:
            header = [csv_unescape(v) if version >= 2 else v for v, _q in fields]
            if not isinstance(expected, list | tuple) or header != list(expected):
                # Each record is read by its header: a column named twice keeps the value a
                # spreadsheet does not show; one added or dropped is not what was signed.
                yield Line(
                    number,
                    "bad",
                    problem="the header is not the export's columns (a column duplicated,"
                    " added, dropped or renamed): altered",
                )
                break
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
                name: _typed(v, q, columns.get(name, "string"), version)
                for name, (v, q) in zip(header, fields, strict=True)
            }
        except Malformed as exc:
            yield Line(number, "bad", problem=str(exc))
            continue
        except ValueError:
            yield Line(number, "bad", problem="a value is not of its column's type")
            continue
        yield Line(number, "event", doc)
    for number, line in trailers:
        found = _safe_trailer(line)
        if found is None:
            yield Line(number, "bad", problem="an unreadable manifest line (cut or altered)")
        else:
            yield Line(number, found[0], found[1])


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
    raw: bytes,
    keys: dict[str, PublicKey] | None,
    filed: list[dict[str, Any]] | None = None,
) -> Report:
    """Check an export's content, order, chain, manifest and checkpoints; the first fault wins."""
    report = Report()
    try:
        fmt, lines = read_export(raw)
    except UnicodeDecodeError:
        return report.fail(None, "the file is not UTF-8 text (not an export, or altered)")
    if not lines:
        return report.fail(1, "the file is empty")
    trailer = lines[-1]
    if trailer.kind == "error":
        return report.fail(trailer.number, "the export is incomplete: it ends with an error record")
    if trailer.kind == "bad":
        return report.fail(trailer.number, f"the file is truncated or altered: {trailer.problem}")
    if trailer.kind != "manifest":
        return report.fail(
            trailer.number + 1, "the file is truncated: it does not end with its manifest"
        )
    manifest = trailer.data
    if not isinstance(manifest, dict) or manifest.get("type") != MANIFEST_TYPE:
        return report.fail(trailer.number, "the manifest is not a signed export manifest")
    if fmt == "csv" and csv_version(manifest) not in CSV_VERSIONS:
        return report.fail(
            trailer.number,
            f"the manifest's csv_version {manifest.get('csv_version')!r} is not one this"
            " verifier reads (get the current one: `scim-server audit verifier`)",
        )
    seen = _check_events(report, lines, trailer, manifest)
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
        _check_checkpoints(report, trailer.number, manifest, keys, filed or [], seen)
    return report


def _check_events(
    report: Report, lines: list[Line], trailer: Line, manifest: dict[str, Any]
) -> dict[int, str]:
    """Each event in turn; the hashes seen, by seq (for the checkpoints)."""
    # An unfiltered export is the whole log, contiguous whatever its manifest says (a server
    # that signed over a deleted event said it was not).
    whole = unfiltered(manifest)
    contiguous = bool(manifest.get("contiguous")) or whole
    base = manifest.get("chain_base") if whole else None
    digest = hashlib.sha256()
    prev_seq: int | None = None
    prev_hash: str | None = None
    seen: dict[int, str] = {}
    for ln in lines:
        if ln is trailer or ln.kind == "header":
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
        seen[seq] = hash_
        digest.update(digest_line(seq, hash_))
        report.count += 1
        report.first_seq = seq if report.first_seq is None else report.first_seq
        report.last_seq = seq
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
        with open(export, "rb") as f:
            raw = f.read()
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
        report = verify_export(raw, keys, filed)
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
