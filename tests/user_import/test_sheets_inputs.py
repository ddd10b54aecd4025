"""``sheets.check`` (the upload's quick look) and ``sheets.read`` (the worker's) on files the
csv module or the workbook's own tables cannot make sense of: each is the file's error
(``InvalidValueError``, shown to the person who uploaded it), never an exception of the
reader's that would be a 500 at the upload or a job failed without its reason."""

from __future__ import annotations

import pytest

from scim_server.errors import InvalidValueError
from scim_server.user_import import sheets
from tests.user_import.workbooks import shared_header

# A cell past the csv module's field limit (128 KiB) on the first data line.
HUGE_CELL = b"userName,email\n" + b"a" * 200_000 + b",a@example.com\n"


@pytest.mark.parametrize("reader", [sheets.check, sheets.read])
def test_a_csv_cell_past_the_field_limit_is_the_files_error(reader) -> None:  # type: ignore[no-untyped-def]
    """The csv module's refusal names the line it stopped at; both readers tell it alike."""
    with pytest.raises(InvalidValueError, match=r"^Line 2: not readable as CSV \(field larger"):
        reader("people.csv", HUGE_CELL)


@pytest.mark.parametrize(
    "index",
    [
        "5",  # past a table of one
        "1",  # just past it
        "-1",  # int() takes it, and a list's [-1] is its last item
        "x",
        "",
    ],
)
def test_a_header_naming_a_shared_string_the_table_lacks_is_unreadable(index: str) -> None:
    """A shared-string cell must hold an index into the table (ECMA-376 §18.3.1.96): any other
    value means the workbook is damaged, and the upload says so."""
    with pytest.raises(InvalidValueError, match=r"not a readable \.xlsx workbook"):
        sheets.check("people.xlsx", shared_header(index, "userName"))


def test_a_header_of_shared_strings_in_the_table_is_read() -> None:
    """The check still reads a header whose names are shared strings (its own index 0)."""
    with pytest.raises(InvalidValueError, match="missing: userName"):
        sheets.check("people.xlsx", shared_header("1", "userName", "email"))
    # No data row is not the check's business for XLSX (the worker counts them): no error.
    sheets.check("people.xlsx", shared_header("0", "userName"))
