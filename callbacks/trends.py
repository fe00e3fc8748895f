"""The briefing view's callbacks: the URL holds the state, one service call answers it.

The controls write the page state into the URL's query (so a link reproduces the view);
the URL's query (callbacks/trends_state.py) is what the charts are computed from
(dashboard/services/trends/).
The replay is animated in the browser (assets/lianqin-trends.js); the server only reads
the stored history of the chosen shift. Dash callback requests pass the app's login
guard but not its page check, so every callback here checks the role itself.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from callbacks import trends_state
from callbacks.inputs import checked
from callbacks.trends_state import PageState
from dashboard.contract.entries import SOURCES
from dashboard.i18n import CATEGORY_LABELS, SOURCE_LABELS, t
from dashboard.services import trends
from dashboard.services.geo import map_view
from dashboard.services.kpis import options_for
from dashboard.services.trends import Filters, TrendError
from dashboard.theme import STATUS_COLORS
from dashboard.vocabulary import pick_language, status_config
from dashboard.web.auth import current_principal
from dashboard.web.context import current_runtime
from layouts import ids
from layouts.trends import (
    CHARTS,
    build_figures,
    choropleth_legend,
    create_print_layout,
    create_trends_layout,
    department_table,
    grid_choropleth,
    kpi_cards,
)


def _allowed(permission: str) -> bool:
    principal = current_principal()
    return principal is not None and principal.can(permission)


def _state(search: str | None) -> PageState:
    return trends_state.parse_state(parse_qs((search or "").lstrip("?")))


def _lang(search: str | None, default: str) -> str:
    return pick_language(parse_qs((search or "").lstrip("?")).get("lang", [default])[0], default)


def _names(options: dict[str, Any], lang: str) -> tuple[dict[str, str], dict[str, str]]:
    grids = {g["value"]: g["name"] for g in options["grids"]}
    key = "name" if lang == "zh-CN" else "name_en"
    depts = {d["value"]: d[key] or d["name"] for d in options["departments"]}
    return grids, depts


def _page_data(state: PageState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The service's answer for a page state, and the filter options (names)."""
    rt = current_runtime()
    req = trends_state.request_of(state, now=rt.now(), zone=rt.settings.zone)
    with rt.db.read() as session:
        data = trends.trends_page(
            session, req=req, options=options_for(rt.settings, rt.policy), now=rt.now()
        )
        options = trends.filter_options(session)
    return data, options


def period_text(data: dict[str, Any], lang: str) -> str:
    """``2026-11-16 – 2026-11-22 · 日``: the period's local first and last day."""
    zone = current_runtime().settings.zone
    start = datetime.fromisoformat(data["period"][0]).astimezone(zone).date()
    last = (
        (datetime.fromisoformat(data["period"][1]) - timedelta(microseconds=1))
        .astimezone(zone)
        .date()
    )
    span = f"{start:%Y-%m-%d}" if last == start else f"{start:%Y-%m-%d} – {last:%Y-%m-%d}"
    return f"{span} · {t(lang, 'tr_g_' + data['granularity'])}"


def filters_text(filters: Filters, lang: str) -> str:
    parts = []
    if filters.categories:
        labels = CATEGORY_LABELS.get(lang, {})
        parts.append(
            f"{t(lang, 'tr_category')}: " + ", ".join(labels.get(c, c) for c in filters.categories)
        )
    if filters.sources:
        labels = SOURCE_LABELS.get(lang, {})
        parts.append(
            f"{t(lang, 'tr_source')}: " + ", ".join(labels.get(c, c) for c in filters.sources)
        )
    for key, value in (("tr_grid_kind", filters.grid_kind), ("tr_zone", filters.zone),
                       ("tr_department", filters.department)):  # fmt: skip
        if value:
            parts.append(f"{t(lang, key)}: {value}")
    if filters.grids:
        parts.append(f"{t(lang, 'tr_grid')}: " + ", ".join(filters.grids))
    return " · ".join(parts) if parts else t(lang, "tr_no_filters")


# -- pages (the router calls these) ---------------------------------------------------------------
def render_page(*, lang: str, search: str | None) -> Component:
    """The /trends page for the signed-in principal."""
    if not _allowed("view_trends"):
        return html.Div(t(lang, "err_forbidden"), className="lq-not-found")
    rt = current_runtime()
    principal = current_principal()
    assert principal is not None
    with rt.db.read() as session:
        view = map_view(session)
        options = trends.filter_options(session)
    return create_trends_layout(
        _state(search),
        lang=lang,
        view=view,
        options=options,
        categories=rt.settings.categories,
        sources=SOURCES,
        user={"name": principal.name, "role": principal.role},
        today=rt.now().astimezone(rt.settings.zone).date(),
        search=search or "",
    )


