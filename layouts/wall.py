"""The wall display (/wall): the live map with its layers, KPI tiles, a ticker of the newest
cases, the overdue list, cases by category, hourly volume, unit status, clock and connection.

Everything is laid out on a CSS grid sized in viewport units (assets/wall.css), so the same
page fills a 1920×1080 and a 3840×2160 screen without scrollbars. The panels are empty
shells here: assets/lianqin-live.js fills them from the live state (deltas for the ticker
and the overdue list, the workers' pushed KPI summary for the figures), as text only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import dash_leaflet as dl
from dash import html
from dash.development.base_component import Component

from dashboard.i18n import (
    CATEGORY_LABELS,
    SOURCE_LABELS,
    STATUS_LABELS,
    UNIT_KIND_LABELS,
    UNIT_STATUS_LABELS,
    t,
)
from dashboard.services.geo import MapView
from dashboard.theme import (
    DENSITY_COLORS,
    FACILITY_COLORS,
    OVERDUE_COLOR,
    STATUS_COLORS,
    TREND_COLORS,
    UNIT_COLORS,
)
from dashboard.tiles import TileSource
from dashboard.vocabulary import KPIS, STATUSES, UNIT_STATUSES, kpi_config, status_config
from layouts import ids

# The tiles, in order: a KPI (dashboard/vocabulary.py says how it reads) and the figure
# shown under it (the P90 under a median).
KPI_TILES: tuple[tuple[str, str | None], ...] = (
    ("reported", None),
    ("open", None),
    ("overdue", None),
    ("disposal_rate", None),
    ("closure_rate", None),
    ("on_time_rate", None),
    ("dispatch_p50_s", "dispatch_p90_s"),
    ("arrival_p50_s", "arrival_p90_s"),
    ("rework_rate", None),
    ("dispute_resolution_rate", None),
    ("units_online", None),
    ("coverage_5min", None),
)
# Map layers: name → (label key, on by default). `?layers=a,b,c` picks others for a screen.
LAYERS: dict[str, tuple[str, bool]] = {
    "tiles": ("layer_tiles", True),
    "basemap": ("layer_basemap", True),
    "grids": ("layer_grids", True),
    "micro": ("layer_micro", False),
    "density": ("layer_density", False),
    "zones": ("layer_zones", True),
    "stations": ("layer_stations", True),
    "cameras": ("layer_cameras", False),
    "sensors": ("layer_sensors", False),
    "cases": ("layer_cases", True),
    "units": ("layer_units", True),
}
DEFAULT_LAYERS = frozenset(name for name, (_, on) in LAYERS.items() if on)


def _fn(name: str) -> dict[str, str]:
    """A reference to a JS function in assets/ (dash-leaflet resolves it from window)."""
    return {"variable": name}


def pick_layers(requested: str | None) -> frozenset[str]:
    """The layers a screen shows: ``?layers=cases,units,cameras`` or the defaults."""
    if not requested:
        return DEFAULT_LAYERS
    chosen = frozenset(p.strip() for p in requested.split(",") if p.strip() in LAYERS)
    return chosen or DEFAULT_LAYERS


def live_config(
    *,
    lang: str,
    tz: str,
    display_crs: str = "wgs84",
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """What the browser's live-map code needs (the page puts it, as JSON, in the
    ``data-config`` attribute of ``ids.LIVE_CONFIG``)."""
    keys = (
        "live", "stale", "offline", "connecting", "overdue", "overdue_by", "ago", "unit_s",
        "unit_min", "unit_h", "unit_d", "count_suffix", "none_overdue", "no_cases", "more",
        "more_rows",
        "today", "yesterday", "vs_yesterday", "p90", "minutes_ago", "hours_ago", "just_now",
        "peak", "same_time", "seconds_ago", "degraded",
    )  # fmt: skip
    labels: dict[str, object] = {
        "status": STATUS_LABELS[lang],
        "unitStatus": UNIT_STATUS_LABELS[lang],
        "unitKind": UNIT_KIND_LABELS[lang],
        "category": CATEGORY_LABELS[lang],
        "source": SOURCE_LABELS[lang],
        "secondsAgo": t(lang, "seconds_ago"),
    }
    labels.update({key: t(lang, key) for key in keys})
    return {
        "namespace": "/live",
        "lang": lang,
        "tz": tz,
        "displayCrs": display_crs,
        "bounds": [list(corner) for corner in bounds] if bounds else None,
        "colors": STATUS_COLORS,
        "overdueColor": OVERDUE_COLOR,
        "unitColors": UNIT_COLORS,
        "trendColors": TREND_COLORS,
        "facilityColors": FACILITY_COLORS,
        "densityColors": DENSITY_COLORS,
        "labels": labels,
        "statuses": status_config(),
        "kpis": kpi_config(),
    }


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
        for status in STATUSES
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
        for status in UNIT_STATUSES
    ]
    return html.Div(
        [
            html.H2(t(lang, "legend_title"), className="lq-legend-title"),
            html.Ul(items, className="lq-legend-cases"),
            html.H2(t(lang, "units"), className="lq-legend-title lq-legend-units"),
            html.Ul(units),
        ],
        id=ids.LEGEND,
        className="lq-panel lq-legend",
    )


def _geo_url(path: str, crs: str) -> str:
    if crs == "wgs84":
        return path
    return f"{path}{'&' if '?' in path else '?'}crs={crs}"


def _overlay(name: str, layer: Component, *, lang: str, shown: Iterable[str]) -> Component:
    return dl.Overlay(layer, name=t(lang, LAYERS[name][0]), checked=name in set(shown))


def create_map(
    view: MapView,
    *,
    lang: str = "zh-CN",
    tiles: TileSource | None = None,
    layers: frozenset[str] = DEFAULT_LAYERS,
) -> Component:
    (south, west), (north, east) = view.bounds
    crs = tiles.crs if tiles else "wgs84"

    def geojson(layer_id: str, url: str, **kw: object) -> Component:
        return dl.GeoJSON(id=layer_id, url=_geo_url(url, crs), **kw)

    overlays: list[Component] = []
    if tiles is not None:
        tile_layers = [
            dl.TileLayer(
                url=tiles.url,
                attribution=tiles.attribution,
                subdomains=tiles.subdomains or "abc",
                maxZoom=tiles.max_zoom,
                className="lq-tiles-dark" if tiles.dark else "lq-tiles",
            )
        ]
        if tiles.overlay_url:
            tile_layers.append(
                dl.TileLayer(
                    url=tiles.overlay_url,
                    subdomains=tiles.subdomains or "abc",
                    maxZoom=tiles.max_zoom,
                    className="lq-tiles-dark" if tiles.dark else "lq-tiles",
                )
            )
        overlays.append(
            _overlay(
                "tiles",
                dl.LayerGroup(tile_layers, id=ids.TILES_LAYER),
                lang=lang,
                shown=layers,
            )
        )
    static = [
        ("basemap", geojson(ids.BASEMAP_LAYER, "/api/v1/geo/basemap",
                            style=_fn("lq.style.basemap"), interactive=False)),
        ("grids", geojson(ids.GRIDS_LAYER, "/api/v1/geo/grids",
                          style=_fn("lq.style.grid"), interactive=False)),
        ("micro", geojson(ids.MICRO_LAYER, "/api/v1/geo/grids?level=micro",
                          style=_fn("lq.style.micro"), interactive=False)),
        ("density", geojson(ids.DENSITY_LAYER, "/api/v1/geo/grids",
                            style=_fn("lq.style.density"), interactive=False,
                            onEachFeature=_fn("lq.live.densityFeature"))),
        ("zones", geojson(ids.ZONES_LAYER, "/api/v1/geo/zones", style=_fn("lq.style.zone"),
                          onEachFeature=_fn("lq.style.zoneLabel"), interactive=False)),
        ("stations", geojson(ids.STATIONS_LAYER, "/api/v1/geo/facilities?kind=station",
                             pointToLayer=_fn("lq.style.facility"), interactive=False)),
        ("cameras", geojson(ids.CAMERAS_LAYER, "/api/v1/geo/facilities?kind=camera",
                            pointToLayer=_fn("lq.style.facility"), interactive=False)),
        ("sensors", geojson(ids.SENSORS_LAYER, "/api/v1/geo/facilities?kind=sensor",
                            pointToLayer=_fn("lq.style.facility"), interactive=False)),
    ]  # fmt: skip
    overlays += [_overlay(name, layer, lang=lang, shown=layers) for name, layer in static]
    overlays += [
        _overlay(
            "cases",
            dl.LayerGroup(id=ids.CASES_LAYER, eventHandlers={"add": _fn("lq.live.bindCases")}),
            lang=lang,
            shown=layers,
        ),
        _overlay(
            "units",
            dl.LayerGroup(id=ids.UNITS_LAYER, eventHandlers={"add": _fn("lq.live.bindUnits")}),
            lang=lang,
            shown=layers,
        ),
    ]
    # Only bounds: dash-leaflet's map prefers center+zoom over bounds when given both.
    return dl.Map(
        id=ids.WALL_MAP,
        bounds=[[south, west], [north, east]],
        boundsOptions={"padding": [30, 30]},
        trackViewport=False,  # nothing listens to the viewport; its tracking wants a center
        zoomControl=False,
        attributionControl=tiles is not None,  # tile providers require their attribution
        zoomSnap=0.25,
        className="lq-map",
        children=[
            dl.LayersControl(overlays, id=ids.LAYERS_CONTROL, collapsed=True, position="topright"),
        ],
    )


def _panel(
    panel_id: str,
    title: str,
    body: Component,
    *,
    extra: str = "",
    footer: Component | None = None,
) -> Component:
    return html.Section(
        [
            html.H2(title, className="lq-panel-title"),
            body,
            *([footer] if footer is not None else []),
        ],
        id=panel_id,
        className=f"lq-box {extra}".strip(),
    )


def create_kpis(*, lang: str) -> Component:
    tiles = []
    for name, sub in KPI_TILES:
        kpi = KPIS[name]
        attrs = {"data-kpi": name}  # its format and better direction: the page config's kpis
        if sub:
            attrs["data-sub"] = sub
        tiles.append(
            html.Div(
                [
                    html.Div(t(lang, kpi.label), className="lq-kpi-label"),
                    html.Div("–", className="lq-kpi-value"),
                    html.Div(
                        [html.Span("", className="lq-kpi-sub"),
                         html.Span("", className="lq-kpi-trend")],
                        className="lq-kpi-foot",
                    ),
                ],
                id=f"lq-kpi-{name}",
                className=f"lq-kpi lq-kpi-{kpi.format}",
                **attrs,  # type: ignore[arg-type]
            )
        )  # fmt: skip
    return _panel(
        ids.KPIS,
        t(lang, "kpis_title"),
        html.Div(tiles, className="lq-kpi-grid"),
        extra="lq-box-kpis",
    )


def create_wall_layout(
    view: MapView,
    *,
    lang: str,
    tz: str,
    tiles: TileSource | None = None,
    layers: frozenset[str] = DEFAULT_LAYERS,
) -> Component:
    crs = tiles.crs if tiles else "wgs84"
    return html.Div(
        id=ids.WALL,
        className="lq-wall",
        lang=lang,
        children=[
            html.Div(
                id=ids.LIVE_CONFIG,
                hidden=True,
                **{
                    "data-config": json.dumps(
                        live_config(lang=lang, tz=tz, display_crs=crs, bounds=view.bounds),
                        ensure_ascii=False,
                    )
                },  # type: ignore[arg-type]
            ),
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
            html.Aside(
                [
                    create_kpis(lang=lang),
                    _panel(
                        ids.UNITS_PANEL,
                        t(lang, "units_title"),
                        html.Div(className="lq-units-body"),
                        extra="lq-box-units",
                    ),
                    _panel(
                        ids.CATEGORIES,
                        t(lang, "categories_title"),
                        html.Ol(className="lq-bars"),
                        extra="lq-box-categories",
                    ),
                ],
                className="lq-side lq-side-left",
            ),
            html.Div(
                [create_map(view, lang=lang, tiles=tiles, layers=layers), create_legend(lang=lang)],
                className="lq-map-cell",
            ),
            html.Aside(
                [
                    _panel(
                        ids.TICKER,
                        t(lang, "ticker_title"),
                        html.Ol(className="lq-list lq-ticker-list"),
                        extra="lq-box-ticker",
                    ),
                    _panel(
                        ids.OVERDUE_PANEL,
                        t(lang, "overdue_title"),
                        html.Ol(className="lq-list lq-overdue-list"),
                        extra="lq-box-overdue",
                        footer=html.Div(className="lq-more", hidden=True),  # "还有 5 条"
                    ),
                    _panel(
                        ids.HOURLY,
                        t(lang, "hourly_title"),
                        html.Div(className="lq-hours"),
                        extra="lq-box-hourly",
                    ),
                ],
                className="lq-side lq-side-right",
            ),
        ],
    )
