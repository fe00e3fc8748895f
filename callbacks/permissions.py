"""Who may call which Dash callback: one table, checked in one place.

Every callback's outputs are listed here by component id, each with the permission
(dashboard/services/accounts.py ``PERMISSIONS``) a principal needs to update it. The guard
(:func:`install_callback_guard`, a ``before_request`` on ``/_dash-update-component`` after
authentication and the envelope check of dashboard/web/bodies.py) refuses a callback
request with 403 unless the principal holds the permission of every output it names, so a
callback need not remember to check (the services still check what an action needs: a
console operator may open the console but not cancel a case). An output missing from the
table is refused too, and a test (tests/integration/test_callback_guard.py) fails on any
registered callback with an unmapped output. Browser-side callbacks never reach the server;
they are listed as well, so the table covers every callback the app registers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, request

from layouts import ids
from layouts.trends import CHARTS

DASH_UPDATE = "/_dash-update-component"

# output component id -> permission needed to update it
OUTPUT_PERMISSIONS: Mapping[str, str] = {
    # the router (every page but the login page is rendered by it; each page builder
    # checks its own page's permission and renders a refusal otherwise)
    ids.PAGE: "view_wall",
    # the dispatch console (callbacks/dispatch.py); each action's own permission is the
    # dispatch service's (services/dispatch.py check_permission)
    ids.CASE_DETAIL: "view_dispatch",
    ids.NEAREST_LIST: "view_dispatch",
    ids.CASE_TIMELINE: "view_dispatch",
    ids.CASE_STATE: "view_dispatch",
    ids.NEAREST: "view_dispatch",
    ids.ACTIONS: "view_dispatch",
    ids.PRIORITY_SELECT: "view_dispatch",
    ids.FEEDBACK: "view_dispatch",
    ids.CASE_OPEN: "view_dispatch",
    ids.ASSIGN_NOTE: "view_dispatch",
    ids.NOTE_TEXT: "view_dispatch",
    ids.CANCEL_REASON: "view_dispatch",
    ids.REOPEN_NOTE: "view_dispatch",
    ids.BULK_NOTE: "view_dispatch",
    ids.QUEUE: "view_dispatch",
    ids.FILTERS: "view_dispatch",  # browser-side
    ids.DISPATCH_SINK: "view_dispatch",  # browser-side
    ids.ASSIGN_UNIT: "view_dispatch",  # browser-side
    ids.BULK_REQUEST: "view_dispatch",  # browser-side
    # the trends page (callbacks/trends.py)
    ids.URL: "view_trends",  # only the trends page writes its state into the URL
    ids.TRENDS_PERIOD: "view_trends",
    **dict.fromkeys(CHARTS, "view_trends"),
    ids.TRENDS_KPIS: "view_trends",
    ids.TRENDS_LEAGUE: "view_trends",
    ids.TRENDS_CHOROPLETH_DATA: "view_trends",
    ids.TRENDS_MAP_LEGEND: "view_trends",
    ids.TRENDS_PERIOD_LABEL: "view_trends",
    ids.TRENDS_ERROR: "view_trends",
    ids.TRENDS_PRINT_LINK: "view_trends",
    ids.TRENDS_REPLAY_DATA: "view_trends",
    ids.TRENDS_DOWNLOAD: "export",
    ids.TRENDS_REPLAY_SINK: "view_trends",  # browser-side
    ids.TRENDS_CHOROPLETH: "view_trends",  # browser-side
    ids.TRENDS_REPLAY_PLAY: "view_trends",  # browser-side
    ids.TRENDS_REPLAY_SPEED: "view_trends",  # browser-side
    ids.TRENDS_REPLAY_CLOCK: "view_trends",  # browser-side
    ids.TRENDS_PRINT_BUTTON: "view_trends",  # browser-side
}


def _component_id(value: Any) -> str:
    """A component id as the table names it; a pattern-matching id by its ``type``."""
    if isinstance(value, dict):
        return str(value.get("type"))
    if isinstance(value, str) and value.startswith("{"):
        try:
            return str(json.loads(value).get("type"))
        except (ValueError, AttributeError):
            return value
    return str(value)


def output_ids(output: str) -> list[str]:
    """The component ids of a callback's output key (``id.prop`` or ``..a.p...b.q..``)."""
    from dash._utils import split_callback_id

    split = split_callback_id(output)
    parts = split if isinstance(split, list) else [split]
    return [_component_id(part["id"]) for part in parts]


def required_permissions(output: str) -> frozenset[str] | None:
    """The permissions a callback request for ``output`` needs; None when an output is not
    in the table (such a request is refused)."""
    needed = set()
    for component in output_ids(output):
        permission = OUTPUT_PERMISSIONS.get(component)
        if permission is None:
            return None
        needed.add(permission)
    return frozenset(needed)


def unmapped_outputs(callback_map: Mapping[str, Any]) -> list[str]:
    """The registered callbacks' output ids missing from the table (a test keeps it empty)."""
    return sorted(
        {c for output in callback_map for c in output_ids(output) if c not in OUTPUT_PERMISSIONS}
    )


def missing_permission(principal: Any, permissions: Iterable[str]) -> str | None:
    """The first permission ``principal`` lacks, or None when it holds them all."""
    for permission in sorted(permissions):
        if principal is None or not principal.can(permission):
            return permission
    return None


def install_callback_guard(server: Flask) -> None:
    """Refuse every callback request whose outputs the principal may not update (403).

    Installed after the authentication guard (no principal: 401 already) and after the
    envelope check (the body is a callback request for a registered output)."""
    from dashboard.api.errors import api_error
    from dashboard.web.auth import current_principal

    def check() -> Response | None:
        if request.path != DASH_UPDATE or request.method != "POST":
            return None
        body = request.get_json()
        output = body.get("output") if isinstance(body, dict) else None
        needed = required_permissions(output) if isinstance(output, str) else None
        principal = current_principal()
        if needed is None:
            return api_error(403, "forbidden", "no permission is declared for this callback")
        lacking = missing_permission(principal, needed)
        if lacking is not None:
            role = principal.role if principal is not None else "anonymous"
            return api_error(
                403, "forbidden", f"the role {role!r} may not use this callback ({lacking})"
            )
        return None

    server.before_request(check)
