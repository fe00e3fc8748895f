"""The dispatch console (/dispatch): the live map beside a queue of open cases sorted by
urgency, and the open case with its timeline, the nearest units and the actions.

The map is the wall's map (layouts/wall.py ``create_map``) on the same live path
(assets/lianqin-live.js); the queue is an AG Grid fed in the browser from the same
pushed deltas (assets/lianqin-dispatch.js). Only the open case is read from the server,
when it is opened or changes. Untrusted text (titles, descriptions, notes) is only
ever a component's text here, never HTML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash_ag_grid as dag
from dash import dcc, html
from dash.development.base_component import Component

from dashboard.contract.changes import CANCEL_REASON_MAX, NOTE_MAX
from dashboard.i18n import CATEGORY_LABELS, SOURCE_LABELS, STATUS_LABELS, UNIT_KIND_LABELS, t
from dashboard.services.geo import MapView
from dashboard.theme import OVERDUE_COLOR, STATUS_COLORS
from dashboard.tiles import TileSource
from dashboard.times import in_zone
from dashboard.vocabulary import OPEN_STATUSES, STATUSES, TERMINAL
from layouts import ids
from layouts.wall import create_legend, create_map, live_config

# The console's map: the wall's layers minus the ones only a big screen needs.
CONSOLE_LAYERS = frozenset({"tiles", "basemap", "grids", "zones", "cases", "units"})
PRIORITIES = (1, 2, 3, 4)


def _attrs(values: Mapping[str, str]) -> dict[str, Any]:
    """HTML data-/aria- attributes for a Dash component (passed as keyword arguments)."""
    return dict(values)


def _options(items: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    return [{"value": i["value"], "label": i["label"]} for i in items]


def _grid_theme() -> dict[str, str]:
    """AG Grid's Quartz theme on the console's dark palette (fonts from the page)."""
    return {
        "function": (
            "themeQuartz.withParams({backgroundColor: '#0b1426', foregroundColor: '#e8eef9', "
            "headerBackgroundColor: '#12203a', headerTextColor: '#9fb0cc', "
            "borderColor: 'rgba(90, 140, 220, 0.25)', accentColor: '#56B4E9', "
            "rowHoverColor: 'rgba(86, 180, 233, 0.12)', "
            "selectedRowBackgroundColor: 'rgba(86, 180, 233, 0.18)', "
            "oddRowBackgroundColor: 'rgba(255, 255, 255, 0.02)', fontSize: 13, "
            "headerFontSize: 12, spacing: 5, wrapperBorderRadius: 6, "
            "fontFamily: 'inherit'})"
        )
    }


def create_queue(*, lang: str) -> Component:
    """The queue of open cases; rows come from the browser's live state, never from here."""
    status_rules = {f"lq-st-{s}": f"params.data.status === '{s}'" for s in STATUSES}
    columns: list[dict[str, Any]] = [
        {"field": "id", "headerName": t(lang, "col_id"), "width": 176, "minWidth": 120},
        {
            "field": "statusLabel",
            "headerName": t(lang, "col_status"),
            "width": 72,
            "cellClassRules": status_rules,
        },
        {"field": "priority", "headerName": t(lang, "col_priority"), "width": 44},
        {
            "field": "remaining",
            "headerName": t(lang, "col_remaining"),
            "width": 96,
            "sortable": False,  # the queue's own order (urgency) already sorts by it
            "cellClassRules": {"lq-cell-overdue": "params.data.overdue"},
        },
        {"field": "categoryLabel", "headerName": t(lang, "col_category"), "width": 84},
        {
            "field": "title",
            "headerName": t(lang, "col_title"),
            "flex": 1,
            "minWidth": 120,
            "tooltipField": "title",
        },
        {"field": "unit", "headerName": t(lang, "col_unit"), "width": 80, "hide": True},
        {"field": "grid", "headerName": t(lang, "col_grid"), "width": 84, "hide": True},
        # Overdue first, then priority, then time to the deadline (assets/lianqin-dispatch.js).
        {"field": "urgency", "hide": True, "sort": "asc", "sortIndex": 0},
    ]
    return dag.AgGrid(
        id=ids.QUEUE,
        columnDefs=columns,
        # No rowData prop: the rows are the browser's (transactions from the live state).
        # With the prop set, dash-ag-grid would copy every row back into a Dash prop
        # (virtualRowData) after each transaction — a React render per delta.
        getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True, "suppressMovable": True},
        rowClassRules={"lq-row-overdue": "params.data.overdue", "lq-row-open": "params.data.open"},
        dashGridOptions={
            "theme": _grid_theme(),
            "rowSelection": {
                "mode": "multiRow",
                "checkboxes": True,
                "headerCheckbox": True,
                "enableClickSelection": False,
            },
            "selectionColumnDef": {"width": 36, "pinned": "left"},
            "rowHeight": 30,
            "headerHeight": 32,
            "animateRows": False,
            "suppressDragLeaveHidesColumns": True,
            "tooltipShowDelay": 400,
            "localeText": {"noRowsToShow": t(lang, "no_cases")},
        },
        className="lq-queue-grid",
        style={"height": "100%", "width": "100%"},
    )


