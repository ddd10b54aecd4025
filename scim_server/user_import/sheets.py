"""Reading the spreadsheet: CSV (UTF-8, with or without BOM) or XLSX, into rows of text.

The first row names the columns (``COLUMNS``; case and spaces do not matter).
Limits keep a wrong file from taking the server down: size, rows, cell length.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from scim_server.errors import InvalidValueError

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
        if any(len(v) > MAX_CELL for v in values.values()):
            raise InvalidValueError(f"Line {number}: a cell is longer than {MAX_CELL} characters.")
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
    if len(data) > max_bytes:
        raise InvalidValueError(f"The file is larger than {max_bytes // (1024 * 1024)} MiB.")
    name = filename.lower()
    if name.endswith(".xlsx"):
        return _rows(_xlsx_lines(data, max_rows), max_rows)
    if name.endswith((".csv", ".txt")):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidValueError(
                "The CSV file is not UTF-8 text (save it as CSV UTF-8)."
            ) from None
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        return _rows([list(r) for r in csv.reader(io.StringIO(text), dialect)], max_rows)
    raise InvalidValueError("Upload a .csv or .xlsx file.")


def _xlsx_lines(data: bytes, max_rows: int = MAX_ROWS) -> list[list[str]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, KeyError, ValueError, OSError):
        raise InvalidValueError("The file is not a readable .xlsx workbook.") from None
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
