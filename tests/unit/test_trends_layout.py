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
    current = {"reported": 40, "disposal_rate": 0.5, "dispatch_p50_s": 90.0}
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
            "previous": {"reported": 20, "disposal_rate": 0.75, "dispatch_p50_s": 90.0},
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
    assert "▲ 100.0%" in text["reported"]  # 40 against 20
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


# -- issue 15: the briefing view --------------------------------------------------------------
def _bar_colors(fig: Any) -> dict[str, str]:
    return {trace.name: trace.marker.color for trace in fig.data}


@pytest.mark.parametrize(("dimension", "fig_id"), [("category", ids.TRENDS_FIG_CATEGORY),
                                                   ("source", ids.TRENDS_FIG_SOURCE)])  # fmt: skip
def test_a_category_keeps_its_color_whatever_the_filter(dimension: str, fig_id: str) -> None:
    """Colors are the category's own (dashboard/theme.py), not its place in the list: with a
    filter that leaves only the second category, it keeps the color it had beside the first."""
    from dashboard.theme import CATEGORY_COLORS, SOURCE_COLORS, category_color

    data = page_data()
    key = "by_category" if dimension == "category" else "by_source"
    data[key]["series"] = (
        {"dispute": [1, 1], "noise": [0, 3]} if dimension == "category"
        else {"grid_app": [1, 4], "iot": [2, 2]}
    )  # fmt: skip
    full = _bar_colors(build_figures(data, lang="zh-CN", targets={}, grid_names={})[fig_id])
    last = list(data[key]["series"])[-1]
    data[key]["series"] = {last: data[key]["series"][last]}
    filtered = _bar_colors(build_figures(data, lang="zh-CN", targets={}, grid_names={})[fig_id])
    assert len(filtered) == 1
    ((name, color),) = filtered.items()
    assert full[name] == color
    table = CATEGORY_COLORS if dimension == "category" else SOURCE_COLORS
    assert color == table[last]
    # Every known category and source has a color of its own; an unknown one a stable one.
    assert len(set(CATEGORY_COLORS.values())) == len(CATEGORY_COLORS)
    assert len(set(SOURCE_COLORS.values())) == len(SOURCE_COLORS)
    assert category_color("imported_kind") == category_color("imported_kind")


def test_the_wall_draws_categories_in_the_same_colors() -> None:
    from dashboard.theme import CATEGORY_COLORS
    from layouts.wall import live_config

    assert live_config(lang="zh-CN", tz="Asia/Shanghai")["categoryColors"] == CATEGORY_COLORS


def _texts(component: Any) -> list[str]:
    """Every string in a component tree."""
    out: list[str] = []
    children = getattr(component, "children", component)
    if isinstance(children, str):
        return [children]
    if isinstance(children, list | tuple):
        for child in children:
            out += _texts(child)
    elif children is not None and hasattr(children, "children"):
        out += _texts(children)
    return out


def test_a_change_against_a_small_base_says_so() -> None:
    """▲887 % over 3 cases is noise: under MIN_BASE cases the card says 基数小, not a change."""
    assert trends.MIN_BASE == 20
    assert trends.change(30, 3, "reported", base=3) == {
        "kind": "small_base", "value": None, "base": 3,
    }  # fmt: skip
    assert trends.change(30, 20, "reported", base=20) == {"kind": "percent", "value": 50.0}
    assert trends.change(0.9, 0.5, "disposal_rate", base=5)["kind"] == "small_base"  # type: ignore[index]
    compare = {
        "current": {"reported": 300, "disposal_rate": 0.9},
        "previous": {"reported": 3, "disposal_rate": 0.5},
        "last_year": {"reported": 250, "disposal_rate": 0.8},
    }
    for lang in ("zh-CN", "en"):
        cards = {c.id if hasattr(c, "id") else i: c for i, c in enumerate(kpi_cards(compare, lang))}
        text = " ".join(" ".join(_texts(c)) for c in cards.values())
        assert t(lang, "tr_small_base") in text
        assert "9900" not in text and "887" not in text
        assert "▲ 20.0%" in text  # 同比 over 250 cases is a real change
        assert "▲ 10.0" in text  # the rate's 同比: points