def _dropdown(component_id: str, placeholder: str, options: list[dict[str, str]]) -> Component:
    return dcc.Dropdown(
        id=component_id,
        options=options,
        multi=True,
        placeholder=placeholder,
        className="lq-filter",
        clearable=True,
        searchable=True,
    )


def create_filters(*, lang: str, options: Mapping[str, Any]) -> Component:
    statuses = [{"value": s, "label": STATUS_LABELS[lang][s]} for s in STATUSES]
    categories = [{"value": c, "label": label} for c, label in CATEGORY_LABELS[lang].items()]
    return html.Div(
        [
            dcc.Input(
                id=ids.CASE_SEARCH,
                type="search",
                placeholder=t(lang, "search_placeholder"),
                debounce=True,
                className="lq-search",
                autoComplete="off",
            ),
            _dropdown(ids.FILTER_STATUS, t(lang, "filter_status"), statuses),
            _dropdown(ids.FILTER_CATEGORY, t(lang, "filter_category"), categories),
            _dropdown(ids.FILTER_ZONE, t(lang, "filter_zone"), _options(options["zones"])),
            _dropdown(ids.FILTER_GRID, t(lang, "filter_grid"), _options(options["grids"])),
            _dropdown(
                ids.FILTER_DEPARTMENT,
                t(lang, "filter_department"),
                _options(options["departments"]),
            ),
        ],
        className="lq-filters",
    )


def _single(component_id: str, placeholder: str, options: list[dict[str, str]]) -> Component:
    return dcc.Dropdown(
        id=component_id,
        options=options,
        placeholder=placeholder,
        className="lq-select",
        clearable=True,
        searchable=True,
    )


def create_bulk_bar(*, lang: str, options: Mapping[str, Any], can_dispatch: bool) -> Component:
    return html.Div(
        [
            html.Span(
                [t(lang, "bulk_selected"), " ", html.B("0", id=ids.BULK_COUNT)],
                className="lq-bulk-count",
            ),
            _single(ids.BULK_UNIT, t(lang, "assign_unit"), _options(options["units"])),
            _single(
                ids.BULK_DEPARTMENT, t(lang, "assign_department"), _options(options["departments"])
            ),
            dcc.Input(
                id=ids.BULK_NOTE,
                placeholder=t(lang, "note_placeholder"),
                className="lq-input",
                maxLength=NOTE_MAX,
            ),
            html.Button(
                t(lang, "bulk_button"),
                id=ids.BULK_BUTTON,
                className="lq-btn lq-btn-go",
                disabled=True,
            ),
        ],
        id=ids.BULK_BAR,
        className="lq-bulk",
        title=t(lang, "bulk_hint"),
        hidden=not can_dispatch,
    )


def _section(title: str, body: list[Component], cls: str, *, shown: bool) -> Component:
    return html.Section(
        [html.H3(title, className="lq-act-title"), *body], className=cls, hidden=not shown
    )


