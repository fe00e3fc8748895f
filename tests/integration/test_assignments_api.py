"""The responders' write API (dashboard/api/assignments.py): dispatch several assignees,
progress, transfer, return, urge, callback, close over HTTP, with the same 401/403/404/409/
422 rules as the v1 actions; GET /api/v1/cases/<id> with its assignments; the OpenAPI
document lists every action."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import drain, make_token

from dashboard.models import Department, Unit
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker.loop import Worker


@pytest.fixture
def loaded(app: Flask, rt: Runtime) -> Runtime:
    with rt.db.write() as session:
        session.add_all(
            [Department(id="police", name="公安"), Department(id="justice", name="司法"),
             Department(id="market", name="市场监管"), Unit(id="P-017", name="P-017")]
        )  # fmt: skip
    Producer(rt.redis, rt.settings).incident(
        id="J-1", status="registered", ts=int(time.time() * 1000) - 60_000, lat=29.37,
        lon=106.26, category="dispute",
    )  # fmt: skip
    w = Worker(rt, None, consumer="api-asg")
    w.prepare()
    drain(w)
    return rt


def post(client: FlaskClient, action: str, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"/api/v1/cases/J-1/{action}", json=body, headers=headers)


def version(client: FlaskClient, token: str) -> int:
    data = client.get("/api/v1/cases/J-1", headers={"Authorization": f"Bearer {token}"}).json
    assert data is not None
    return int(data["version"])


DISPATCH = {"assignees": [{"id": "police", "kind": "department", "role": "lead"},
                          {"id": "justice", "kind": "department", "required": True},
                          {"id": "P-017", "kind": "unit"}], "note": "联勤"}  # fmt: skip


def test_the_joint_flow_over_http(app: Flask, loaded: Runtime) -> None:
    client = app.test_client()
    lead = make_token(loaded, role="lead", name="lead-a")
    op = make_token(loaded, role="operator", name="op-a")
    r = post(client, "dispatch", {**DISPATCH, "version": version(client, lead)}, lead)
    assert r.status_code == 200, r.json
    data = r.json
    assert data["change"]["effect"] == "dispatched" and len(data["tasks"]) == 3
    assert {a["assignee"]: a["role"] for a in data["case"]["assignments"]} == {
        "police": "lead", "justice": "assist", "P-017": "responder",
    }  # fmt: skip
    ids = {a["assignee"]: a["id"] for a in data["case"]["assignments"]}
    # The change is on lq:changes, the tasks on lq:tasks.
    changes = [f[b"action"] for _, f in loaded.redis.xrange(loaded.keys.changes)]
    assert changes == [b"dispatch"]
    assert loaded.redis.xlen(loaded.keys.tasks) == 3
    # An operator records the unit's arrival by phone; the case follows.
    r = post(client, "progress", {"assignment": ids["P-017"], "status": "on_scene",
                                  "version": version(client, op)}, op)  # fmt: skip
    assert r.status_code == 200, r.json
    assert r.json["case"]["status"] == "on_scene"
    r = post(client, "urge", {"assignment": ids["justice"], "note": "请尽快签收",
                              "version": version(client, lead)}, lead)  # fmt: skip
    assert r.status_code == 200
    r = post(client, "transfer", {"assignment": ids["justice"], "to": "market",
                                  "reason": "属市场监管", "version": version(client, lead)},
             lead)  # fmt: skip
    assert r.status_code == 200, r.json
    for who in ("police", "market"):
        case = client.get("/api/v1/cases/J-1", headers={"Authorization": f"Bearer {lead}"}).json
        aid = next(a["id"] for a in case["assignments"]
                   if a["assignee"] == who and a["status"] != "transferred")  # fmt: skip
        r = post(client, "progress", {"assignment": aid, "status": "done", "note": "办结",
                                      "version": case["version"]}, op)  # fmt: skip
        assert r.status_code == 200, r.json
    assert r.json["case"]["status"] == "resolved"
    r = post(client, "callback", {"result": "unsatisfied", "version": version(client, op)}, op)
    assert r.status_code == 200 and r.json["change"]["effect"] == "rework"
    assert r.json["case"]["status"] == "dispatched" and r.json["case"]["rework_count"] == 1
    case = client.get("/api/v1/cases/J-1", headers={"Authorization": f"Bearer {lead}"}).json
    assert case["callback"]["result"] == "unsatisfied"
    assert [a["status"] for a in case["assignments"] if a["assignee"] == "police"] == [
        "done", "dispatched",
    ]  # fmt: skip


def test_the_same_refusals_as_the_v1_actions(app: Flask, loaded: Runtime) -> None:
    client = app.test_client()
    lead = make_token(loaded, role="lead", name="lead-b")
    viewer = make_token(loaded, role="viewer", name="viewer-b")
    v = version(client, lead)
    assert post(client, "dispatch", {**DISPATCH, "version": v}, None).status_code == 401
    r = post(client, "dispatch", {**DISPATCH, "version": v}, viewer)
    assert (r.status_code, r.json["code"]) == (403, "forbidden")
    r = client.post("/api/v1/cases/NOPE/dispatch", json={**DISPATCH, "version": 1},
                    headers={"Authorization": f"Bearer {lead}"})  # fmt: skip
    assert (r.status_code, r.json["code"]) == (404, "not_found")
    r = post(client, "dispatch", {**DISPATCH, "version": v + 5}, lead)
    assert (r.status_code, r.json["code"], r.json["version"]) == (409, "stale_version", v)
    r = post(client, "dispatch", {"assignees": [], "version": v, "extra": 1}, lead)
    assert r.status_code == 422 and {"assignees", "extra"} <= set(r.json["fields"])
    r = post(client, "callback", {"result": "great", "version": v}, lead)
    assert r.status_code == 422 and "result" in r.json["fields"]
    r = post(client, "callback", {"result": "satisfied", "version": v}, lead)
    assert (r.status_code, r.json["code"]) == (409, "not_resolved")
    r = post(client, "close", {"version": v}, lead)
    assert (r.status_code, r.json["code"]) == (409, "not_resolved")
    headers = {"Authorization": f"Bearer {lead}", "Content-Type": "application/json"}
    r = client.post("/api/v1/cases/J-1/dispatch", data="not json", headers=headers)
    assert r.status_code == 422


def test_openapi_lists_every_action(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert spec is not None
    for action in ("dispatch", "progress", "transfer", "return", "urge", "callback", "close"):
        op = spec["paths"][f"/api/v1/cases/{{id}}/{action}"]["post"]
        assert {"200", "401", "403", "404", "409", "422"} <= set(op["responses"])
