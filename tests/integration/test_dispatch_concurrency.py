"""Optimistic concurrency as the lead sees it (issue 15, the dispatch console): when the open
case changes under a lead (another lead, a producer), the console does not silently take the
new version for the lead's next click; it says what changed and by whom, refuses to act
until the lead confirms, and then acts on the version they confirmed."""

from __future__ import annotations

from typing import Any

import test_dispatch_console as console
from flask import Flask
from helpers import Dash, sign_in

from dashboard.models import Case, Unit
from dashboard.runtime import Runtime
from dashboard.worker.loop import Worker
from layouts import ids

# The console tests' fixtures: a runtime with a police department, a unit and a user per role.
rt = console.rt
worker = console.worker
make_case = console.make_case
CONTEXT = {"lang": "zh-CN", "tz": "Asia/Shanghai", "departments": {"police": "公安派出所"}}


def open_(dash: Dash, case_id: str, shown: Any = None, **request: Any) -> dict[str, Any]:
    states: dict[str, Any] = {ids.DISPATCH_LANG: CONTEXT}
    if shown is not None:
        states[ids.CASE_STATE] = shown
    response = dash.call(ids.CASE_OPEN, "data", {"id": case_id, "n": 1, **request}, states)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["response"]


def assign(dash: Dash, shown: Any, unit: str) -> dict[str, Any]:
    states = {ids.CASE_STATE: shown, ids.ASSIGN_UNIT: unit, ids.DISPATCH_LANG: CONTEXT}
    response = dash.call(ids.ASSIGN_BUTTON, "n_clicks", 1, states)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["response"]


def unit_of(rt: Runtime, case_id: str) -> str | None:
    with rt.db.read() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.unit_id


def test_a_change_by_another_lead_is_shown_and_must_be_confirmed(
    app: Flask,
    rt: Runtime,
    worker: Worker,
) -> None:
    with rt.db.write() as session:
        session.add(Unit(id="P-002", name="巡逻二组", kind="patrol", department_id="police"))
    make_case(rt, worker, "UI-CC", "registered")
    first, second = Dash(sign_in(app, "u-lead")), Dash(sign_in(app, "u-admin"))
    # Both leads open the case; the first starts choosing.
    seen = open_(first, "UI-CC")[ids.CASE_STATE]["data"]
    assert seen["version"] and "latest" not in seen
    # The second lead assigns P-002 (their own change: no notice for them).
    theirs = assign(second, open_(second, "UI-CC")[ids.CASE_STATE]["data"], "P-002")
    assert "lq-fb-ok" in str(theirs[ids.FEEDBACK])
    mine = open_(second, "UI-CC", seen, **{"accept": theirs[ids.CASE_OPEN]["data"]["accept"]})
    assert "lq-hidden" in mine[ids.CASE_CHANGED]["className"]
    # The first lead's panel refreshes (the pushed delta): it says what changed and by whom…
    result = open_(first, "UI-CC", seen)
    assert "lq-hidden" not in result[ids.CASE_CHANGED]["className"]
    notice = str(result[ids.CASE_CHANGED_TEXT]["children"])
    assert "P-002" in notice and "u-admin" in notice and "派遣" in notice, notice
    state = result[ids.CASE_STATE]["data"]
    assert state["version"] == seen["version"] and state["latest"] == seen["version"] + 1
    # …and their next click does not overwrite it: confirm first.
    refused = assign(first, state, "P-001")
    assert "请先核对" in str(refused[ids.FEEDBACK])
    assert unit_of(rt, "UI-CC") == "P-002"
    # A second refresh before confirming keeps asking.
    again = open_(first, "UI-CC", state)
    assert "lq-hidden" not in again[ids.CASE_CHANGED]["className"]
    # The lead confirms the new version; then their choice applies, on that version.
    confirmed = open_(first, "UI-CC", state, accept=state["latest"])
    assert "lq-hidden" in confirmed[ids.CASE_CHANGED]["className"]
    fresh = confirmed[ids.CASE_STATE]["data"]
    assert fresh["version"] == state["latest"] and fresh["unit"] == "P-002"
    done = assign(first, fresh, "P-001")
    assert "lq-fb-ok" in str(done[ids.FEEDBACK])
    assert unit_of(rt, "UI-CC") == "P-001"


def test_opening_another_case_never_shows_a_change_notice(
    app: Flask,
    rt: Runtime,
    worker: Worker,
) -> None:
    make_case(rt, worker, "UI-A", "registered")
    make_case(rt, worker, "UI-B", "registered")
    dash = Dash(sign_in(app, "u-lead"))
    seen = open_(dash, "UI-A")[ids.CASE_STATE]["data"]
    result = open_(dash, "UI-B", seen)
    assert "lq-hidden" in result[ids.CASE_CHANGED]["className"]
    assert result[ids.CASE_STATE]["data"]["id"] == "UI-B"
