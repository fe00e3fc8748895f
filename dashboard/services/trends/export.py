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


# -- the report-ready export (issue 15) ------------------------------------------------------------
def export_stamp(data: Mapping[str, Any], zone: Any) -> str:
    """``2026-11-23_day``: the period's first LOCAL day (the deployment's zone, LIANQIN_TZ) and
    the granularity, for file names. The period is stored in UTC: its ISO text starts a day
    early for a zone east of UTC (a week from Monday 00:00 +08:00 starts on Sunday 16:00 UTC)."""
    from datetime import datetime

    start = datetime.fromisoformat(data["period"][0]).astimezone(zone).date()
    return f"{start:%Y-%m-%d}_{data['granularity']}"


def _kpi_head(name: str, lang: str) -> str:
    from dashboard.i18n import t
    from dashboard.vocabulary import KPIS

    kpi = KPIS[name]
    label = t(lang, kpi.title or kpi.label)
    unit = {"rate": "tr_report_unit_pct", "duration": "tr_report_unit_min"}.get(kpi.format)
    return label + t(lang, unit) if unit else label


def _kpi_cell(name: str, value: Any) -> tuple[Any, str | None]:
    """A value as a report shows it: rates as percentages (a number the sheet formats as %),
    times in minutes; and the cell's number format."""
    from dashboard.vocabulary import KPIS

    if value is None:
        return None, None
    fmt = KPIS[name].format
    if fmt == "rate":
        return round(float(value), 4), "0.0%"
    if fmt == "duration":
        return round(float(value) / 60, 1), "0.0"
    return value, "#,##0"


def report_tables(
    data: Mapping[str, Any],
    *,
    lang: str,
    zone: Any,
    category_labels: Mapping[str, str],
    source_labels: Mapping[str, str],
    grid_names: Mapping[str, str],
    dept_names: Mapping[str, str],
) -> dict[str, list[list[tuple[Any, str | None]]]]:
    """The page's data for people: sheet title → rows of (value, number format), headers and
    names in ``lang`` (no codes), rates as percentages, times in minutes, buckets as local
    times."""
    from datetime import datetime

    from dashboard.i18n import t

    def local(bucket: str) -> str:
        moment = datetime.fromisoformat(bucket).astimezone(zone)
        return f"{moment:%Y-%m-%d %H:%M}" if data["granularity"] == "hour" else f"{moment:%Y-%m-%d}"

    def plain(values: Sequence[Any]) -> list[tuple[Any, str | None]]:
        return [(v, None) for v in values]

    cmp = data["compare"]
    previous, last_year = cmp.get("previous") or {}, cmp.get("last_year") or {}
    kpis = [plain([t(lang, k) for k in ("tr_kpi", "tr_this_period", "tr_previous",
                                         "tr_last_year")])]  # fmt: skip
    for name in COMPARED:
        kpis.append([(_kpi_head(name, lang), None),
                     *[_kpi_cell(name, p.get(name)) for p in (cmp["current"], previous,
                                                             last_year)]])  # fmt: skip
    series = data["series"]
    trend = [plain([t(lang, "tr_bucket"), *[_kpi_head(c, lang) for c in SERIES_COLUMNS
                                            if c != "open"]])]  # fmt: skip
    for i, bucket in enumerate(series["buckets"]):
        trend.append([(local(bucket), None), *[_kpi_cell(c, series[c][i]) for c in SERIES_COLUMNS
                                                if c != "open"]])  # fmt: skip
    depts = [plain([t(lang, "tr_rank"), t(lang, "tr_department"), *[
        _kpi_head(c, lang) if c != "resolved" else t(lang, "tr_report_resolved")
        for c in DEPARTMENT_COLUMNS[1:]]])]  # fmt: skip
    for rank, row in enumerate(data["departments"], start=1):
        name = dept_names.get(row["department"] or "", row["department"]) or t(lang, "tr_none")
        depts.append([(rank, None), (name, None), *[
            _kpi_cell(c, row[c]) if c != "resolved" else (row[c], "#,##0")
            for c in DEPARTMENT_COLUMNS[1:]]])  # fmt: skip
    tables: dict[str, list[list[tuple[Any, str | None]]]] = {
        t(lang, "tr_kpis_title"): kpis,
        t(lang, "tr_report_series"): trend,
        t(lang, "tr_league_title"): depts,
    }
    for key, labels, title in (("by_category", category_labels, "tr_category"),
                               ("by_source", source_labels, "tr_source")):  # fmt: skip
        block = data[key]
        names = list(block["series"])
        rows = [plain([t(lang, "tr_bucket"), *[labels.get(n, n) for n in names]])]
        rows += [[(local(b), None), *[(block["series"][n][i], "#,##0") for n in names]]
                 for i, b in enumerate(block["buckets"])]  # fmt: skip
        tables[t(lang, title)] = rows
    grids = [plain([t(lang, "tr_grid"), t(lang, "tr_axis_cases")])]
    grids += [[(grid_names.get(g, g), None), (n, "#,##0")] for g, n in data["by_grid"].items()]
    tables[t(lang, "tr_grid")] = grids
    return tables


