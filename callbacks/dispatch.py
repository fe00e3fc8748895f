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
from dashboard.policy import is_new_unassigned, pages_for
from dashboard.response_plan import load_plans
from dashboard.services import dispatch
from dashboard.services.geo import map_view
from dashboard.tiles import tile_source
from dashboard.web.auth import client_ip, current_principal
from dashboard.web.context import current_runtime
from layouts import ids
from layouts.dispatch import (
    create_case_detail,
    create_changed_notice,
    create_dispatch_layout,
    create_nearest,
    create_timeline,
)
from layouts.nav import create_nav

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


def render_page(*, lang: str, query: str = "") -> Component:
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
        center=rt.settings.center_name,
        nav=create_nav(pages_for(principal.role), current="/dispatch", lang=lang, query=query),
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


# What the console keeps of the open case (callbacks/inputs.py CaseState).
STATE_FIELDS = ("id", "version", "status", "lat", "lon", "unit", "department", "priority")


def pending_change(shown: CaseState, case: dict[str, Any], accept: int | None) -> bool:
    """Whether the open case came back at a version the lead has not accepted: not the one
    their actions are based on, not the result of their own action, not one they confirmed.
    Still pending when it was already waiting for a confirmation."""
    version = case["version"]
    if version == accept:
        return False
    return version != shown.get("version") or shown.get("latest") is not None


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
        Output(ids.CASE_CHANGED_TEXT, "children"),
        Output(ids.CASE_CHANGED, "className"),
        Output(ids.FEEDBACK, "children", allow_duplicate=True),
        Output(ids.ASSIGN_UNIT, "value", allow_duplicate=True),
        Output(ids.ASSIGN_DEPARTMENT, "value"),
        Input(ids.CASE_OPEN, "data"),
        State(ids.DISPATCH_LANG, "data"),
        State(ids.CASE_STATE, "data"),
        prevent_initial_call=True,
    )
    @checked
    def open_case(
        request: CaseRequest | None, context: ConsoleContext, shown: CaseState | None
    ) -> tuple[Any, ...]:
        """Show a case: its fields, timeline and the nearest units (read when opened).

        Optimistic concurrency as the lead sees it: when the open case comes back at a newer
        version they did not make or accept (another lead, a producer), the console shows the
        new case but keeps acting on the version the lead saw, says what changed and by whom,
        and refuses to act until they confirm (:func:`pending_change`)."""
        lang = context["lang"]
        request = request or {}
        case_id = request.get("id") or ""
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
                plans=load_plans(rt.settings.response_plan_file),
            )
        hidden = "lq-changed lq-hidden"
        if data is None:
            empty = html.P(
                t(lang, "case_not_found") if case_id else t(lang, "case_none"), className="lq-empty"
            )
            return (
                *(empty, None, None, None, [], "lq-actions lq-hidden", no_update, None, hidden),
                *(None, None, None),  # no case: no result, no pending choice
            )
        case = data["case"]
        principal = current_principal()
        first = is_new_unassigned(case["status"], case.get("unit"))
        can_pick = principal is not None and (
            principal.can("reassign") or (first and principal.can("dispatch_new"))
        )
        departments = context.get("departments") or {}
        same = shown is not None and shown.get("id") == case["id"]
        state: dict[str, Any] = {k: case.get(k) for k in STATE_FIELDS}
        notice: Any = None
        notice_class = hidden
        accept = request.get("accept")
        timeline = case.get("timeline") or []
        if (
            same and shown is not None and principal is not None and timeline
            and shown.get("latest") is None
            and case["version"] == (shown.get("version") or 0) + 1
            and timeline[-1].get("actor") == principal.actor
        ):  # fmt: skip
            # The one change since is the lead's own, read back by the live refresh before
            # their action's answer (with its ``accept``) came: not someone else's change.
            accept = case["version"]
        if same and shown is not None and pending_change(shown, case, accept):
            # Keep what the lead saw (and acts on); show the new case and what changed.
            state = {**{k: shown.get(k) for k in STATE_FIELDS}, "lat": case["lat"],
                     "lon": case["lon"], "latest": case["version"]}  # fmt: skip
            notice = create_changed_notice(shown, case, lang=lang, departments=departments)
            notice_class = "lq-changed"
        return (
            create_case_detail(case, lang=lang, tz=tz, departments=departments),
            create_nearest(data["nearest"], lang=lang, can_pick=can_pick),
            create_timeline(case["timeline"], lang=lang, tz=tz, departments=departments),
            state,
            [{**u, "case": case["id"]} for u in data["nearest"]],
            f"lq-actions lq-status-{case['status']}" + (" lq-unassigned" if first else ""),
            no_update if same else case["priority"],
            notice,
            notice_class,
            # The last result and a pending choice belong to their case: another case opens
            # without them (a unit picked for one case is never assigned to the next).
            *((no_update,) * 3 if same else (None, None, None)),
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
        if shown.get("latest") is not None:
            # Someone else changed the case since the lead began: they confirm first.
            error = dispatch.DispatchError(409, "confirm the change first", code="confirm_changed")
            return (feedback(lang, error=error),) + (no_update,) * 5
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
        # The new version is the lead's own: accepted, not reported back as someone's change.
        refresh = {"id": shown["id"], "n": outcome.change_id, "accept": outcome.case["version"]}
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
        ClientsideFunction("lq_dispatch", "confirm"),
        Output(ids.CASE_OPEN, "data", allow_duplicate=True),
        Input(ids.CONFIRM_CHANGED, "n_clicks"),
        State(ids.CASE_STATE, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("lq_dispatch", "search"),
        Output(ids.CASE_OPEN, "data", allow_duplicate=True),
        Input(ids.CASE_SEARCH, "value"),
        prevent_initial_call=True,
    )
