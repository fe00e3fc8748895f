"""The briefing view (/trends) and its printable page (/trends/print): pure layout builders.

Every chart is a plotly figure built here from the data of
``dashboard.services.trends.trends_page`` (a plain dict), with a title that says what
it shows and units on its axes. The page keeps its state in the URL (the router hands
the parsed state in); the replay on the map is animated by assets/lianqin-trends.js.
Untrusted text (case titles) is only ever a component's text.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import dcc, html
from dash.development.base_component import Component

from dashboard.i18n import CATEGORY_LABELS, SOURCE_LABELS, STATUS_LABELS, t
from dashboard.policy import allowed
from dashboard.services.geo import MapView
from dashboard.services.trends import (
    COMPARED,
    GRANULARITIES,
    HIST_EDGES_S,
    PERIOD_KINDS,
    SHIFTS,
)
from dashboard.theme import DENSITY_COLORS
from dashboard.vocabulary import KPIS
from layouts import ids

if TYPE_CHECKING:  # the URL state is the callbacks' (they hand it in); no import at run time
    from callbacks.trends_state import PageState

FONT = (
    '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", '
    '"Microsoft YaHei", sans-serif'
)
# Okabe-Ito first (safe for color-blind viewers), then distinguishable extras.
PALETTE: tuple[str, ...] = (
    "#56B4E9", "#E69F00", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    "#A0A7B4", "#8DD3C7", "#BEBADA", "#FB8072", "#B3DE69",
)  # fmt: skip
RATE_COLORS = {"disposal_rate": "#009E73", "closure_rate": "#56B4E9", "on_time_rate": "#E69F00"}
SPEEDS = (1, 5, 10, 30, 60)
TOP_GRIDS = 15
GRAPH_CONFIG: Any = {
    "displaylogo": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "png", "scale": 2},
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}
# Graph id → the chart's data key (the callback fills them in this order).
CHARTS: tuple[str, ...] = (
    ids.TRENDS_FIG_CATEGORY,
    ids.TRENDS_FIG_SOURCE,
    ids.TRENDS_FIG_RATES,
    ids.TRENDS_FIG_TIMES,
    ids.TRENDS_FIG_HIST,
    ids.TRENDS_FIG_HEATMAP,
    ids.TRENDS_FIG_GRIDS,
    ids.TRENDS_FIG_DISPUTES,
)


# -- formatting ---------------------------------------------------------------------------------
def _x(buckets: Sequence[str]) -> list[str]:
    """Bucket starts as naive local times: plotly draws wall times, not offsets."""
    return [b[:16].replace("T", " ") for b in buckets]


def _pct(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else round(v * 100, 1) for v in values]


def _minutes(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else round(v / 60, 2) for v in values]


def fmt_duration(seconds: float, lang: str) -> str:
    if seconds < 120:
        return f"{seconds:.0f}{t(lang, 'unit_s')}"
    if seconds < 7200:
        return f"{seconds / 60:.1f}{t(lang, 'tr_unit_min')}"
    return f"{seconds / 3600:.1f}{t(lang, 'tr_unit_h')}"


def fmt_value(name: str, value: Any, lang: str) -> str:
    """A figure as its registry format says (dashboard/vocabulary.py ``KPIS``)."""
    if value is None:
        return "—"
    fmt = KPIS[name].format
    if fmt == "rate":
        return f"{value * 100:.1f}%"
    if fmt == "duration":
        return fmt_duration(float(value), lang)
    return f"{int(value):,}"


def fmt_change(change: Mapping[str, Any] | None, name: str, lang: str) -> Component:
    """▲/▼ and the change (points for rates, percent otherwise); the arrow and sign carry the
    meaning, the color (better / worse) only repeats it. A figure whose rise is not good news
    (``better`` "down", or "" like ``reported``: more cases) is colored worse when it rises."""
    if change is None:
        return html.Span("—", className="lq-tr-flat")
    value = float(change["value"])
    if value == 0:
        return html.Span("± 0", className="lq-tr-flat")
    arrow = "▲" if value > 0 else "▼"
    better = (value > 0) == (KPIS[name].better == "up")
    unit = t(lang, "tr_points") if change["kind"] == "points" else "%"
    return html.Span(
        f"{arrow} {abs(value):.1f}{unit}", className="lq-tr-better" if better else "lq-tr-worse"
    )


def _title(name: str) -> str:
    """The briefing's label key of a figure (the registry's ``title``)."""
    return KPIS[name].title or KPIS[name].label


def _change(current: Any, before: Any, name: str) -> dict[str, Any] | None:
    from dashboard.services.trends import change

    return change(current, before, name)


# -- figures -----------------------------------------------------------------------------------
def _style(
    fig: go.Figure,
    title: str,
    *,
    x_title: str,
    y_title: str,
    paper: bool = False,
    height: int = 340,
    legend_right: bool = False,
) -> go.Figure:
    text = "#1b2433" if paper else "#e8eef9"
    grid = "rgba(0,0,0,0.10)" if paper else "rgba(160,180,220,0.14)"
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        font={"family": FONT, "size": 12, "color": text},
        paper_bgcolor="rgba(0,0,0,0)" if not paper else "#ffffff",
        plot_bgcolor="rgba(0,0,0,0)" if not paper else "#ffffff",
        margin={"l": 64, "r": 16 if not legend_right else 8, "t": 64, "b": 52},
        height=height,
        hovermode="x unified",
        legend=(
            {"orientation": "v", "x": 1.01, "y": 1, "font": {"size": 11}}
            if legend_right
            else {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "font": {"size": 11}}
        ),
        bargap=0.15,
    )
    # The first x label is centred on the axes' corner, where the lowest y label ends: both
    # stand off their axis (below it, left of it) so that "0" or "80%" never runs into
    # "11-23" (issue 18; screenshots at 1366×768 and 1920×1080).
    fig.update_xaxes(
        title_text=x_title, gridcolor=grid, zeroline=False, automargin=True,
        ticklabelstandoff=10, title_standoff=8,
    )  # fmt: skip
    fig.update_yaxes(
        title_text=y_title, gridcolor=grid, zeroline=False, automargin=True,
        ticklabelstandoff=8, title_standoff=8,
    )  # fmt: skip
    return fig


TICKFORMAT = {"hour": "%m-%d %H:%M", "day": "%m-%d", "week": "%m-%d", "month": "%Y-%m"}


def _time_axis(fig: go.Figure, granularity: str) -> go.Figure:
    """Dates as numbers (no month names in a Chinese page; plotly has no zh-CN locale here)."""
    fig.update_xaxes(
        type="date", tickformat=TICKFORMAT[granularity], hoverformat=TICKFORMAT[granularity]
    )
    return fig


def _x_title(granularity: str, lang: str) -> str:
    return t(lang, f"tr_axis_{granularity}")


def fig_volume(
    data: Mapping[str, Any], dimension: str, lang: str, *, paper: bool = False
) -> go.Figure:
    block = data["by_category" if dimension == "category" else "by_source"]
    labels = (CATEGORY_LABELS if dimension == "category" else SOURCE_LABELS).get(lang, {})
    fig = go.Figure()
    x = _x(block["buckets"])
    for i, (key, values) in enumerate(block["series"].items()):
        fig.add_bar(
            x=x, y=values, name=labels.get(key, key), marker_color=PALETTE[i % len(PALETTE)]
        )
    fig.update_layout(barmode="stack")
    title = t(lang, "tr_fig_category" if dimension == "category" else "tr_fig_source")
    _time_axis(fig, data["granularity"])
    return _style(
        fig, title, x_title=_x_title(data["granularity"], lang), y_title=t(lang, "tr_axis_cases"),
        paper=paper, legend_right=True, height=400 if dimension == "category" else 340,
    )  # fmt: skip


def fig_rates(
    data: Mapping[str, Any], targets: Mapping[str, float], lang: str, *, paper: bool = False
) -> go.Figure:
    series = data["series"]
    x = _x(series["buckets"])
    fig = go.Figure()
    for name, color in RATE_COLORS.items():
        fig.add_scatter(
            x=x, y=_pct(series[name]), name=t(lang, _title(name)), mode="lines+markers",
            line={"color": color, "width": 2.5}, connectgaps=False,
        )  # fmt: skip
        target = targets.get(name)
        if target is not None:
            fig.add_scatter(
                x=[x[0], x[-1]] if x else [], y=[target * 100, target * 100],
                name=f"{t(lang, 'tr_target')} {t(lang, _title(name))} {target * 100:g}%",
                mode="lines", line={"color": color, "width": 1.5, "dash": "dash"},
                hoverinfo="skip",
            )  # fmt: skip
    # Rates live near 100 %: start the axis a little under the lowest value or target, so
    # that the lines and their targets are told apart.
    shown = [v for name in RATE_COLORS for v in _pct(series[name]) if v is not None]
    shown += [v * 100 for v in targets.values()]
    low = max(0.0, (min(shown, default=0.0) // 10) * 10 - 10)
    fig.update_yaxes(range=[low, 101], ticksuffix="%")
    _time_axis(fig, data["granularity"])
    return _style(
        fig, t(lang, "tr_fig_rates"), x_title=_x_title(data["granularity"], lang),
        y_title=t(lang, "tr_axis_percent"), paper=paper, legend_right=True,
    )  # fmt: skip


def fig_times(data: Mapping[str, Any], lang: str, *, paper: bool = False) -> go.Figure:
    series = data["series"]
    x = _x(series["buckets"])
    fig = go.Figure()
    for name, color, dash in (
        ("dispatch_p50_s", "#56B4E9", "solid"), ("dispatch_p90_s", "#56B4E9", "dot"),
        ("arrival_p50_s", "#E69F00", "solid"), ("arrival_p90_s", "#E69F00", "dot"),
    ):  # fmt: skip
        fig.add_scatter(
            x=x, y=_minutes(series[name]), name=t(lang, f"tr_{name}"), mode="lines+markers",
            line={"color": color, "width": 2.2, "dash": dash},
        )  # fmt: skip
    fig.update_yaxes(rangemode="tozero")
    _time_axis(fig, data["granularity"])
    return _style(
        fig, t(lang, "tr_fig_times"), x_title=_x_title(data["granularity"], lang),
        y_title=t(lang, "tr_axis_minutes"), paper=paper, legend_right=True,
    )  # fmt: skip


def hist_labels(lang: str) -> list[str]:
    def short(seconds: int) -> str:
        if seconds < 60:
            return f"{seconds}{t(lang, 'unit_s')}"
        if seconds < 3600:
            return f"{seconds // 60}{t(lang, 'tr_unit_min')}"
        return f"{seconds // 3600}{t(lang, 'tr_unit_h')}"

    edges = (0, *HIST_EDGES_S)
    labels = [
        f"{short(a)}–{short(b)}" if a else f"<{short(b)}" for a, b in itertools.pairwise(edges)
    ]
    return [*labels, f"≥{short(HIST_EDGES_S[-1])}"]


def fig_hist(data: Mapping[str, Any], lang: str, *, paper: bool = False) -> go.Figure:
    labels = hist_labels(lang)
    fig = go.Figure()
    fig.add_bar(x=labels, y=data["dispatch_hist"], name=t(lang, "tr_dispatch"),
                marker_color="#56B4E9")  # fmt: skip
    fig.add_bar(x=labels, y=data["arrival_hist"], name=t(lang, "tr_arrival"),
                marker_color="#E69F00")  # fmt: skip
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category", tickangle=-30, tickfont={"size": 11})
    return _style(
        fig, t(lang, "tr_fig_hist"), x_title=t(lang, "tr_axis_duration"),
        y_title=t(lang, "tr_axis_cases"), paper=paper,
    )  # fmt: skip


def fig_heatmap(data: Mapping[str, Any], lang: str, *, paper: bool = False) -> go.Figure:
    days = [t(lang, f"tr_dow_{i}") for i in range(7)]
    fig = go.Figure(
        go.Heatmap(
            z=data["hour_of_week"], x=[f"{h:02d}" for h in range(24)], y=days,
            colorscale="Viridis", colorbar={"title": {"text": t(lang, "tr_axis_cases")}},
            hovertemplate="%{y} %{x}:00 · %{z}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return _style(
        fig, t(lang, "tr_fig_heatmap"), x_title=t(lang, "tr_axis_hour"),
        y_title=t(lang, "tr_axis_weekday"), paper=paper,
    )  # fmt: skip


def fig_grids(
    data: Mapping[str, Any], grid_names: Mapping[str, str], lang: str, *, paper: bool = False
) -> go.Figure:
    top = list(data["by_grid"].items())[:TOP_GRIDS]
    top.reverse()  # the busiest on top
    fig = go.Figure()
    fig.add_bar(
        y=[f"{grid_names.get(code, code)} · {code}" for code, _ in top],
        x=[n for _, n in top], orientation="h", marker_color="#56B4E9",
        name=t(lang, "tr_axis_cases"),
    )  # fmt: skip
    fig.update_yaxes(type="category")
    return _style(
        fig, t(lang, "tr_fig_grids").format(n=TOP_GRIDS), x_title=t(lang, "tr_axis_cases"),
        y_title="", paper=paper, height=max(340, 22 * len(top) + 110),
    )  # fmt: skip


def fig_disputes(data: Mapping[str, Any], lang: str, *, paper: bool = False) -> go.Figure:
    series = data["series"]
    x = _x(series["buckets"])
    fig = go.Figure()
    fig.add_bar(x=x, y=series["disputes"], name=t(lang, _title("disputes")), marker_color="#CC79A7")
    fig.add_scatter(
        x=x, y=_pct(series["dispute_resolution_rate"]),
        name=t(lang, _title("dispute_resolution_rate")),
        mode="lines+markers", line={"color": "#009E73", "width": 2.5}, yaxis="y2",
    )  # fmt: skip
    fig.update_layout(
        yaxis2={"overlaying": "y", "side": "right", "range": [0, 105], "ticksuffix": "%",
                "title": {"text": t(lang, "tr_axis_percent")}, "showgrid": False,
                "dtick": 20},
    )  # fmt: skip
    _time_axis(fig, data["granularity"])
    _style(
        fig, t(lang, "tr_fig_disputes"), x_title=_x_title(data["granularity"], lang),
        y_title=t(lang, "tr_axis_cases"), paper=paper,
    )  # fmt: skip
    # _style titles every y axis: the right one is the rate's.
    fig.update_layout(yaxis2_title_text=t(lang, "tr_axis_percent"))
    return fig


def build_figures(
    data: Mapping[str, Any],
    *,
    lang: str,
    targets: Mapping[str, float],
    grid_names: Mapping[str, str],
    paper: bool = False,
) -> dict[str, go.Figure]:
    """Every chart of the page, by graph id."""
    return {
        ids.TRENDS_FIG_CATEGORY: fig_volume(data, "category", lang, paper=paper),
        ids.TRENDS_FIG_SOURCE: fig_volume(data, "source", lang, paper=paper),
        ids.TRENDS_FIG_RATES: fig_rates(data, targets, lang, paper=paper),
        ids.TRENDS_FIG_TIMES: fig_times(data, lang, paper=paper),
        ids.TRENDS_FIG_HIST: fig_hist(data, lang, paper=paper),
        ids.TRENDS_FIG_HEATMAP: fig_heatmap(data, lang, paper=paper),
        ids.TRENDS_FIG_GRIDS: fig_grids(data, grid_names, lang, paper=paper),
        ids.TRENDS_FIG_DISPUTES: fig_disputes(data, lang, paper=paper),
    }


# -- KPI cards and tables ----------------------------------------------------------------------
def kpi_cards(compare: Mapping[str, Any], lang: str) -> list[Component]:
    """Each compared KPI with 环比 and 同比 changes."""
    current = compare["current"]
    previous = compare.get("previous") or {}
    last_year = compare.get("last_year") or {}
    cards: list[Component] = []
    for name in COMPARED:
        value = current.get(name)
        cards.append(
            html.Div(
                [
                    html.Div(t(lang, _title(name)), className="lq-tr-kpi-label"),
                    html.Div(fmt_value(name, value, lang), className="lq-tr-kpi-value"),
                    html.Div(
                        [
                            html.Span(t(lang, "tr_mom"), className="lq-tr-kpi-cmp"),
                            fmt_change(_change(value, previous.get(name), name), name, lang),
                        ]
                    ),
                    html.Div(
                        [
                            html.Span(t(lang, "tr_yoy"), className="lq-tr-kpi-cmp"),
                            fmt_change(_change(value, last_year.get(name), name), name, lang),
                        ]
                    ),
                ],
                className="lq-tr-kpi",
                **_attrs({"data-kpi": name}),
            )
        )
    return cards


def department_table(
    rows: Sequence[Mapping[str, Any]], dept_names: Mapping[str, str], lang: str
) -> Component:
    head = html.Tr(
        [html.Th(t(lang, k)) for k in ("tr_rank", "tr_department", "tr_axis_cases",
                                        _title("disposal_rate"), _title("on_time_rate"),
                                        _title("resolve_p50_s"), _title("rework_rate"))]
    )  # fmt: skip
    body = [
        html.Tr(
            [
                html.Td(str(i + 1)),
                html.Td(dept_names.get(r["department"], r["department"]) or t(lang, "tr_none")),
                html.Td(f"{r['reported']:,}"),
                html.Td(fmt_value("disposal_rate", r["disposal_rate"], lang)),
                html.Td(fmt_value("on_time_rate", r["on_time_rate"], lang)),
                html.Td(fmt_value("resolve_p50_s", r["resolve_p50_s"], lang)),
                html.Td(fmt_value("rework_rate", r["rework_rate"], lang)),
            ]
        )
        for i, r in enumerate(rows)
    ]
    if not body:
        body = [html.Tr(html.Td(t(lang, "tr_no_data"), colSpan=7))]
    return html.Table([html.Thead(head), html.Tbody(body)], className="lq-tr-table")


def cases_table(
    rows: Sequence[Mapping[str, Any]], kind: str, grid_names: Mapping[str, str], lang: str
) -> Component:
    last = "tr_late_by" if kind == "overdue" else "tr_rework_count"
    head = html.Tr([html.Th(t(lang, k)) for k in ("tr_case", "tr_title_col", "tr_category",
                                                  "tr_grid_col", "tr_status", last)])  # fmt: skip
    body = []
    for r in rows:
        extra = (
            fmt_duration(float(r["late_s"]), lang) if kind == "overdue" else str(r["rework_count"])
        )
        body.append(
            html.Tr(
                [
                    html.Td(r["id"]),
                    html.Td(r["title"]),
                    html.Td(CATEGORY_LABELS.get(lang, {}).get(r["category"], r["category"])),
                    html.Td(grid_names.get(r["grid"] or "", r["grid"] or "—")),
                    html.Td(STATUS_LABELS.get(lang, {}).get(r["status"], r["status"])),
                    html.Td(extra),
                ]
            )
        )
    if not body:
        body = [html.Tr(html.Td(t(lang, "tr_no_data"), colSpan=6))]
    return html.Table([html.Thead(head), html.Tbody(body)], className="lq-tr-table")


def grid_choropleth(by_grid: Mapping[str, int]) -> dict[str, Any]:
    """What the grids layer is colored by: cases per grid and the color steps."""
    return {
        "counts": dict(by_grid),
        "max": max(by_grid.values(), default=0),
        "colors": list(DENSITY_COLORS),
    }


def choropleth_legend(by_grid: Mapping[str, int], lang: str) -> Component:
    top = max(by_grid.values(), default=0)
    steps = len(DENSITY_COLORS)
    items = []
    for i, color in enumerate(DENSITY_COLORS):
        low = int(top * i / steps) + 1
        high = int(top * (i + 1) / steps)
        label = f"{low}–{high}" if top else "0"
        items.append(html.Span([html.I(style={"background": color}), label]))
    return html.Div(
        [html.Span(t(lang, "tr_map_legend"), className="lq-tr-legend-title"), *items],
        className="lq-tr-legend",
    )


# -- the page ------------------------------------------------------------------------------------
def _options(values: Sequence[str], labels: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"value": v, "label": labels.get(v, v)} for v in values]


def _field(label: str, control: Component, cls: str = "") -> Component:
    return html.Label([html.Span(label, className="lq-tr-field-label"), control],
                      className=f"lq-tr-field {cls}".strip())  # fmt: skip


def create_controls(
    state: PageState,
    *,
    lang: str,
    categories: Sequence[str],
    sources: Sequence[str],
    options: Mapping[str, Any],
    today: date,
) -> Component:
    f = state.filters
    zh = lang == "zh-CN"
    return html.Div(
        [
            _field(t(lang, "tr_period"), dcc.Dropdown(
                id=ids.TRENDS_PERIOD, value=state.period, clearable=False, searchable=False,
                options=[{"value": k, "label": t(lang, f"tr_period_{k}")} for k in PERIOD_KINDS],
            ), "lq-tr-period"),
            _field(t(lang, "tr_range"), dcc.DatePickerRange(
                id=ids.TRENDS_RANGE, start_date=_iso(state.start), end_date=_iso(state.end),
                max_date_allowed=_iso(today), display_format="YYYY-MM-DD", first_day_of_week=1,
                minimum_nights=0, start_date_placeholder_text=t(lang, "tr_from"),
                end_date_placeholder_text=t(lang, "tr_to"),
            ), "lq-tr-range"),
            _field(t(lang, "tr_granularity"), dcc.RadioItems(
                id=ids.TRENDS_GRANULARITY, value=state.granularity or "auto", inline=True,
                options=[{"value": "auto", "label": t(lang, "tr_auto")}]
                + [{"value": g, "label": t(lang, f"tr_g_{g}")} for g in GRANULARITIES],
            ), "lq-tr-gran"),
            _field(t(lang, "tr_category"), dcc.Dropdown(
                id=ids.TRENDS_CATEGORY, value=list(f.categories), multi=True,
                options=_options(categories, CATEGORY_LABELS.get(lang, {})),
                placeholder=t(lang, "tr_all"),
            )),
            _field(t(lang, "tr_source"), dcc.Dropdown(
                id=ids.TRENDS_SOURCE, value=list(f.sources), multi=True,
                options=_options(sources, SOURCE_LABELS.get(lang, {})),
                placeholder=t(lang, "tr_all"),
            )),
            _field(t(lang, "tr_grid_kind"), dcc.Dropdown(
                id=ids.TRENDS_GRID_KIND, value=f.grid_kind, placeholder=t(lang, "tr_all"),
                options=[{"value": k["value"], "label": _kind_label(k["value"], lang)}
                         for k in options["grid_kinds"]],
            )),
            _field(t(lang, "tr_grid"), dcc.Dropdown(
                id=ids.TRENDS_GRID, value=list(f.grids), multi=True,
                placeholder=t(lang, "tr_all"),
                options=[{"value": g["value"], "label": f"{g['name']} · {g['value']}"}
                         for g in options["grids"]],
            )),
            _field(t(lang, "tr_zone"), dcc.Dropdown(
                id=ids.TRENDS_ZONE, value=f.zone, placeholder=t(lang, "tr_all"),
                options=[{"value": z["value"], "label": z["name"] if zh else z["name_en"]}
                         for z in options["zones"]],
            )),
            _field(t(lang, "tr_department"), dcc.Dropdown(
                id=ids.TRENDS_DEPARTMENT, value=f.department, placeholder=t(lang, "tr_all"),
                options=[{"value": d["value"], "label": d["name"] if zh else d["name_en"]}
                         for d in options["departments"]],
            )),
        ],
        className="lq-tr-controls",
    )  # fmt: skip


def _kind_label(kind: str, lang: str) -> str:
    """A grid kind's name (an imported district may bring kinds we have no name for)."""
    label = t(lang, f"tr_kind_{kind}")
    return kind if label == f"tr_kind_{kind}" else label


