"""The dispatch console's page and callbacks, as a browser calls them (Flask test client):
who may open /dispatch, what each role's page offers, and the permission matrix of the
console's actions — enforced by the server even for a forged callback request."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import PASSWORD, Dash, drain, sign_in

from dashboard.models import Case, Department, Unit
from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.services.accounts import ROLES
from dashboard.streams import Producer
from dashboard.web.app import runtime_of
from dashboard.worker.loop import Worker
from layouts import ids

# dashboard/policy.py: on the new, unassigned (registered) cases of the matrix below an
# operator may assign too; an assigned case is the leads' (test_an_operator_may_not_reassign…).
ALLOWED = {
    "assign": {"operator", "lead", "admin"},
    "priority": {"lead", "admin"},
    "cancel": {"lead", "admin"},
    "note": {"operator", "lead", "admin"},
    "reopen": {"lead", "admin"},
}
BUTTON = {
    "assign": ids.ASSIGN_BUTTON,
    "priority": ids.PRIORITY_BUTTON,
    "note": ids.NOTE_BUTTON,
    "cancel": ids.CANCEL_BUTTON,
    "reopen": ids.REOPEN_BUTTON,
}


@pytest.fixture
def rt(app: Flask) -> Runtime:
    rt = runtime_of(app)
    with rt.db.write() as session:
        session.add_all(
            [
                Department(id="police", name="公安派出所", name_en="Police"),
                Unit(id="P-001", name="巡逻一组", kind="patrol", department_id="police"),
            ]
        )
        for role in ROLES:
            accounts.create_user(session, username=f"u-{role}", role=role, password=PASSWORD)
    return rt


@pytest.fixture
def worker(rt: Runtime) -> Worker:
    w = Worker(rt, None, consumer="console-test")
    w.prepare()
    return w


def make_case(rt: Runtime, worker: Worker, case_id: str, status: str, **extra: Any) -> None:
    producer = Producer(rt.redis, rt.settings)
    now = int(time.time() * 1000)
    producer.incident(
        id=case_id,
        status="reported",
        ts=now - 60_000,
        lat=29.37,
        lon=106.26,
        category="noise",
        title="夜间施工",
    )
    producer.incident(id=case_id, status=status, ts=now - 30_000, **extra)
    drain(worker)


def page(client: FlaskClient, path: str = "/dispatch") -> Any:
    response = Dash(client).call(ids.URL, "pathname", path, extra_inputs={ids.URL: path})
    assert response.status_code == 200
    return response.json["response"][ids.PAGE]["children"]


def find(tree: Any, component_id: str) -> dict[str, Any] | None:
    if isinstance(tree, dict):
        props = tree.get("props", {})
        if props.get("id") == component_id:
            return tree
        return find(props.get("children"), component_id)
    if isinstance(tree, list):
        for child in tree:
            found = find(child, component_id)
            if found is not None:
                return found
    return None


def section_hidden(tree: Any, button_id: str) -> bool:
    """Whether the action section holding ``button_id`` is hidden."""

    def walk(node: Any, hidden: bool) -> bool | None:
        if isinstance(node, dict):
            props = node.get("props", {})
            here = hidden or bool(props.get("hidden"))
            if props.get("id") == button_id:
                return here
            return walk(props.get("children"), here)
        if isinstance(node, list):
            for child in node:
                result = walk(child, hidden)
                if result is not None:
                    return result
        return None

    result = walk(tree, False)
    assert result is not None, f"{button_id} is mounted"
    return result


# -- the page ----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_who_may_open_the_console_and_what_it_offers(app: Flask, rt: Runtime, role: str) -> None:
    client = sign_in(app, f"u-{role}")
    response = client.get("/dispatch")
    may_view = role in ("operator", "lead", "admin")
    assert response.status_code == (200 if may_view else 403)
    tree = page(client)
    if not may_view:  # even the page's own callback refuses to render it
        assert find(tree, ids.QUEUE) is None
        return
    assert find(tree, ids.QUEUE) is not None and find(tree, ids.LOGOUT) is not None
    badge = str(find(tree, ids.USER_BADGE))
    assert f"u-{role}" in badge
    for action, button in BUTTON.items():
        assert section_hidden(tree, button) == (role not in ALLOWED[action]), (role, action)
    # An operator's assign form shows only while a new, unassigned case is open (CSS on the
    # panel's lq-unassigned class); a lead's always; the bulk bar is the leads'.
    assign_section = str(find(tree, ids.ACTIONS))
    assert ("lq-act-first" in assign_section) == (role == "operator")
    assert section_hidden(tree, ids.BULK_BUTTON) == (role not in ("lead", "admin"))
    logout = find(tree, ids.LOGOUT)
    assert logout is not None and logout["props"]["action"] == "/logout"
    assert logout["props"]["method"] == "POST"


# -- the permission matrix of the console's actions ------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_the_console_permission_matrix(app: Flask, rt: Runtime, worker: Worker, role: str) -> None:
    client = sign_in(app, f"u-{role}")
    dash = Dash(client)
    for action, button in BUTTON.items():
        case_id = f"UI-{role}-{action}"
        make_case(rt, worker, case_id, "closed" if action == "reopen" else "registered")
        with rt.db.read() as session:
            before = session.get(Case, case_id)
            assert before is not None
        states = {
            ids.CASE_STATE: {"id": case_id, "version": before.version},
            ids.ASSIGN_UNIT: "P-001",
            ids.PRIORITY_SELECT: 1,
            ids.NOTE_TEXT: "电话已联系",
            ids.CANCEL_REASON: "重复上报",
            ids.DISPATCH_LANG: {"lang": "zh-CN", "tz": "Asia/Shanghai", "departments": {}},
        }
        response = dash.call(button, "n_clicks", 1, states)
        if role not in accounts.PERMISSIONS["view_dispatch"]:  # the callback guard's 403
            assert response.status_code == 403 and response.json["code"] == "forbidden"
            with rt.db.read() as session:
                assert session.get(Case, case_id).version == before.version  # type: ignore[union-attr]
            continue
        assert response.status_code == 200, response.get_data(as_text=True)
        result = response.json["response"]
        feedback = result[ids.FEEDBACK]
        shown = str(feedback)
        with rt.db.read() as session:
            after = session.get(Case, case_id)
            assert after is not None
        if role in ALLOWED[action]:
            assert "lq-fb-ok" in shown, (role, action, shown)
            assert after.version == before.version + 1
            assert result[ids.CASE_OPEN]["data"]["id"] == case_id  # the panel refreshes
        else:
            assert "lq-fb-error" in shown and "无权" in shown, (role, action, shown)
            assert after.version == before.version


def test_an_operator_may_not_reassign_an_assigned_case_in_the_console(
    app: Flask, rt: Runtime, worker: Worker
) -> None:
    make_case(rt, worker, "UI-ASSIGNED", "dispatched", unit="P-001")
    make_case(rt, worker, "UI-NEW", "registered")
    dash = Dash(sign_in(app, "u-operator"))
    context = {"lang": "zh-CN", "tz": "Asia/Shanghai", "departments": {}}
    opened = {}
    for case_id in ("UI-ASSIGNED", "UI-NEW"):
        result = dash.call(
            ids.CASE_OPEN, "data", {"id": case_id, "n": 1}, {ids.DISPATCH_LANG: context}
        ).json["response"]
        opened[case_id] = result[ids.ACTIONS]["className"]
    # The panel offers the assign form (and the nearest units' pick buttons) for the new one.
    assert "lq-unassigned" in opened["UI-NEW"] and "lq-unassigned" not in opened["UI-ASSIGNED"]
    with rt.db.read() as session:
        before = session.get(Case, "UI-ASSIGNED")
        assert before is not None
    states = {
        ids.CASE_STATE: {"id": "UI-ASSIGNED", "version": before.version},
        ids.ASSIGN_UNIT: "P-001",
        ids.ASSIGN_DEPARTMENT: "police",
        ids.DISPATCH_LANG: context,
    }
    shown = str(dash.call(ids.ASSIGN_BUTTON, "n_clicks", 1, states).json["response"][ids.FEEDBACK])
    assert "lq-fb-error" in shown and "无权" in shown, shown
    with rt.db.read() as session:
        after = session.get(Case, "UI-ASSIGNED")
        assert after is not None and after.version == before.version
    # A lead's panel offers it for both.
    lead = Dash(sign_in(app, "u-lead"))
    result = lead.call(
        ids.CASE_OPEN, "data", {"id": "UI-ASSIGNED", "n": 2}, {ids.DISPATCH_LANG: context}
    ).json["response"]
    assert "lq-unassigned" not in result[ids.ACTIONS]["className"]


def test_a_stale_version_in_the_console_says_so_and_refreshes_the_panel(
    app: Flask, rt: Runtime, worker: Worker
) -> None:
    make_case(rt, worker, "UI-STALE", "registered")
    dash = Dash(sign_in(app, "u-lead"))
    states = {
        ids.CASE_STATE: {"id": "UI-STALE", "version": 1},  # what an old panel still shows
        ids.ASSIGN_UNIT: "P-001",
        ids.DISPATCH_LANG: {"lang": "zh-CN", "tz": "Asia/Shanghai", "departments": {}},
    }
    result = dash.call(ids.ASSIGN_BUTTON, "n_clicks", 1, states).json["response"]
    assert "刚被他人修改" in str(result[ids.FEEDBACK])
    assert result[ids.CASE_OPEN]["data"]["id"] == "UI-STALE"
    with rt.db.read() as session:
        case = session.get(Case, "UI-STALE")
        assert case is not None and case.unit_id is None


def test_opening_a_case_shows_its_untrusted_text_as_text_and_its_timeline(
    app: Flask, rt: Runtime, worker: Worker
) -> None:
    producer = Producer(rt.redis, rt.settings)
    hostile = '<img src=x onerror="alert(1)">'
    producer.incident(
        id="UI-TXT",
        status="reported",
        ts=int(time.time() * 1000),
        lat=29.37,
        lon=106.26,
        category="dispute",
        title=hostile,
        description="第一行\n第二行",
    )
    drain(worker)
    dash = Dash(sign_in(app, "u-operator"))
    context = {"lang": "zh-CN", "tz": "Asia/Shanghai", "departments": {}}
    result = dash.call(
        ids.CASE_OPEN, "data", {"id": "UI-TXT", "n": 1}, {ids.DISPATCH_LANG: context}
    ).json["response"]
    detail = result[ids.CASE_DETAIL]["children"]
    # The title is a text child of a P component, never markup.
    title = [
        n
        for n in detail["props"]["children"]
        if isinstance(n, dict) and n["props"].get("className") == "lq-case-title"
    ]
    assert title[0]["props"]["children"] == hostile
    assert "新建" in str(result[ids.CASE_TIMELINE])  # the created message, with its effect
    assert result[ids.CASE_STATE]["data"]["id"] == "UI-TXT"
    unknown = dash.call(
        ids.CASE_OPEN, "data", {"id": "NOPE", "n": 2}, {ids.DISPATCH_LANG: context}
    ).json["response"]
    assert "没有这个案件" in str(unknown[ids.CASE_DETAIL])
