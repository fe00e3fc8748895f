"""The dispatch console's callbacks: open a case, act on it, act on several.

The queue and the map never call the server: assets/lianqin-dispatch.js feeds them from
the pushed deltas. The server is asked only when a case is opened (or the open case
changes) and when someone acts; every action goes through dashboard/services/dispatch.py,
the same rules as the write API.
"""

from __future__ import annotations

import secrets
from typing import Any

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update
from dash.development.base_component import Component
from flask_wtf.csrf import generate_csrf

from callbacks.inputs import BulkRequest, CaseRequest, CaseState, ConsoleContext, checked
from dashboard.i18n import t
from dashboard.policy import is_new_unassigned
from dashboard.services import dispatch
from dashboard.services.geo import map_view
from dashboard.tiles import tile_source
from dashboard.web.auth import client_ip, current_principal
from dashboard.web.context import current_runtime
from layouts import ids
from layouts.dispatch import (
    create_case_detail,
    create_dispatch_layout,
    create_nearest,
    create_timeline,
)

# Which button asks for which action, and which fields of the page make its body.
BUTTONS = {
    ids.ASSIGN_BUTTON: "assign",
    ids.PRIORITY_BUTTON: "priority",
    ids.NOTE_BUTTON: "note",
    ids.CANCEL_BUTTON: "cancel",
    ids.REOPEN_BUTTON: "reopen",
}
# What the console shows follows the policy (dashboard/policy.py); the service checks again.
CONSOLE_PERMISSIONS = (
    "dispatch_new", "reassign", "priority", "cancel", "reopen", "add_note", "bulk",
)  # fmt: skip


def render_page(*, lang: str) -> Component:
    """The /dispatch page for the signed-in principal (the router calls this)."""
    rt = current_runtime()
    principal = current_principal()
    if principal is None or not principal.can("view_dispatch"):
        return html.Div(t(lang, "err_forbidden"), className="lq-not-found")
    with rt.db.read() as session:
        view = map_view(session)
        options = dispatch.console_options(session, lang=lang)
    return create_dispatch_layout(
        view,
        lang=lang,
        tz=rt.settings.tz,
        tiles=tile_source(rt.settings),
        user={"name": principal.name, "role": principal.role},
        perms=frozenset(p for p in CONSOLE_PERMISSIONS if principal.can(p)),
        options=options,
        csrf_token=generate_csrf(),
    )


def feedback(
    lang: str,
    *,
    ok: str | None = None,
    error: dispatch.DispatchError | None = None,
    warnings: list[str] | None = None,
) -> Component:
    """A one-line result for the lead: what happened, or why not (in their language)."""
    if error is not None:
        text = t(lang, f"err_{error.code}")
        if text == f"err_{error.code}":
            text = error.error
        detail = (
            "; ".join(f"{k}: {v}" for k, v in error.fields.items()) if error.status == 422 else ""
        )
        return html.Div(
            [text, html.Small(detail)] if detail else text,
            className="lq-fb lq-fb-error",
            role="alert",
        )
    lines: list[Any] = [ok or ""]
    if warnings and any(w.startswith("unit_busy") for w in warnings):
        lines.append(html.Small(t(lang, "warn_unit_busy")))
    return html.Div(lines, className="lq-fb lq-fb-ok")


def _body(action: str, version: Any, values: dict[str, Any]) -> dict[str, Any]:
    fields = {
        "assign": ("unit", "department", "note"),
        "priority": ("priority",),
        "note": ("note",),
        "cancel": ("reason",),
        "reopen": ("note",),
    }[action]
    body: dict[str, Any] = {"version": version}
    for name in fields:
        value = values.get(name)
        if value not in (None, ""):
            body[name] = value
    return body