def render_print(*, lang: str, search: str | None) -> Component:
    """/trends/print: the briefing for the same URL state, ready for print-to-PDF."""
    if not _allowed("view_trends"):
        return html.Div(t(lang, "err_forbidden"), className="lq-not-found")
    rt = current_runtime()
    state = _state(search)
    generated = rt.now().astimezone(rt.settings.zone)
    try:
        data, options = _page_data(state)
    except TrendError as exc:
        return create_print_layout(
            None, lang=lang, title_period="", filters_text="", generated=generated,
            targets={}, grid_names={}, dept_names={}, error=str(exc),
        )  # fmt: skip
    grid_names, dept_names = _names(options, lang)
    return create_print_layout(
        data, lang=lang, title_period=period_text(data, lang),
        filters_text=filters_text(state.filters, lang), generated=generated,
        targets=rt.settings.trend_targets, grid_names=grid_names, dept_names=dept_names,
    )  # fmt: skip


# -- callbacks ------------------------------------------------------------------------------------
def _day(value: str | None) -> date | None:
    return trends_state.parse_day(value)


def _values(value: list[str] | str | None) -> tuple[str, ...]:
    """A multi-select's value (a list, or one string when a single value was set)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def register(app: Dash) -> None:
    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Output(ids.TRENDS_PERIOD, "value"),
        Input(ids.TRENDS_PERIOD, "value"),
        Input(ids.TRENDS_RANGE, "start_date"),
        Input(ids.TRENDS_RANGE, "end_date"),
        Input(ids.TRENDS_GRANULARITY, "value"),
        Input(ids.TRENDS_CATEGORY, "value"),
        Input(ids.TRENDS_SOURCE, "value"),
        Input(ids.TRENDS_GRID_KIND, "value"),
        Input(ids.TRENDS_GRID, "value"),
        Input(ids.TRENDS_ZONE, "value"),
        Input(ids.TRENDS_DEPARTMENT, "value"),
        Input(ids.TRENDS_REPLAY_DAY, "date"),
        Input(ids.TRENDS_REPLAY_SHIFT, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @checked
    def controls_to_url(
        period: str | None, start: str | None, end: str | None, granularity: str | None,
        categories: list[str] | str | None, sources: list[str] | str | None,
        grid_kind: str | None, grids: list[str] | str | None, zone: str | None,
        department: str | None, replay_day: str | None, shift: str | None, search: str | None,
    ) -> tuple[str, str]:  # fmt: skip
        """Write the controls into the URL's query (the page state)."""
        if ctx.triggered_id == ids.TRENDS_RANGE and start and end:
            period = "custom"  # picking dates means a custom range
        state = PageState(
            period=period if period in trends.PERIOD_KINDS else "this_week",
            start=_day(start),
            end=_day(end),
            granularity=granularity if granularity in trends.GRANULARITIES else None,
            filters=Filters(
                categories=_values(categories), sources=_values(sources),
                grid_kind=grid_kind or None, grids=_values(grids), zone=zone or None,
                department=department or None,
            ),
            replay_day=_day(replay_day),
            replay_shift=shift or "all",
        )  # fmt: skip
        query = trends_state.state_query(state)
        lang = parse_qs((search or "").lstrip("?")).get("lang")
        if lang:
            query["lang"] = lang[0]
        new = "?" + urlencode(query)
        if new == search:
            raise PreventUpdate
        return new, state.period

    figure_outputs = [Output(graph_id, "figure") for graph_id in CHARTS]

    @app.callback(
        *figure_outputs,
        Output(ids.TRENDS_KPIS, "children"),
        Output(ids.TRENDS_LEAGUE, "children"),
        Output(ids.TRENDS_CHOROPLETH_DATA, "data"),
        Output(ids.TRENDS_MAP_LEGEND, "children"),
        Output(ids.TRENDS_PERIOD_LABEL, "children"),
        Output(ids.TRENDS_ERROR, "children"),
        Output(ids.TRENDS_PRINT_LINK, "href"),
        Input(ids.URL, "search"),
        Input(ids.TRENDS_INIT, "data"),
        State(ids.URL, "pathname"),
    )
    @checked
    def refresh(search: str | None, _init: str | None, pathname: str | None) -> tuple[Any, ...]:
        """Compute the page's data for the URL's state and draw it."""
        if pathname != "/trends" or not _allowed("view_trends"):
            raise PreventUpdate
        rt = current_runtime()
        lang = _lang(search, rt.settings.language)
        try:
            data, options = _page_data(_state(search))
        except TrendError as exc:
            return (*[no_update] * (len(CHARTS) + 5), str(exc), no_update)
        grid_names, dept_names = _names(options, lang)
        figures = build_figures(
            data, lang=lang, targets=rt.settings.trend_targets, grid_names=grid_names
        )
        return (
            *[figures[graph_id] for graph_id in CHARTS],
            kpi_cards(data["compare"], lang),
            department_table(data["departments"], dept_names, lang),
            grid_choropleth(data["by_grid"]),
            choropleth_legend(data["by_grid"], lang),
            period_text(data, lang),
            "",
            "/trends/print" + (search or ""),
        )

    @app.callback(
        Output(ids.TRENDS_REPLAY_DATA, "data"),
        Input(ids.URL, "search"),
        Input(ids.TRENDS_INIT, "data"),
        State(ids.URL, "pathname"),
    )
    @checked
    def load_replay(search: str | None, _init: str | None, pathname: str | None) -> Any:
        """The chosen shift's stored history, for the replay on the map."""
        if pathname != "/trends" or not _allowed("view_trends"):
            raise PreventUpdate
        state = _state(search)
        if state.replay_day is None:
            return None
        rt = current_runtime()
        window = trends.shift_window(state.replay_day, state.replay_shift, rt.settings.zone)
        with rt.db.read() as session:
            data = trends.replay(session, window=window, filters=state.filters)
        lang = _lang(search, rt.settings.language)
        data["tz"] = rt.settings.tz
        data["colors"] = STATUS_COLORS
        data["statuses"] = status_config()
        data["labels"] = {"cases": t(lang, "tr_replay_cases"), "units": t(lang, "tr_replay_units")}
        return data

    @app.callback(
        Output(ids.TRENDS_DOWNLOAD, "data"),
        Output(ids.TRENDS_ERROR, "children", allow_duplicate=True),
        Input(ids.TRENDS_CSV_SERIES, "n_clicks"),
        Input(ids.TRENDS_CSV_DEPARTMENTS, "n_clicks"),
        Input(ids.TRENDS_EXCEL, "n_clicks"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @checked
    def export(_a: int | None, _b: int | None, _c: int | None, search: str | None) -> Any:
        """The page's tables as CSV or an Excel workbook (or why not, on the page)."""
        if not _allowed("export"):
            raise PreventUpdate
        try:
            data, _ = _page_data(_state(search))
        except TrendError as exc:  # e.g. ten years by hour: the page says which to choose
            return no_update, str(exc)
        tables = trends.export_tables(data)
        stamp = f"{data['period'][0][:10]}_{data['granularity']}"
        if ctx.triggered_id == ids.TRENDS_EXCEL:
            return dcc.send_bytes(trends.to_xlsx(tables), f"lianqin-trends-{stamp}.xlsx"), ""
        name = "series" if ctx.triggered_id == ids.TRENDS_CSV_SERIES else "departments"
        return dcc.send_string(trends.to_csv(tables[name]), f"lianqin-{name}-{stamp}.csv"), ""

    # The replay runs in the browser: assets/lianqin-trends.js.
    app.clientside_callback(
        ClientsideFunction(namespace="lqTrends", function_name="load"),
        Output(ids.TRENDS_REPLAY_SINK, "data"),
        Input(ids.TRENDS_REPLAY_DATA, "data"),
    )
    app.clientside_callback(
        ClientsideFunction(namespace="lqTrends", function_name="choropleth"),
        Output(ids.TRENDS_CHOROPLETH, "className"),
        Input(ids.TRENDS_CHOROPLETH_DATA, "data"),
    )
    app.clientside_callback(
        ClientsideFunction(namespace="lqTrends", function_name="toggle"),
        Output(ids.TRENDS_REPLAY_PLAY, "children"),
        Input(ids.TRENDS_REPLAY_PLAY, "n_clicks"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction(namespace="lqTrends", function_name="speed"),
        Output(ids.TRENDS_REPLAY_SPEED, "className"),
        Input(ids.TRENDS_REPLAY_SPEED, "value"),
    )
    app.clientside_callback(
        ClientsideFunction(namespace="lqTrends", function_name="seek"),
        Output(ids.TRENDS_REPLAY_CLOCK, "className"),
        Input(ids.TRENDS_REPLAY_SLIDER, "value"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction(namespace="lqTrends", function_name="print"),
        Output(ids.TRENDS_PRINT_BUTTON, "className"),
        Input(ids.TRENDS_PRINT_BUTTON, "n_clicks"),
        prevent_initial_call=True,
    )