def to_report_xlsx(
    tables: Mapping[str, Sequence[Sequence[tuple[Any, str | None]]]],
    *,
    heading: Sequence[str],
    colors: Mapping[str, Mapping[str, str]] | None = None,
) -> bytes:
    """The report workbook: every sheet starts with ``heading`` (title, period, filters,
    generated), then its table with formatted numbers; a sheet named in ``colors`` (label →
    hex color) gets a stacked bar chart drawn in those fixed colors. Text is escaped as in the
    CSV."""
    import io

    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font

    book = Workbook()
    if book.active is not None:
        book.remove(book.active)
    for name, table in tables.items():
        sheet = book.create_sheet(title=name[:31])
        for i, line in enumerate(heading):
            sheet.append([safe_cell(line)])
            sheet.cell(row=i + 1, column=1).font = Font(bold=i == 0, size=14 if i == 0 else 11)
        sheet.append([])
        first = len(heading) + 2
        for row in table:
            sheet.append([safe_cell(v) for v, _ in row])
            current = sheet.max_row
            for col, (_, fmt) in enumerate(row, start=1):
                cell = sheet.cell(row=current, column=col)
                if fmt and isinstance(cell.value, int | float):
                    cell.number_format = fmt
                if current == first:
                    cell.font = Font(bold=True)
        for cells in sheet.iter_rows():
            for cell in cells:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        sheet.freeze_panes = sheet.cell(row=first + 1, column=2)
        ncols = max((len(r) for r in table), default=0)
        widths = [
            max((len(str(r[i][0])) for r in table if i < len(r) and r[i][0] is not None), default=8)
            for i in range(ncols)
        ]
        for i, width in enumerate(widths):
            letter = sheet.cell(row=first, column=i + 1).column_letter
            sheet.column_dimensions[letter].width = min(40, max(10, width * 2 + 2))
        palette = (colors or {}).get(name)
        if palette and len(table) > 1 and len(table[0]) > 1:
            chart = BarChart()
            chart.type, chart.grouping, chart.overlap = "col", "stacked", 100
            chart.title, chart.width, chart.height = name, 24, 10
            last = first + len(table) - 1
            data_ref = Reference(sheet, min_col=2, max_col=len(table[0]), min_row=first,
                                 max_row=last)  # fmt: skip
            chart.add_data(data_ref, titles_from_data=True)
            chart.set_categories(Reference(sheet, min_col=1, min_row=first + 1, max_row=last))
            for series, (label, _) in zip(chart.series, table[0][1:], strict=False):
                color = palette.get(str(label))
                if color:
                    series.graphicalProperties.solidFill = color.lstrip("#")
                    series.graphicalProperties.line.solidFill = color.lstrip("#")
            sheet.add_chart(chart, sheet.cell(row=first, column=len(table[0]) + 2).coordinate)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
