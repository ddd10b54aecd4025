"""Hand-made XLSX files for the import's tests: the parts a broken workbook gets wrong."""

from __future__ import annotations

import io
import zipfile

MAIN = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def header_only_xlsx(header_cells: str, shared_strings: list[str]) -> bytes:
    """A workbook of one sheet whose first row is ``header_cells`` (``<c>`` elements as
    written) and whose shared-string table holds ``shared_strings`` (ECMA-376 Part 1,
    §18.3.1.73 row, §18.4.8 si)."""
    items = "".join(f"<si><t>{s}</t></si>" for s in shared_strings)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr(
            "xl/workbook.xml",
            f"<workbook {MAIN} "
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        book.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>',
        )
        book.writestr(
            "xl/worksheets/sheet1.xml",
            f"<worksheet {MAIN}><sheetData><row>{header_cells}</row></sheetData></worksheet>",
        )
        book.writestr("xl/sharedStrings.xml", f"<sst {MAIN}>{items}</sst>")
    return out.getvalue()


def shared_header(index: str, *strings: str) -> bytes:
    """A header of one shared-string cell holding ``index``."""
    return header_only_xlsx(f'<c t="s"><v>{index}</v></c>', list(strings))