def _user_text(user: Mapping[str, str], lang: str) -> str:
    return f"{user.get('name', '')} · {t(lang, 'role_' + user.get('role', 'leader'))}"


def _nav_links(user: Mapping[str, str], lang: str) -> list[Component]:
    """Links to the other pages, by name (大屏 / Wall), the console only for roles it opens to."""
    links: list[Component] = [
        html.A(t(lang, "nav_wall"), href="/wall", className="lq-tr-nav", id="lq-tr-nav-wall")
    ]
    if allowed(user.get("role", ""), "view_dispatch"):
        links.append(
            html.A(t(lang, "nav_dispatch"), href="/dispatch", className="lq-tr-nav",
                   id="lq-tr-nav-dispatch")
        )  # fmt: skip
    return links


def _attrs(values: Mapping[str, str]) -> dict[str, Any]:
    """HTML data- attributes for a Dash component (passed as keyword arguments)."""
    return dict(values)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _graph(graph_id: str, cls: str = "") -> Component:
    return html.Div(
        dcc.Loading(dcc.Graph(id=graph_id, config=GRAPH_CONFIG, className="lq-tr-graph"),
                    type="dot", color="#56B4E9", delay_show=400),
        className=f"lq-tr-card {cls}".strip(),
    )  # fmt: skip