def test_the_print_table_says_small_base_too() -> None:
    from layouts.trends import create_print_layout

    data = page_data()
    data["compare"]["current"]["reported"] = 300
    data["compare"]["previous"]["reported"] = 3
    page = create_print_layout(
        data, lang="zh-CN", title_period="p", filters_text="f",
        generated=__import__("datetime").datetime(2026, 11, 30, 9), targets={},
        grid_names={}, dept_names={},
    )  # fmt: skip
    assert "基数小" in " ".join(_texts(page))


@pytest.mark.parametrize(
    ("granularity", "n", "dtick"),
    [("day", 3, 86_400_000), ("day", 31, 3 * 86_400_000), ("hour", 24, 2 * 3_600_000),
     ("week", 4, 7 * 86_400_000), ("month", 12, "M1"), ("month", 36, "M3")],
)  # fmt: skip
def test_time_axes_put_one_label_per_bucket(granularity: str, n: int, dtick: Any) -> None:
    """A short range does not repeat its dates: ticks fall on whole buckets (at most 12)."""
    from layouts.trends import MAX_TICKS

    data = page_data()
    data["granularity"] = granularity
    buckets = [f"2026-11-{d:02d}T00:00:00+08:00" for d in range(1, n + 1)] if n <= 30 else [
        f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}T00:00:00+08:00" for d in range(n)
    ]
    data["series"] = {"buckets": buckets, **{c: [1] * n for c in trends.SERIES_COLUMNS}}
    data["by_category"] = {"buckets": buckets, "series": {"noise": [1] * n}}
    data["by_source"] = {"buckets": buckets, "series": {"iot": [1] * n}}
    figures = build_figures(data, lang="zh-CN", targets={}, grid_names={})
    for graph_id in (ids.TRENDS_FIG_CATEGORY, ids.TRENDS_FIG_RATES, ids.TRENDS_FIG_TIMES,
                     ids.TRENDS_FIG_DISPUTES, ids.TRENDS_FIG_SOURCE):  # fmt: skip
        axis = figures[graph_id].layout.xaxis
        assert axis.dtick == dtick, graph_id
        assert axis.tick0 == buckets[0][:16].replace("T", " ")
        ticks = -(-n // (int(str(dtick).lstrip("M")) if isinstance(dtick, str)
                         else dtick // {"hour": 3_600_000, "day": 86_400_000,
                                        "week": 7 * 86_400_000}[granularity]))  # fmt: skip
        assert ticks <= MAX_TICKS


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_empty_charts_say_no_data(lang: str) -> None:
    data = page_data()
    for name in trends.SERIES_COLUMNS:
        empty = name.endswith(("_rate", "_s"))
        data["series"][name] = [None, None] if empty else [0, 0]
    data["by_category"]["series"] = {}
    data["by_source"]["series"] = {}
    data["by_grid"] = {}
    data["dispatch_hist"] = [0] * 10
    figures = build_figures(data, lang=lang, targets={"disposal_rate": 0.97}, grid_names={})
    for graph_id, fig in figures.items():
        notes = [a.text for a in fig.layout.annotations]
        assert notes == [t(lang, "tr_no_data")], graph_id
        assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False, graph_id
    # A chart with data has no such note.
    full = build_figures(page_data(), lang=lang, targets={}, grid_names={})
    assert not full[ids.TRENDS_FIG_CATEGORY].layout.annotations


def test_export_file_names_use_the_local_first_day() -> None:
    from zoneinfo import ZoneInfo

    data = page_data()  # the period starts 2026-11-15T16:00 UTC = 2026-11-16 00:00 +08:00
    assert trends.export_stamp(data, ZoneInfo("Asia/Shanghai")) == "2026-11-16_week"
    assert trends.export_stamp(data, ZoneInfo("UTC")) == "2026-11-15_week"


def test_the_replay_offers_300x_and_1440x_and_a_legend() -> None:
    """A 12-hour shift in under three minutes (300×), a day in a minute (1440×); units are
    drawn as squares unlike the case dots, and the legend says which is which."""
    from datetime import date

    from callbacks.trends_state import PageState
    from layouts.trends import SPEEDS, create_replay

    assert {300, 1440} <= set(SPEEDS)
    replay = create_replay(PageState(), lang="zh-CN", today=date(2026, 11, 30))
    text = str(replay.to_plotly_json())
    assert "1440×" in text and "300×" in text
    legend = " ".join(_texts(replay))
    assert t("zh-CN", "tr_replay_key_case") in legend and t("zh-CN", "tr_replay_key_unit") in legend
    assert "lq-tr-unit" in text
