"""The briefing view's pure builders: every chart has a title and units on its axes, in both
languages; the KPI cards show 环比/同比 as points or percent; exports are well-formed."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest

from dashboard.i18n import t
from dashboard.services import trends
from layouts import ids
from layouts.trends import build_figures, fmt_value, hist_labels, kpi_cards

BUCKETS = ["2026-11-16T00:00:00+08:00", "2026-11-23T00:00:00+08:00"]


def page_data() -> dict[str, Any]:
    series: dict[str, Any] = {"buckets": BUCKETS}
    for name in trends.SERIES_COLUMNS:
        series[name] = [1, 2]
    for name in ("disposal_rate", "closure_rate", "on_time_rate", "rework_rate",
                 "dispute_resolution_rate"):  # fmt: skip
        series[name] = [0.5, None]
    current = {"reported": 4, "disposal_rate": 0.5, "dispatch_p50_s": 90.0}
    return {
        "period": ["2026-11-15T16:00:00+00:00", "2026-11-29T16:00:00+00:00"],
        "granularity": "week",
        "series": series,
        "by_category": {"buckets": BUCKETS, "series": {"dispute": [1, 1], "noise": [0, 3]}},
        "by_source": {"buckets": BUCKETS, "series": {"grid_app": [1, 4]}},
        "hour_of_week": [[0] * 24 for _ in range(7)],
        "by_grid": {"G1": 4, "G2": 2},
        "departments": [
            {
                "department": "police",
                "reported": 3,
                "resolved": 2,
                "disposal_rate": 1.0,
                "on_time_rate": 0.5,
                "resolve_p50_s": 3600.0,
                "rework_rate": 0.0,
            },
        ],
        "dispatch_hist": [0, 1, 2, 1, 0, 0, 1, 0, 0, 0],
        "arrival_hist": [0] * 10,
        "compare": {
            "current": current,
            "previous": {"reported": 2, "disposal_rate": 0.75, "dispatch_p50_s": 90.0},
            "last_year": None,
        },
        "top_cases": {"overdue": [], "rework": []},
    }


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_chart_has_a_title_and_axis_units(lang: str) -> None:
    figures = build_figures(page_data(), lang=lang, targets={"disposal_rate": 0.97},
                            grid_names={"G1": "一网格"})  # fmt: skip
    assert len(figures) == 8
    for graph_id, fig in figures.items():
        assert fig.layout.title.text, graph_id
        assert fig.layout.xaxis.title.text, graph_id
        if graph_id != ids.TRENDS_FIG_GRIDS:  # grid names are the y axis there
            assert fig.layout.yaxis.title.text, graph_id
        assert not any(k.startswith("tr_") for k in (fig.layout.title.text,)), graph_id
        # The axes' tick labels stand off their axis: the lowest y label ("0", "80%") and
        # the first x label no longer meet in the corner.
        assert fig.layout.xaxis.ticklabelstandoff >= 8 and fig.layout.yaxis.ticklabelstandoff >= 6
    rates = figures[ids.TRENDS_FIG_RATES]
    target = [tr for tr in rates.data if tr.line.dash == "dash"]
    assert target and list(target[0].y) == [97.0, 97.0]
    disputes = figures[ids.TRENDS_FIG_DISPUTES]  # the right axis is the rate's, not a count
    assert disputes.layout.yaxis2.title.text != disputes.layout.yaxis.title.text
    assert disputes.layout.yaxis2.title.text == t(lang, "tr_axis_percent")


def test_kpi_cards_show_changes() -> None:
    cards = kpi_cards(page_data()["compare"], "zh-CN")
    text = {c.to_plotly_json()["props"]["data-kpi"]: str(c.to_plotly_json()) for c in cards}
    assert "▲ 100.0%" in text["reported"]  # 4 against 2
    assert "▼ 25.0个百分点" in text["disposal_rate"]  # 0.5 against 0.75
    assert "± 0" in text["dispatch_p50_s"]
    assert fmt_value("dispatch_p50_s", 90.0, "en") == "90s"
    assert fmt_value("on_time_rate", None, "en") == "—"
    assert hist_labels("en")[0] == "<30s" and hist_labels("en")[-1] == "≥1 h"


def test_exports() -> None:
    tables = trends.export_tables(page_data())
    rows = list(csv.reader(io.StringIO(trends.to_csv(tables["series"]).lstrip("\ufeff"))))
    assert rows[0][0] == "bucket" and rows[1][0] == BUCKETS[0]
    assert rows[2][rows[0].index("disposal_rate")] == ""  # a null rate stays empty
    book = zipfile.ZipFile(io.BytesIO(trends.to_xlsx(tables)))
    assert "xl/workbook.xml" in book.namelist()
    workbook = book.read("xl/workbook.xml").decode()
    for sheet in ("series", "departments", "by_category", "by_source", "grids", "kpis"):
        assert f'name="{sheet}"' in workbook


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_header_names_its_links(lang: str) -> None:
    """No raw "/wall" as link text: the pages by name, the console only for roles it opens to."""
    from layouts.trends import _nav_links

    wall, dispatch = ("大屏", "调度台") if lang == "zh-CN" else ("Wall", "Dispatch")
    leader = _nav_links({"name": "li", "role": "leader"}, lang)
    assert [(a.children, a.href) for a in leader] == [(wall, "/wall")]
    lead = _nav_links({"name": "wang", "role": "lead"}, lang)
    assert [(a.children, a.href) for a in lead] == [(wall, "/wall"), (dispatch, "/dispatch")]
    assert all(not str(a.children).startswith("/") for a in lead)