def create_replay(state: PageState, *, lang: str, today: date) -> Component:
    return html.Div(
        [
            html.Span(t(lang, "tr_replay"), className="lq-tr-replay-title"),
            dcc.DatePickerSingle(
                id=ids.TRENDS_REPLAY_DAY, date=_iso(state.replay_day), max_date_allowed=_iso(today),
                display_format="YYYY-MM-DD", first_day_of_week=1,
                placeholder=t(lang, "tr_replay_day"),
            ),
            dcc.Dropdown(
                id=ids.TRENDS_REPLAY_SHIFT, value=state.replay_shift, clearable=False,
                searchable=False, className="lq-tr-shift",
                options=[{"value": k, "label": t(lang, f"tr_shift_{k}")} for k in SHIFTS],
            ),
            html.Button(t(lang, "tr_play"), id=ids.TRENDS_REPLAY_PLAY, n_clicks=0,
                        className="lq-tr-button", disabled=True,
                        **_attrs({"data-play": t(lang, "tr_play"),
                                  "data-pause": t(lang, "tr_pause")})),
            dcc.Dropdown(
                id=ids.TRENDS_REPLAY_SPEED, value=60, clearable=False, searchable=False,
                className="lq-tr-speed",
                options=[{"value": s, "label": f"{s}×"} for s in SPEEDS],
            ),
            html.Div(
                dcc.Slider(id=ids.TRENDS_REPLAY_SLIDER, min=0, max=1000, step=1, value=0,
                           marks=None, updatemode="drag", allow_direct_input=False),
                className="lq-tr-slider",
            ),
            html.Span("--:--", id=ids.TRENDS_REPLAY_CLOCK, className="lq-tr-replay-clock"),
            html.Span("", id=ids.TRENDS_REPLAY_INFO, className="lq-tr-replay-info"),
        ],
        className="lq-tr-replay",
    )  # fmt: skip


