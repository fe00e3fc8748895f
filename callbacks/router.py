"""The page router: the URL's path picks the layout builder."""

from __future__ import annotations

from urllib.parse import parse_qs

from dash import Dash, Input, Output, ctx
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from callbacks.dispatch import render_page as render_dispatch
from callbacks.inputs import checked
from callbacks.trends import render_page as render_trends
from callbacks.trends import render_print as render_trends_print
from dashboard.services.geo import map_view
from dashboard.tiles import tile_source
from dashboard.vocabulary import pick_language
from dashboard.web.context import current_runtime
from layouts import ids
from layouts.root import create_not_found
from layouts.wall import create_wall_layout, pick_layers

# Every page the router renders; the server answers any other path of Dash's catch-all with
# a 404 (dashboard/web/notfound.py).
PAGES = frozenset({"/", "/wall", "/dispatch", "/trends", "/trends/print"})


def page_language(search: str | None, default: str) -> str:
    """``?lang=en`` overrides the configured language for one screen."""
    return pick_language(parse_qs((search or "").lstrip("?")).get("lang", [default])[0], default)


def register(app: Dash) -> None:
    @app.callback(
        Output(ids.PAGE, "children"), Input(ids.URL, "pathname"), Input(ids.URL, "search")
    )
    @checked
    def route(pathname: str | None, search: str | None) -> Component:
        """Render the page that the URL names."""
        rt = current_runtime()
        lang = page_language(search, rt.settings.language)
        if pathname in ("/", "/wall", None):
            with rt.db.read() as session:
                view = map_view(session)
            layers = pick_layers(parse_qs((search or "").lstrip("?")).get("layers", [""])[0])
            return create_wall_layout(
                view, lang=lang, tz=rt.settings.tz, tiles=tile_source(rt.settings), layers=layers
            )
        if pathname == "/dispatch":
            return render_dispatch(lang=lang)
        if pathname == "/trends":
            # The briefing view keeps its state in the query: a changed query redraws its
            # charts (callbacks/trends.py), not the whole page.
            if set(ctx.triggered_prop_ids) == {f"{ids.URL}.search"}:
                raise PreventUpdate
            return render_trends(lang=lang, search=search)
        if pathname == "/trends/print":
            return render_trends_print(lang=lang, search=search)
        return create_not_found(pathname, lang=lang)
