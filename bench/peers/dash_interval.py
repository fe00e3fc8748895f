"""The peer: the live-update pattern of Dash's own documentation, applied to our map.

Dash's "Live Updating Components" page: a ``dcc.Interval`` fires every N ms and a
callback, given ``n_intervals``, reads the current data and returns the component's
new property. Here the property is the ``data`` of dash-leaflet ``GeoJSON`` layers
(units and today's cases), read from the same database the Lianqin worker writes,
turned into GeoJSON with ``dash_leaflet.express.dicts_to_geojson`` — the idiomatic
dash-leaflet way. Points are circle markers through a ``pointToLayer`` JS function and
the map uses ``preferCanvas`` (its fastest full redraw), so the peer gets the best
configuration of its pattern, not a strawman.

    DATABASE_URL=… PEER_INTERVAL_MS=1000 \
        gunicorn -w 1 --threads 8 bench.peers.dash_interval:server

Instrumentation for bench/e2e.py only: a clientside callback on the layers' ``data``
records when each change was painted (same clock as the producer).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dash_leaflet as dl
import dash_leaflet.express as dlx
from dash import ClientsideFunction, Dash, Input, Output, dcc, html
from sqlalchemy import create_engine, or_, select

from dashboard.models import Case, Unit
from dashboard.services.cases import start_of_day

COLORS = {
    "reported": "#F0E442",
    "registered": "#E69F00",
    "dispatched": "#56B4E9",
    "on_scene": "#3A7BFF",
    "resolved": "#009E73",
    "closed": "#A0A7B4",
    "cancelled": "#5C6370",
}


def create_peer(database_url: str, interval_ms: int, bounds: list[list[float]]) -> Dash:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    app = Dash(__name__, assets_folder=str(Path(__file__).with_name("assets")))
    app.layout = html.Div(
        [
            dl.Map(
                [
                    dl.GeoJSON(
                        id="cases",
                        pointToLayer={"variable": "peer.caseToLayer"},
                        hideout={"colors": COLORS},
                    ),
                    dl.GeoJSON(id="units", pointToLayer={"variable": "peer.unitToLayer"}),
                ],
                bounds=bounds,
                preferCanvas=True,
                style={"height": "100vh"},
            ),
            dcc.Interval(id="interval", interval=interval_ms, n_intervals=0),
            dcc.Store(id="painted"),
        ]
    )

    @app.callback(
        Output("units", "data"), Output("cases", "data"), Input("interval", "n_intervals")
    )
    def update(_n: int) -> tuple[dict, dict]:
        """Read the current units and today's cases and return them as the layers' data."""
        now = datetime.now(UTC)
        with engine.connect() as conn:
            units = [
                {"id": i, "lat": lat, "lon": lon, "status": st, "ts": ts.timestamp() * 1000}
                for i, lat, lon, st, ts in conn.execute(
                    select(Unit.id, Unit.last_lat, Unit.last_lon, Unit.status, Unit.last_ts).where(
                        Unit.last_ts.is_not(None)
                    )
                )
            ]
            cases = [
                {"id": i, "lat": lat, "lon": lon, "status": st, "title": t, "version": v}
                for i, lat, lon, st, t, v in conn.execute(
                    select(
                        Case.id, Case.lat, Case.lon, Case.status, Case.title, Case.version
                    ).where(
                        or_(
                            Case.reported_at >= start_of_day(now, UTC),
                            Case.status.not_in(("closed", "cancelled")),
                        )
                    )
                )
            ]
        return dlx.dicts_to_geojson(units), dlx.dicts_to_geojson(cases)

    app.clientside_callback(
        ClientsideFunction(namespace="peer", function_name="painted"),
        Output("painted", "data"),
        Input("units", "data"),
        Input("cases", "data"),
    )
    return app


def _bounds() -> list[list[float]]:
    lat, lon = 29.028, 106.651
    return [[lat - 0.07, lon - 0.09], [lat + 0.07, lon + 0.09]]


if "DATABASE_URL" in os.environ:  # gunicorn imports this module: build the app then
    app = create_peer(
        os.environ["DATABASE_URL"], int(os.environ.get("PEER_INTERVAL_MS", "1000")), _bounds()
    )
    server = app.server