def create_map(view: MapView, *, lang: str) -> Component:
    (south, west), (north, east) = view.bounds

    def fn(name: str) -> dict[str, str]:
        return {"variable": name}

    return dl.Map(
        [
            dl.GeoJSON(url="/api/v1/geo/basemap", style=fn("lq.style.basemap"),
                       interactive=False),
            dl.GeoJSON(id=ids.TRENDS_CHOROPLETH, url="/api/v1/geo/grids",
                       style=fn("lq.trends.gridStyle"),
                       onEachFeature=fn("lq.trends.gridFeature")),
            dl.LayerGroup(id=ids.TRENDS_REPLAY_LAYER,
                          eventHandlers={"add": fn("lq.trends.bindReplay")}),
        ],
        id=ids.TRENDS_MAP, center=list(view.center), zoom=view.zoom,
        bounds=[[south, west], [north, east]], zoomControl=True, attributionControl=False,
        className="lq-tr-map", preferCanvas=False,
    )  # fmt: skip


def create_trends_layout(
    state: PageState,
    *,
    lang: str,
    view: MapView,
    options: Mapping[str, Any],
    categories: Sequence[str],
    sources: Sequence[str],
    user: Mapping[str, str],
    today: date,
    search: str,
) -> Component:
    """The /trends page: controls, KPI cards, charts, the map with the replay, the league."""
    return html.Div(
        [
            dcc.Store(id=ids.TRENDS_INIT, data=search),
            dcc.Store(id=ids.TRENDS_REPLAY_DATA),
            dcc.Store(id=ids.TRENDS_CHOROPLETH_DATA),
            dcc.Store(id=ids.TRENDS_REPLAY_SINK),
            dcc.Download(id=ids.TRENDS_DOWNLOAD),
            html.Header(
                [
                    html.H1(t(lang, "tr_title")),
                    html.Span("", id=ids.TRENDS_PERIOD_LABEL, className="lq-tr-period-label"),
                    html.Div(
                        [
                            html.A(t(lang, "tr_print"), id=ids.TRENDS_PRINT_LINK,
                                   href="/trends/print", target="_blank",
                                   className="lq-tr-button"),
                            html.Button(t(lang, "tr_csv_series"), id=ids.TRENDS_CSV_SERIES,
                                        className="lq-tr-button"),
                            html.Button(t(lang, "tr_csv_departments"),
                                        id=ids.TRENDS_CSV_DEPARTMENTS, className="lq-tr-button"),
                            html.Button(t(lang, "tr_excel"), id=ids.TRENDS_EXCEL,
                                        className="lq-tr-button"),
                            html.Span(_user_text(user, lang), className="lq-tr-user"),
                            *_nav_links(user, lang),
                        ],
                        className="lq-tr-actions",
                    ),
                ],
                className="lq-tr-header",
            ),
            create_controls(state, lang=lang, categories=categories, sources=sources,
                            options=options, today=today),
            html.Div("", id=ids.TRENDS_ERROR, className="lq-tr-error", role="alert"),
            html.Div(id=ids.TRENDS_KPIS, className="lq-tr-kpis"),
            html.Div(
                [
                    _graph(ids.TRENDS_FIG_CATEGORY, "lq-tr-wide"),
                    _graph(ids.TRENDS_FIG_RATES),
                    _graph(ids.TRENDS_FIG_TIMES),
                    _graph(ids.TRENDS_FIG_SOURCE),
                    _graph(ids.TRENDS_FIG_HIST),
                    _graph(ids.TRENDS_FIG_HEATMAP),
                    _graph(ids.TRENDS_FIG_DISPUTES),
                ],
                className="lq-tr-charts",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.H2(t(lang, "tr_map_title")),
                            create_map(view, lang=lang),
                            html.Div(id=ids.TRENDS_MAP_LEGEND),
                            create_replay(state, lang=lang, today=today),
                        ],
                        className="lq-tr-card lq-tr-mapcard",
                    ),
                    _graph(ids.TRENDS_FIG_GRIDS, "lq-tr-gridsfig"),
                ],
                className="lq-tr-maprow",
            ),
            html.Div(
                [html.H2(t(lang, "tr_league_title")), html.Div(id=ids.TRENDS_LEAGUE)],
                className="lq-tr-card lq-tr-league",
            ),
        ],
        className="lq-trends",
        lang=lang,
    )  # fmt: skip