def _inline(field: Component, button_id: str, label: str, cls: str = "lq-btn") -> Component:
    return html.Div([field, html.Button(label, id=button_id, className=cls)], className="lq-inline")


def create_actions(*, lang: str, options: Mapping[str, Any], perms: frozenset[str]) -> Component:
    """The action forms. They stay mounted while cases are opened and refreshed, so what
    a lead is typing survives a live refresh. Every form is mounted (the callbacks name
    them all) but only those the role may use are shown; the server checks every action
    again whatever the page shows."""
    # A lead assigns any case; an operator only a new, unassigned one: the section is then
    # shown only while such a case is open (.lq-act-first, assets/dispatch.css).
    can_reassign = "reassign" in perms
    first_only = not can_reassign and "dispatch_new" in perms
    priority_options = [{"value": p, "label": t(lang, f"priority_{p}")} for p in PRIORITIES]
    parts: list[Component] = [
        _section(
            t(lang, "assign_title"),
            [
                html.Div(
                    [
                        _single(
                            ids.ASSIGN_UNIT, t(lang, "assign_unit"), _options(options["units"])
                        ),
                        _single(
                            ids.ASSIGN_DEPARTMENT,
                            t(lang, "assign_department"),
                            _options(options["departments"]),
                        ),
                    ],
                    className="lq-row2",
                ),
                dcc.Textarea(
                    id=ids.ASSIGN_NOTE,
                    placeholder=t(lang, "note_placeholder"),
                    className="lq-textarea",
                    maxLength=NOTE_MAX,
                ),
                html.Button(
                    t(lang, "assign_button"), id=ids.ASSIGN_BUTTON, className="lq-btn lq-btn-go"
                ),
            ],
            "lq-act lq-act-assign" + (" lq-act-first" if first_only else ""),
            shown=can_reassign or first_only,
        ),
        _section(
            t(lang, "priority_title"),
            [
                _inline(
                    dcc.Dropdown(
                        id=ids.PRIORITY_SELECT,
                        options=priority_options,
                        clearable=False,
                        searchable=False,
                        className="lq-select",
                    ),
                    ids.PRIORITY_BUTTON,
                    t(lang, "priority_button"),
                )
            ],
            "lq-act lq-act-priority",
            shown="priority" in perms,
        ),
        _section(
            t(lang, "note_title"),
            [
                _inline(
                    dcc.Input(
                        id=ids.NOTE_TEXT,
                        placeholder=t(lang, "note_text"),
                        className="lq-input",
                        maxLength=NOTE_MAX,
                    ),
                    ids.NOTE_BUTTON,
                    t(lang, "note_button"),
                )
            ],
            "lq-act lq-act-note",
            shown="add_note" in perms,
        ),
        _section(
            t(lang, "cancel_title"),
            [
                _inline(
                    dcc.Input(
                        id=ids.CANCEL_REASON,
                        placeholder=t(lang, "cancel_reason"),
                        className="lq-input",
                        maxLength=CANCEL_REASON_MAX,
                    ),
                    ids.CANCEL_BUTTON,
                    t(lang, "cancel_button"),
                    "lq-btn lq-btn-danger",
                )
            ],
            "lq-act lq-act-cancel",
            shown="cancel" in perms,
        ),
        _section(
            t(lang, "reopen_title"),
            [
                _inline(
                    dcc.Input(
                        id=ids.REOPEN_NOTE,
                        placeholder=t(lang, "reopen_note"),
                        className="lq-input",
                        maxLength=NOTE_MAX,
                    ),
                    ids.REOPEN_BUTTON,
                    t(lang, "reopen_button"),
                    "lq-btn lq-btn-warn",
                )
            ],
            "lq-act lq-act-reopen",
            shown="reopen" in perms,
        ),
    ]
    if not can_reassign:
        hint = "operator_hint" if first_only else "readonly_hint"
        parts.append(html.P(t(lang, hint), className="lq-readonly"))
    return html.Div(parts, id=ids.ACTIONS, className="lq-actions lq-hidden")


