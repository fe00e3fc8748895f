"""The wall display (/wall): the live map, a legend, the clock and the connection indicator."""

from __future__ import annotations

import json

import dash_leaflet as dl
from dash import html
from dash.development.base_component import Component

from dashboard.i18n import STATUS_LABELS, UNIT_STATUS_LABELS, t
from dashboard.services.geo import MapView
from dashboard.theme import OVERDUE_COLOR, STATUS_COLORS, UNIT_COLORS
from layouts import ids

LEGEND_ORDER = (
    "reported",
    "registered",
    "dispatched",
    "on_scene",
    "resolved",
    "closed",
    "cancelled",
)


def _fn(name: str) -> dict[str, str]:
    """A reference to a JS function in assets/ (dash-leaflet resolves it from window)."""
    return {"variable": name}


def live_config(*, lang: str, tz: str) -> str:
    """What the browser's live-map code needs, as JSON in a data attribute."""
    return json.dumps(
        {
            "namespace": "/live",
            "lang": lang,
            "tz": tz,
            "colors": STATUS_COLORS,
            "overdueColor": OVERDUE_COLOR,
            "unitColors": UNIT_COLORS,
            "labels": {
                "status": STATUS_LABELS[lang],
                "unitStatus": UNIT_STATUS_LABELS[lang],
                "live": t(lang, "live"),
                "stale": t(lang, "stale"),
                "offline": t(lang, "offline"),
                "connecting": t(lang, "connecting"),
                "secondsAgo": t(lang, "seconds_ago"),
            },
        },
        ensure_ascii=False,
    )


def create_legend(*, lang: str) -> Component:
    labels = STATUS_LABELS[lang]
    items = [
        html.Li(
            [
                html.Span(
                    className=f"lq-swatch lq-swatch-{status}",
                    style={"backgroundColor": STATUS_COLORS[status]},
                ),
                html.Span(labels[status], className="lq-legend-label"),
            ],
            className="lq-legend-item",
        )
        for status in LEGEND_ORDER
    ]
    items.append(
        html.Li(
            [
                html.Span(
                    className="lq-swatch lq-swatch-overdue", style={"borderColor": OVERDUE_COLOR}
                ),
                html.Span(t(lang, "overdue"), className="lq-legend-label"),
            ],
            className="lq-legend-item",
        )
    )
    unit_labels = UNIT_STATUS_LABELS[lang]
    units = [
        html.Li(
            [
                html.Span(
                    className=f"lq-swatch lq-swatch-unit lq-swatch-unit-{status}",
                    style={"backgroundColor": UNIT_COLORS[status]},
                ),
                html.Span(unit_labels[status], className="lq-legend-label"),
            ],
            className="lq-legend-item",
        )
        for status in ("available", "busy", "off_duty")
    ]
    return html.Div(
        [
            html.H2(t(lang, "legend_title"), className="lq-legend-title"),
            html.Ul(items),
            html.H2(t(lang, "units"), className="lq-legend-title lq-legend-units"),
            html.Ul(units),
        ],
        id=ids.LEGEND,
        className="lq-panel lq-legend",
    )


def create_map(view: MapView) -> Component:
    (south, west), (north, east) = view.bounds
    # Only bounds: dash-leaflet's map prefers center+zoom over bounds when given both.
    return dl.Map(
        id=ids.WALL_MAP,
        bounds=[[south, west], [north, east]],
        boundsOptions={"padding": [60, 60]},
        trackViewport=False,  # nothing listens to the viewport; its tracking wants a center
        zoomControl=False,
        attributionControl=False,
        zoomSnap=0.25,
        className="lq-map",
        children=[
            dl.GeoJSON(
                id=ids.BASEMAP_LAYER,
                url="/api/v1/geo/basemap",
                style=_fn("lq.style.basemap"),
                interactive=False,
            ),
            dl.GeoJSON(
                id=ids.GRIDS_LAYER,
                url="/api/v1/geo/grids",
                style=_fn("lq.style.grid"),
                interactive=False,
            ),
            dl.LayerGroup(id=ids.CASES_LAYER, eventHandlers={"add": _fn("lq.live.bindCases")}),
            dl.LayerGroup(id=ids.UNITS_LAYER, eventHandlers={"add": _fn("lq.live.bindUnits")}),
        ],
    )


def create_wall_layout(view: MapView, *, lang: str, tz: str) -> Component:
    return html.Div(
        id=ids.WALL,
        className="lq-wall",
        lang=lang,
        children=[
            html.Div(
                id=ids.LIVE_CONFIG,
                hidden=True,
                **{"data-config": live_config(lang=lang, tz=tz)},  # type: ignore[arg-type]
            ),
            create_map(view),
            html.Header(
                [
                    html.H1(t(lang, "wall_title"), className="lq-title"),
                    html.Div(
                        [
                            html.Span(t(lang, "cases_on_map"), className="lq-count-label"),
                            html.Span("–", id=ids.CASE_COUNT, className="lq-count"),
                        ],
                        className="lq-counter",
                    ),
                    html.Div("--:--:--", id=ids.CLOCK, className="lq-clock"),
                    html.Div(
                        t(lang, "connecting"),
                        id=ids.CONNECTION,
                        className="lq-connection lq-connection-connecting",
                        role="status",
                    ),
                ],
                className="lq-header",
            ),
            create_legend(lang=lang),
        ],
    )
