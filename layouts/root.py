"""The root layout: a location and the page container the router fills."""

from __future__ import annotations

from dash import dcc, html
from dash.development.base_component import Component

from dashboard.i18n import t
from layouts import ids


def create_root_layout() -> Component:
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            html.Div(id=ids.PAGE, className="lq-page"),
        ],
        className="lq-root",
    )


def create_not_found(path: str, *, lang: str) -> Component:
    return html.Div(
        [
            html.H1(t(lang, "not_found")),
            html.P(path),
            html.A(t(lang, "nav_wall"), href="/wall", className="lq-not-found-back"),
        ],
        className="lq-not-found",
    )