def register(app: Dash) -> None:
    @app.callback(
        Output(ids.CASE_DETAIL, "children"),
        Output(ids.NEAREST_LIST, "children"),
        Output(ids.CASE_TIMELINE, "children"),
        Output(ids.CASE_STATE, "data"),
        Output(ids.NEAREST, "data"),
        Output(ids.ACTIONS, "className"),
        Output(ids.PRIORITY_SELECT, "value"),
        Input(ids.CASE_OPEN, "data"),
        State(ids.DISPATCH_LANG, "data"),
        State(ids.CASE_STATE, "data"),
        prevent_initial_call=True,
    )
    @checked
    def open_case(
        request: CaseRequest | None, context: ConsoleContext, shown: CaseState | None
    ) -> tuple[Any, ...]:
        """Show a case: its fields, timeline and the nearest units (read when opened)."""
        lang = context["lang"]
        case_id = (request or {}).get("id") or ""
        rt = current_runtime()
        tz = rt.settings.tz
        with rt.db.read() as session:
            data = dispatch.console_case(
                session,
                rt.latest,
                case_id=case_id,
                zone=rt.settings.zone,
                now=rt.now(),
                stale_s=rt.settings.unit_stale_s,
                speeds_kmh=rt.settings.unit_speeds_kmh,
                radius_m=rt.settings.nearest_radius_m,
                limit=rt.settings.nearest_count,
            )
        if data is None:
            empty = html.P(
                t(lang, "case_not_found") if case_id else t(lang, "case_none"), className="lq-empty"
            )
            return empty, None, None, None, [], "lq-actions lq-hidden", no_update
        case = data["case"]
        principal = current_principal()
        first = is_new_unassigned(case["status"], case.get("unit"))
        can_pick = principal is not None and (
            principal.can("reassign") or (first and principal.can("dispatch_new"))
        )
        departments = context.get("departments") or {}
        same = isinstance(shown, dict) and shown.get("id") == case["id"]
        return (
            create_case_detail(case, lang=lang, tz=tz, departments=departments),
            create_nearest(data["nearest"], lang=lang, can_pick=can_pick),
            create_timeline(case["timeline"], lang=lang, tz=tz, departments=departments),
            {k: case[k] for k in ("id", "version", "status", "lat", "lon", "unit", "department")},
            [{**u, "case": case["id"]} for u in data["nearest"]],
            f"lq-actions lq-status-{case['status']}" + (" lq-unassigned" if first else ""),
            no_update if same else case["priority"],
        )

    @app.callback(
        Output(ids.FEEDBACK, "children", allow_duplicate=True),
        Output(ids.CASE_OPEN, "data", allow_duplicate=True),
        Output(ids.ASSIGN_NOTE, "value"),
        Output(ids.NOTE_TEXT, "value"),
        Output(ids.CANCEL_REASON, "value"),
        Output(ids.REOPEN_NOTE, "value"),
        *[Input(button, "n_clicks") for button in BUTTONS],
        State(ids.CASE_STATE, "data"),
        State(ids.ASSIGN_UNIT, "value"),
        State(ids.ASSIGN_DEPARTMENT, "value"),
        State(ids.ASSIGN_NOTE, "value"),
        State(ids.PRIORITY_SELECT, "value"),
        State(ids.NOTE_TEXT, "value"),
        State(ids.CANCEL_REASON, "value"),
        State(ids.REOPEN_NOTE, "value"),
        State(ids.DISPATCH_LANG, "data"),
        prevent_initial_call=True,
    )
    @checked
    def act(
        _assign: int | None, _priority: int | None, _note: int | None, _cancel: int | None,
        _reopen: int | None, shown: CaseState | None, unit: str | None, department: str | None,
        assign_note: str | None, priority: int | None, note: str | None, reason: str | None,
        reopen_note: str | None, context: ConsoleContext,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Apply the clicked action to the open case, then refresh it."""
        action = BUTTONS.get(str(ctx.triggered_id))
        lang = context["lang"]
        if action is None or not isinstance(shown, dict) or not shown.get("id"):
            return (no_update,) * 6
        values = {
            "unit": unit,
            "department": department,
            "note": {"assign": assign_note, "note": note, "reopen": reopen_note}.get(action),
            "priority": priority,
            "reason": reason,
        }
        try:
            [outcome] = dispatch.perform(
                current_runtime(),
                principal=current_principal(),
                action=action,
                case_id=shown["id"],
                body=_body(action, shown.get("version"), values),
                ip=client_ip(),
            )
        except dispatch.DispatchError as exc:
            stale = exc.status == 409
            return (
                feedback(lang, error=exc),
                {"id": shown["id"], "n": secrets.token_hex(4)} if stale else no_update,
                no_update,
                no_update,
                no_update,
                no_update,
            )
        refresh = {"id": shown["id"], "n": outcome.change_id}
        cleared = {"assign": 2, "note": 3, "cancel": 4, "reopen": 5}.get(action)
        outputs: list[Any] = [
            feedback(
                lang, ok=f"{t(lang, f'ok_{action}')} {shown['id']}", warnings=outcome.warnings
            ),
            refresh,
            no_update,
            no_update,
            no_update,
            no_update,
        ]
        if cleared is not None:
            outputs[cleared] = ""
        return tuple(outputs)

    @app.callback(
        Output(ids.FEEDBACK, "children", allow_duplicate=True),
        Output(ids.BULK_NOTE, "value"),
        Output(ids.QUEUE, "deselectAll"),
        Input(ids.BULK_REQUEST, "data"),
        State(ids.BULK_UNIT, "value"),
        State(ids.BULK_DEPARTMENT, "value"),
        State(ids.BULK_NOTE, "value"),
        State(ids.DISPATCH_LANG, "data"),
        prevent_initial_call=True,
    )
    @checked
    def act_on_selected(
        request: BulkRequest | None, unit: str | None, department: str | None,
        note: str | None, context: ConsoleContext,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Assign every ticked case together (all or nothing)."""
        lang = context["lang"]
        if not isinstance(request, dict) or not request.get("cases"):
            return no_update, no_update, no_update
        body = {
            k: v
            for k, v in {"unit": unit, "department": department, "note": note}.items()
            if v not in (None, "")
        }
        try:
            outcomes = dispatch.perform(
                current_runtime(),
                principal=current_principal(),
                action="assign",
                cases=request["cases"],
                body=body,
                ip=client_ip(),
            )
        except dispatch.DispatchError as exc:
            return feedback(lang, error=exc), no_update, no_update
        names = " ".join(o.case["id"] for o in outcomes)
        warnings = [w for o in outcomes for w in o.warnings]
        return feedback(lang, ok=f"{t(lang, 'ok_bulk')} {names}", warnings=warnings), "", True

    # Browser-side: filters, map lines, picking a unit, the bulk request, opening by id.
    app.clientside_callback(
        ClientsideFunction("lq_dispatch", "filters"),
        Output(ids.FILTERS, "data"),
        Input(ids.FILTER_STATUS, "value"),
        Input(ids.FILTER_CATEGORY, "value"),
        Input(ids.FILTER_GRID, "value"),
        Input(ids.FILTER_ZONE, "value"),
        Input(ids.FILTER_DEPARTMENT, "value"),
    )
    app.clientside_callback(
        ClientsideFunction("lq_dispatch", "nearest"),
        Output(ids.DISPATCH_SINK, "data"),
        Input(ids.NEAREST, "data"),
        Input(ids.CASE_STATE, "data"),
    )
    app.clientside_callback(
        ClientsideFunction("lq_dispatch", "pick"),
        Output(ids.ASSIGN_UNIT, "value"),
        Output(ids.ASSIGN_UNIT, "options"),  # a unit that pinged after the page loaded
        Input({"type": ids.NEAREST_PICK, "unit": ALL}, "n_clicks"),
        State(ids.ASSIGN_UNIT, "options"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("lq_dispatch", "bulk"),
        Output(ids.BULK_REQUEST, "data"),
        Input(ids.BULK_BUTTON, "n_clicks"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("lq_dispatch", "search"),
        Output(ids.CASE_OPEN, "data", allow_duplicate=True),
        Input(ids.CASE_SEARCH, "value"),
        prevent_initial_call=True,
    )