# -- the printable briefing ------------------------------------------------------------------------
def create_print_layout(
    data: Mapping[str, Any] | None,
    *,
    lang: str,
    title_period: str,
    filters_text: str,
    generated: datetime,
    targets: Mapping[str, float],
    grid_names: Mapping[str, str],
    dept_names: Mapping[str, str],
    error: str | None = None,
) -> Component:
    """/trends/print: KPIs, the main charts, the league and the top overdue and rework cases,
    on white paper (print-to-PDF), with no controls."""
    if data is None:
        return html.Div([html.H1(t(lang, "tr_print_title")), html.P(error or "")],
                        className="lq-trprint")  # fmt: skip
    figs = build_figures(data, lang=lang, targets=targets, grid_names=grid_names, paper=True)
    static: Any = {"staticPlot": True, "displayModeBar": False}

    def chart(graph_id: str) -> Component:
        return html.Div(dcc.Graph(figure=figs[graph_id], config=static), className="lq-trp-chart")

    rows = []
    cmp = data["compare"]
    for name in COMPARED:
        value = cmp["current"].get(name)
        rows.append(
            html.Tr(
                [
                    html.Td(t(lang, _title(name))),
                    html.Td(fmt_value(name, value, lang)),
                    html.Td(fmt_value(name, (cmp.get("previous") or {}).get(name), lang)),
                    html.Td(fmt_change(_change(value, (cmp.get("previous") or {}).get(name), name),
                                       name, lang)),
                    html.Td(fmt_value(name, (cmp.get("last_year") or {}).get(name), lang)),
                    html.Td(fmt_change(_change(value, (cmp.get("last_year") or {}).get(name), name),
                                       name, lang)),
                ]
            )
        )  # fmt: skip
    kpi_table = html.Table(
        [
            html.Thead(html.Tr([html.Th(t(lang, k)) for k in (
                "tr_kpi", "tr_this_period", "tr_previous", "tr_mom", "tr_last_year", "tr_yoy")])),
            html.Tbody(rows),
        ],
        className="lq-tr-table lq-tr-kpitable",
    )  # fmt: skip
    return html.Div(
        [
            html.Div(
                [
                    html.H1(t(lang, "tr_print_title")),
                    html.P(title_period, className="lq-trp-period"),
                    html.P(filters_text, className="lq-trp-filters"),
                    html.P(f"{t(lang, 'tr_generated')} {generated:%Y-%m-%d %H:%M}",
                           className="lq-trp-meta"),
                    html.Button(t(lang, "tr_print_now"), id=ids.TRENDS_PRINT_BUTTON,
                                className="lq-trp-print"),
                ],
                className="lq-trp-head",
            ),
            html.H2(t(lang, "tr_kpis_title")),
            kpi_table,
            chart(ids.TRENDS_FIG_CATEGORY),
            chart(ids.TRENDS_FIG_RATES),
            chart(ids.TRENDS_FIG_TIMES),
            chart(ids.TRENDS_FIG_GRIDS),
            chart(ids.TRENDS_FIG_HEATMAP),
            chart(ids.TRENDS_FIG_DISPUTES),
            html.Section([html.H2(t(lang, "tr_league_title")),
                          department_table(data["departments"], dept_names, lang)],
                         className="lq-trp-section"),
            html.Section([html.H2(t(lang, "tr_top_overdue")),
                          cases_table(data["top_cases"]["overdue"], "overdue", grid_names, lang)],
                         className="lq-trp-section"),
            html.Section([html.H2(t(lang, "tr_top_rework")),
                          cases_table(data["top_cases"]["rework"], "rework", grid_names, lang)],
                         className="lq-trp-section"),
        ],
        className="lq-trprint",
        lang=lang,
    )  # fmt: skip