def create_dispatch_layout(
    view: MapView,
    *,
    lang: str,
    tz: str,
    tiles: TileSource | None,
    user: Mapping[str, str],
    perms: frozenset[str],
    options: Mapping[str, Any],
    csrf_token: str,
) -> Component:
    crs = tiles.crs if tiles else "wgs84"
    config = live_config(lang=lang, tz=tz, display_crs=crs)
    config.update(
        {
            "page": "dispatch",
            "interactive": True,  # dots are clickable here, not on the wall
            "gridZone": options["grid_zone"],
            "queueStatuses": list(OPEN_STATUSES),
            "text": {k: t(lang, k) for k in ("remaining_left", "overdue_by")},
        }
    )
    context = {
        "lang": lang,
        "tz": tz,
        "departments": {d["value"]: d["label"] for d in options["departments"]},
    }
    return html.Div(
        id=ids.DISPATCH,
        className="lq-dispatch",
        lang=lang,
        children=[
            html.Div(
                id=ids.LIVE_CONFIG,
                hidden=True,
                **_attrs({"data-config": json.dumps(config, ensure_ascii=False)}),
            ),
            dcc.Store(id=ids.DISPATCH_LANG, data=context),
            dcc.Store(id=ids.CASE_OPEN),
            dcc.Store(id=ids.CASE_STATE),
            dcc.Store(id=ids.NEAREST),
            dcc.Store(id=ids.BULK_REQUEST),
            dcc.Store(id=ids.FILTERS),
            dcc.Store(id=ids.DISPATCH_SINK),
            html.Header(
                [
                    html.H1(t(lang, "dispatch_title"), className="lq-dtitle"),
                    html.Div("--:--:--", id=ids.CLOCK, className="lq-dclock"),
                    html.Div(
                        t(lang, "connecting"),
                        id=ids.CONNECTION,
                        className="lq-connection lq-connection-connecting",
                        role="status",
                    ),
                    html.Div(
                        [
                            html.Span(t(lang, "signed_in_as"), className="lq-user-label"),
                            html.B(user["name"], className="lq-user-name"),
                            html.Span(t(lang, f"role_{user['role']}"), className="lq-user-role"),
                        ],
                        id=ids.USER_BADGE,
                        className="lq-user",
                    ),
                    html.Form(
                        [
                            dcc.Input(type="hidden", name="csrf_token", value=csrf_token),
                            html.Button(t(lang, "logout"), type="submit", className="lq-btn"),
                        ],
                        id=ids.LOGOUT,
                        method="POST",
                        action="/logout",
                        className="lq-logout",
                    ),
                ],
                className="lq-dheader",
            ),
            html.Section(
                [
                    create_filters(lang=lang, options=options),
                    html.Div(
                        [
                            html.H2(t(lang, "queue_title"), className="lq-dh2"),
                            html.Span("–", id=ids.QUEUE_COUNT, className="lq-queue-count"),
                        ],
                        className="lq-queue-head",
                    ),
                    html.Div(create_queue(lang=lang), className="lq-queue-box"),
                    create_bulk_bar(lang=lang, options=options, can_dispatch="bulk" in perms),
                ],
                className="lq-dqueue",
            ),
            html.Div(
                [
                    create_map(view, lang=lang, tiles=tiles, layers=CONSOLE_LAYERS),
                    create_legend(lang=lang),
                ],
                className="lq-map-cell lq-dmap",
            ),
            html.Aside(
                [
                    html.Div(
                        html.P(t(lang, "case_none"), className="lq-empty"),
                        id=ids.CASE_DETAIL,
                        className="lq-case-detail",
                    ),
                    html.Div(id=ids.NEAREST_LIST, className="lq-nearest"),
                    html.Div(
                        id=ids.FEEDBACK,
                        className="lq-feedback",
                        role="status",
                        **_attrs({"aria-live": "polite"}),
                    ),
                    create_actions(lang=lang, options=options, perms=perms),
                    html.Div(id=ids.CASE_TIMELINE, className="lq-timeline"),
                ],
                id=ids.CASE_PANEL,
                className="lq-dcase",
            ),
            html.Footer(t(lang, "keys_hint"), className="lq-dfooter"),
        ],
    )


