"""Reading the spreadsheet: CSV (UTF-8, with or without BOM) or XLSX, into rows of text.

The first row names the columns (``COLUMNS``; case and spaces do not matter).
Limits keep a wrong file from taking the server down: size, rows, cell length; a cell
holding NUL is refused with its line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from scim_server.errors import InvalidValueError
from scim_server.text import has_control, small_int

COLUMNS = (
    "userName",
    "email",
    "givenName",
    "familyName",
    "displayName",
    "externalId",
    "active",
    "title",
    "department",
    "phone",
)
REQUIRED = ("userName",)
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
MAX_CELL = 1000
EXAMPLE = {
    "userName": "ada.lovelace@example.com",
    "email": "ada.lovelace@example.com",
    "givenName": "Ada",
    "familyName": "Lovelace",
    "displayName": "Ada Lovelace",
    "externalId": "E1001",
    "active": "true",
    "title": "Engineer",
    "department": "Engineering",
    "phone": "+44 20 7946 0000",
}
_KEYS = {c.lower(): c for c in COLUMNS}


@dataclass(frozen=True)
class Row:
    """One data row: its line in the file (2 = the first after the header) and its cells."""

    line: int
    values: dict[str, str]


def _header(cells: list[str]) -> list[str | None]:
    names: list[str | None] = []
    for cell in cells:
        key = "".join(str(cell or "").split()).lower()
        names.append(_KEYS.get(key))
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InvalidValueError(
            f"The first row must name the columns; missing: {', '.join(missing)}. "
            f"Known columns: {', '.join(COLUMNS)}."
        )
    seen = [n for n in names if n]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise InvalidValueError(f"Columns named twice: {', '.join(dupes)}.")
    return names


def _rows(lines: list[list[str]], max_rows: int = MAX_ROWS) -> list[Row]:
    if not lines:
        raise InvalidValueError("The file is empty.")
    names = _header(lines[0])
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        values = {
            name: str(cell if cell is not None else "").strip()
            for name, cell in zip(names, cells, strict=False)
            if name
        }
        if not any(values.values()):
            continue  # a blank line
        _check_cells(number, values.values())
        rows.append(Row(number, values))
        if len(rows) > max_rows:
            raise InvalidValueError(f"More than {max_rows:,} rows: split the file.")
    return rows


def read(
    filename: str, data: bytes, *, max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS
) -> list[Row]:
    """The rows of a .csv or .xlsx file; a clear error for anything else.

    The limits: the command line's by default; the console's import (a worker job) passes
    its own.
    """
    if _kind(filename, data, max_bytes) == "xlsx":
        return _rows(_xlsx_lines(data, max_rows), max_rows)
    return _rows([list(r) for r in _csv_reader(data)], max_rows)


def check(
    filename: str, data: bytes, *, max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS
) -> None:
    """What can be told of a file quickly, for the upload request: its type, size, encoding
    and header; for CSV also the row count and cells (``_check_cells``: a pass of the csv
    module, a fraction of ``read``), for XLSX the row count the sheet declares.

    ``read`` (in the worker) still finds the rest, e.g. an XLSX sheet that declares no size.
    The file's name is kept with the upload and shown on its pages and in the log: it may
    hold no control character (``text.has_control``; PostgreSQL's jsonb takes no NUL).
    """
    if has_control(filename):
        raise InvalidValueError("The file's name holds a control character: rename the file.")
    if _kind(filename, data, max_bytes) == "xlsx":
        _xlsx_check(data, max_rows)
        return
    lines = _csv_reader(data)
    first = next(lines, None)
    if first is None:
        raise InvalidValueError("The file is empty.")
    _header(first)
    count = 0
    for number, cells in enumerate(lines, start=2):
        if not any(c.strip() for c in cells):
            continue
        _check_cells(number, cells)
        count += 1
        if count > max_rows:
            raise InvalidValueError(f"More than {max_rows:,} rows: split the file.")
    if not count:
        raise InvalidValueError("The file has a header but no rows.")


def _check_cells(number: int, cells: Iterable[str]) -> None:
    """A line's cells, refused with the line: one too long, or holding a NUL character (a
    careless export; no attribute may hold one, and PostgreSQL's jsonb, where the preview
    keeps each row, cannot)."""
    for cell in cells:
        if len(cell) > MAX_CELL:
            raise InvalidValueError(f"Line {number}: a cell is longer than {MAX_CELL} characters.")
        if "\x00" in cell:
            raise InvalidValueError(f"Line {number}: a cell contains a NUL character.")


def _kind(filename: str, data: bytes, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise InvalidValueError(f"The file is larger than {max_bytes // (1024 * 1024)} MiB.")
    name = filename.lower()
    if name.endswith(".xlsx"):
        return "xlsx"
    if name.endswith((".csv", ".txt")):
        return "csv"
    raise InvalidValueError("Upload a .csv or .xlsx file.")


def _csv_reader(data: bytes) -> Iterator[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidValueError("The CSV file is not UTF-8 text (save it as CSV UTF-8).") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return _csv_records(csv.reader(io.StringIO(text), dialect))


def _csv_records(reader: Any) -> Iterator[list[str]]:
    """The reader's records; what the csv module cannot read (a cell past its field limit of
    128 KiB) is the file's error, with its line, at the upload and in the worker alike."""
    try:
        yield from reader
    except csv.Error as err:
        raise InvalidValueError(f"Line {reader.line_num}: not readable as CSV ({err}).") from None


