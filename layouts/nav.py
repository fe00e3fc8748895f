"""The pages' navigation: wall / dispatch / trends, only those the role may open.

Pure: the router and the page builders give it the paths (dashboard/policy.py
``pages_for``); with one page or none (a kiosk wall) there is nothing to navigate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import html
from dash.development.base_component import Component

from dashboard.i18n import t

LABELS = {"/wall": "nav_wall", "/dispatch": "nav_dispatch", "/trends": "nav_trends"}


def create_nav(
    paths: Sequence[str], *, current: str, lang: str, query: str = "", floating: bool = False
) -> Component | None:
    """Links to ``paths``, the current one marked; None when there is nowhere else to go.
    ``query`` (``?lang=en``) keeps a screen's language override from page to page;
    ``floating``: a small fixed bar for a page whose header has no place for it (the wall)."""
    if len(paths) < 2:
        return None
    links = []
    for path in paths:
        here = path == current
        attrs: dict[str, Any] = {"aria-current": "page"} if here else {}
        href = path + query
        links.append(
            html.A(
                t(lang, LABELS.get(path, path)),
                href=href,
                className="lq-nav-link" + (" lq-nav-here" if here else ""),
                id=f"lq-nav{path.replace('/', '-')}",
                **attrs,
            )
        )
    label: dict[str, Any] = {"aria-label": t(lang, "nav_label")}
    return html.Nav(
        links, className="lq-nav" + (" lq-nav-floating" if floating else ""), id="lq-nav", **label
    )