# -- the open case (rendered by callbacks/dispatch.py from the service's data) ---------------
def fmt_distance(metres: float, lang: str) -> str:
    if metres < 1000:
        return f"{round(metres)}{' ' if lang == 'en' else ''}{t(lang, 'unit_m')}"
    return f"{metres / 1000:.1f}{' ' if lang == 'en' else ''}{t(lang, 'unit_km')}"


def fmt_duration(seconds: float, lang: str) -> str:
    sep = " " if lang == "en" else ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}{sep}{t(lang, 'unit_s')}"
    if seconds < 3600:
        return f"{round(seconds / 60)}{sep}{t(lang, 'unit_min')}"
    return f"{seconds / 3600:.1f}{sep}{t(lang, 'unit_h')}"


def _local(value: str | None, tz: str, *, seconds: bool = True) -> str:
    if not value:
        return "–"
    moment = in_zone(datetime.fromisoformat(value), ZoneInfo(tz))  # never overflows
    return moment.strftime("%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def _field(label: str, value: Any, cls: str = "") -> Component:
    return html.Div(
        [html.Dt(label), html.Dd("–" if value in (None, "") else str(value))],
        className=f"lq-kv {cls}".strip(),
    )


def _status_chip(status: str | None, lang: str) -> Component:
    if not status:
        return html.Span()
    return html.Span(
        STATUS_LABELS[lang].get(status, status),
        className=f"lq-chip lq-st-{status}",
        style={"backgroundColor": STATUS_COLORS.get(status, "#999")},
    )


def _ms(value: str | None) -> str:
    if not value:
        return ""
    return str(int(datetime.fromisoformat(value).timestamp() * 1000))


def create_case_detail(
    case: Mapping[str, Any], *, lang: str, tz: str, departments: Mapping[str, str]
) -> Component:
    """The open case's fields, its untrusted text as text, and the deadline countdown."""
    dept = case.get("department")
    deadline = case.get("deadline")
    terminal = case["status"] in TERMINAL
    return html.Div(
        [
            html.Div(
                [
                    html.H2(case["id"], className="lq-case-id"),
                    _status_chip(case["status"], lang),
                    html.Span(
                        t(lang, f"priority_{case['priority']}"),
                        className=f"lq-prio lq-prio-{case['priority']}",
                    ),
                    html.Span(
                        "" if terminal or not deadline else "…",
                        className="lq-countdown" + (" lq-overdue-text" if case["overdue"] else ""),
                        **_attrs(
                            {
                                "data-deadline": "" if terminal else _ms(deadline),
                                "data-overdue-color": OVERDUE_COLOR,
                            }
                        ),
                    ),
                ],
                className="lq-case-head",
                **_attrs(
                    {
                        "data-case": case["id"],
                        "data-version": str(case["version"]),
                        "data-status": case["status"],
                    }
                ),
            ),
            html.P(case.get("title") or "", className="lq-case-title"),
            html.P(case.get("description") or "", className="lq-case-desc"),
            html.Dl(
                [
                    _field(
                        t(lang, "field_category"),
                        CATEGORY_LABELS[lang].get(case["category"], case["category"]),
                    ),
                    _field(
                        t(lang, "field_source"),
                        SOURCE_LABELS[lang].get(case["source"], case["source"]),
                    ),
                    _field(t(lang, "field_grid"), case.get("grid")),
                    _field(t(lang, "field_unit"), case.get("unit")),
                    _field(t(lang, "field_department"), departments.get(dept or "", dept)),
                    _field(t(lang, "field_reported"), _local(case["stages"].get("reported"), tz)),
                    _field(
                        t(lang, "field_deadline"),
                        _local(deadline, tz) if deadline else t(lang, "deadline_none"),
                    ),
                    _field(t(lang, "field_version"), case["version"]),
                    _field(t(lang, "field_address"), case.get("address"), "lq-kv-wide"),
                ],
                className="lq-kvs",
            ),
        ],
    )


def create_nearest(units: list[Mapping[str, Any]], *, lang: str, can_pick: bool) -> Component:
    """The suggested units, best first: distance, ETA, and a flag when one is busy."""
    rows: list[Component] = []
    for rank, unit in enumerate(units, start=1):
        kind = UNIT_KIND_LABELS[lang].get(unit["kind"], unit["kind"])
        flag = (
            html.Span(
                f"{t(lang, 'nearest_busy')} {' '.join(unit['cases'])}".strip(),
                className="lq-flag",
            )
            if unit["busy"]
            else None
        )
        cells: list[Component | None] = [
            html.Span(str(rank), className="lq-rank"),
            html.Span(
                [html.B(unit["name"]), html.Span(f" {unit['id']} · {kind}", className="lq-muted")],
                className="lq-unit-name",
            ),
            html.Span(fmt_distance(unit["distance_m"], lang), className="lq-dist"),
            html.Span(
                f"{t(lang, 'eta_about')}{fmt_duration(unit['eta_s'], lang)}", className="lq-eta"
            ),
            flag,
        ]
        if can_pick:
            cells.append(
                html.Button(
                    t(lang, "nearest_pick"),
                    id={"type": ids.NEAREST_PICK, "unit": unit["id"]},
                    className="lq-btn lq-btn-small",
                )
            )
        rows.append(
            html.Li(
                [c for c in cells if c is not None],
                className="lq-near" + (" lq-near-busy" if unit["busy"] else ""),
                **_attrs({"data-unit": unit["id"]}),
            )
        )
    body: Component = (
        html.Ol(rows, className="lq-near-list")
        if rows
        else html.P(t(lang, "nearest_none"), className="lq-empty")
    )
    return html.Div([html.H3(t(lang, "nearest_title"), className="lq-act-title"), body])


def _actor(event: Mapping[str, Any], lang: str) -> str:
    actor = event.get("actor")
    if actor:
        return str(actor).removeprefix("user:")
    source = (event.get("fields") or {}).get("source")
    if source:
        return SOURCE_LABELS[lang].get(source, source)
    return t(lang, "feed")


def create_timeline(
    timeline: list[Mapping[str, Any]], *, lang: str, tz: str, departments: Mapping[str, str]
) -> Component:
    """Every message and change, newest first: when, what, who, and what it carried."""
    items: list[Component] = []
    for event in reversed(timeline):
        fields = event.get("fields") or {}
        effect = event.get("effect") or ""
        facts: list[str] = []
        if fields.get("unit"):
            facts.append(f"{t(lang, 'field_unit')} {fields['unit']}")
        if fields.get("department"):
            dept = fields["department"]
            facts.append(f"{t(lang, 'field_department')} {departments.get(dept, dept)}")
        if event.get("kind") == "change" and fields.get("priority"):
            facts.append(f"{t(lang, 'field_priority')} {fields['priority']}")
        if fields.get("flags"):
            facts.append(t(lang, "warn_unit_busy"))
        texts = [fields[k] for k in ("reason", "note") if fields.get(k)]
        items.append(
            html.Li(
                [
                    html.Div(
                        [
                            html.Time(_local(event.get("ts"), tz), className="lq-tl-time"),
                            _status_chip(event.get("status"), lang),
                            html.Span(
                                t(lang, f"eff_{effect}") if effect else "",
                                className=f"lq-tl-effect lq-eff-{effect}",
                            ),
                            html.Span(_actor(event, lang), className="lq-tl-actor"),
                        ],
                        className="lq-tl-head",
                    ),
                    html.Div(" · ".join(facts), className="lq-tl-facts") if facts else None,
                    *[html.Div(text, className="lq-tl-note") for text in texts],
                ],
                className="lq-tl-item"
                + (" lq-tl-change" if event.get("kind") == "change" else "")
                + ("" if event.get("applied", True) else " lq-tl-late"),
            )
        )
    return html.Div(
        [
            html.H3(t(lang, "timeline_title"), className="lq-act-title"),
            html.Ol(items, className="lq-tl"),
        ]
    )
