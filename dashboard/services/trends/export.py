"""The briefing view's exports: the page's data as tables, CSV and Excel (formulas escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dashboard.services.trends.queries import COMPARED

SERIES_COLUMNS: tuple[str, ...] = (
    "reported", "open", "disposal_rate", "closure_rate", "on_time_rate", "dispatch_p50_s",
    "dispatch_p90_s", "arrival_p50_s", "arrival_p90_s", "rework_rate", "disputes",
    "dispute_resolution_rate",
)  # fmt: skip
DEPARTMENT_COLUMNS: tuple[str, ...] = (
    "department", "reported", "resolved", "disposal_rate", "on_time_rate", "resolve_p50_s",
    "rework_rate",
)  # fmt: skip


def export_tables(data: Mapping[str, Any]) -> dict[str, list[list[Any]]]:
    """The page's data as tables (header row first), in docs/kpis.md's names: what the CSV and
    Excel exports hold. Rates stay fractions 0..1, empty when undefined."""
    series = data["series"]
    tables: dict[str, list[list[Any]]] = {
        "series": [["bucket", *SERIES_COLUMNS]]
        + [
            [bucket, *[series[c][i] for c in SERIES_COLUMNS]]
            for i, bucket in enumerate(series["buckets"])
        ],
        "departments": [list(DEPARTMENT_COLUMNS)]
        + [[row[c] for c in DEPARTMENT_COLUMNS] for row in data["departments"]],
    }
    for key in ("by_category", "by_source"):
        block = data[key]
        names = list(block["series"])
        tables[key] = [["bucket", *names]] + [
            [bucket, *[block["series"][n][i] for n in names]]
            for i, bucket in enumerate(block["buckets"])
        ]
    tables["grids"] = [["grid", "reported"]] + [[g, n] for g, n in data["by_grid"].items()]
    cmp = data["compare"]
    tables["kpis"] = [["kpi", "current", "previous", "last_year"]] + [
        [
            name,
            cmp["current"].get(name),
            (cmp.get("previous") or {}).get(name),
            (cmp.get("last_year") or {}).get(name),
        ]
        for name in COMPARED
    ]
    return tables


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run (OWASP's CSV injection rule): text starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return — a producer's grid id ``-7-1``,
    a department named ``=HYPERLINK(…)`` — gets a leading ``'``. Numbers are left as they
    are: a negative number is a number, not a formula; only text is escaped."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(table: Sequence[Sequence[Any]]) -> str:
    """One table as CSV (UTF-8 with a BOM so that Excel opens Chinese text correctly)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in table:
        writer.writerow(["" if v is None else safe_cell(v) for v in row])
    return "\ufeff" + out.getvalue()


def to_xlsx(tables: Mapping[str, Sequence[Sequence[Any]]]) -> bytes:
    """Every table as a sheet of one Excel workbook (text escaped as in the CSV, and
    stored as text: openpyxl would otherwise write a string starting with ``=`` as a
    formula)."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    if book.active is not None:
        book.remove(book.active)
    for name, table in tables.items():
        sheet = book.create_sheet(title=name[:31])
        for row in table:
            sheet.append([safe_cell(v) for v in row])
        for cells in sheet.iter_rows():
            for cell in cells:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