def _open_xlsx(data: bytes) -> Any:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, KeyError, ValueError, OSError):
        raise InvalidValueError("The file is not a readable .xlsx workbook.") from None


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _xlsx_check(data: bytes, max_rows: int) -> None:
    """The first sheet's header and declared size, streamed from the zip (ECMA-376 Part 1,
    §18.3.1.35 dimension, §18.3.1.73 row, §18.4.8 si): opening the workbook with openpyxl
    reads every shared string first, seconds for a big file."""
    import zipfile
    from xml.etree.ElementTree import ParseError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            sheet = _first_sheet(book)
            declared, header = _sheet_start(book, sheet)
            # A shared string's cell holds its index in the table (§18.3.1.96): one the
            # table lacks (or no index at all) makes the workbook unreadable, as openpyxl
            # would find in the worker.
            wanted = {_string_index(v) for kind, v in header or () if kind == "s"}
            strings = _shared_strings(book, max(wanted)) if wanted else []
            names = [strings[_string_index(v)] if kind == "s" else v for kind, v in header or ()]
    except (zipfile.BadZipFile, KeyError, ValueError, IndexError, ParseError, OSError):
        raise InvalidValueError("The file is not a readable .xlsx workbook.") from None
    if header is None:
        raise InvalidValueError("The file is empty.")
    _header(names)
    if declared is not None and declared > max_rows + 1:
        raise InvalidValueError(f"More than {max_rows:,} rows: split the file.")


def _string_index(value: str) -> int:
    index = small_int(value)
    if index is None:  # int() would take "-1" (Python's last item), " 1" or "1_0"
        raise ValueError(f"not a shared string index: {value[:20]!r}")
    return index


def _first_sheet(book: Any) -> str:
    from xml.etree.ElementTree import fromstring

    workbook = fromstring(book.read("xl/workbook.xml"))
    first = workbook.find(f"{_MAIN}sheets/{_MAIN}sheet")
    if first is None:
        raise ValueError("no sheet")
    rid = first.get(f"{_REL}id")
    rels = fromstring(book.read("xl/_rels/workbook.xml.rels"))
    for rel in rels.iter(f"{_PKG_REL}Relationship"):
        if rel.get("Id") == rid:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    raise ValueError("no sheet target")


def _sheet_start(book: Any, path: str) -> tuple[int | None, list[tuple[str, str]] | None]:
    """The row count the sheet declares (None: it does not) and its first row's cells."""
    from xml.etree.ElementTree import iterparse

    declared: int | None = None
    with book.open(path) as stream:
        for _event, element in iterparse(stream, events=("end",)):
            if element.tag == f"{_MAIN}dimension":
                ref = element.get("ref", "").split(":")[-1]
                declared = small_int("".join(ch for ch in ref if ch.isdigit()))
            elif element.tag == f"{_MAIN}row":
                cells = []
                for cell in element.iter(f"{_MAIN}c"):
                    kind = cell.get("t", "n")
                    if kind == "inlineStr":
                        value = "".join(t.text or "" for t in cell.iter(f"{_MAIN}t"))
                    else:
                        value = cell.findtext(f"{_MAIN}v") or ""
                    cells.append(("s" if kind == "s" else "v", value))
                return declared, cells
    return declared, None


def _shared_strings(book: Any, last: int) -> list[str]:
    """The shared strings up to index ``last``, streamed (the rest of the table is not read)."""
    from xml.etree.ElementTree import iterparse

    out: list[str] = []
    with book.open("xl/sharedStrings.xml") as stream:
        for _event, element in iterparse(stream, events=("end",)):
            if element.tag == f"{_MAIN}si":
                # plain (t) or rich text (r/t); phonetic hints (rPh/t) are not the value
                texts = element.findall(f"{_MAIN}t") + element.findall(f"{_MAIN}r/{_MAIN}t")
                out.append("".join(t.text or "" for t in texts))
                element.clear()
                if len(out) > last:
                    break
    return out


def _xlsx_lines(data: bytes, max_rows: int = MAX_ROWS) -> list[list[str]]:
    book = _open_xlsx(data)
    try:
        sheet = book.worksheets[0]
        lines = []
        for values in sheet.iter_rows(values_only=True):
            lines.append(["" if v is None else str(v) for v in values])
            if len(lines) > max_rows + 1:
                raise InvalidValueError(f"More than {max_rows:,} rows: split the file.")
        return lines
    finally:
        book.close()


def template_csv() -> str:
    """The template: the header and one example row."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerow([EXAMPLE[c] for c in COLUMNS])
    return buf.getvalue()


def template_xlsx() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Users"
    sheet.append(list(COLUMNS))
    sheet.append([EXAMPLE[c] for c in COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
