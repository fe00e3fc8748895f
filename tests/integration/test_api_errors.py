"""One error shape on every /api answer, whoever refuses (the guard, the body limits, the read
or the write API, Flask's routing): ``{"error", "code", "fields"}`` and nothing else but a
stale version's ``version`` — and the Error schema of the OpenAPI document says so."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from helpers import make_token, seed_case

from dashboard.api.schemas import Error
from dashboard.runtime import Runtime
from dashboard.web.app import runtime_of

SHAPE = {"error", "code", "fields"}


@pytest.fixture
def rt(app: Flask) -> Runtime:
    rt = runtime_of(app)
    seed_case(rt, "HZ-E-1")
    return rt


def _check(response: Any, status: int, code: str, fields: set[str] | None = None) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == SHAPE | ({"version"} if "version" in body else set()), body
    assert body["code"] == code and isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["fields"], dict)
    if fields is not None:
        assert set(body["fields"]) == fields, body
    Error.model_validate(body)  # the documented schema
    return body


def test_every_refusal_has_the_one_shape(app: Flask, rt: Runtime) -> None:
    anonymous = app.test_client()
    viewer = {"Authorization": f"Bearer {make_token(rt, 'viewer')}"}
    lead = {"Authorization": f"Bearer {make_token(rt, 'lead')}"}
    client = app.test_client()
    _check(anonymous.get("/api/v1/cases"), 401, "unauthenticated", set())
    _check(
        client.get("/api/v1/cases", headers={"Authorization": "Bearer nope"}), 401,
        "unauthenticated",
    )  # fmt: skip
    _check(client.get("/api/v1/cases?limit=0", headers=viewer), 400, "bad_request", {"limit"})
    _check(
        client.get("/api/v1/cases?limit=0&status=x", headers=viewer), 400, "bad_request",
        {"limit", "status"},
    )  # fmt: skip
    _check(client.get("/api/v1/cases/bad%20id", headers=viewer), 400, "bad_request", {"id"})
    _check(client.get("/api/v1/cases/HZ-NONE", headers=viewer), 404, "not_found", {"id"})
    _check(client.get("/api/v1/kpis?from=2026-02-02&to=2026-02-01", headers=viewer), 400,
           "bad_request", {"to"})  # fmt: skip
    _check(client.get("/api/v1/geo/grids?crs=utm", headers=viewer), 400, "bad_request", {"crs"})
    # an unknown path under /api/ (dashboard/web/notfound.py), whatever the method
    _check(client.get("/api/v1/case/HZ-E-1", headers=viewer), 404, "not_found")
    _check(client.post("/api/v1/cases/HZ-E-1/bogus", json={}, headers=lead), 404, "not_found")
    note = "/api/v1/cases/HZ-E-1/note"
    _check(client.post(note, json={"note": "x", "version": 1}, headers=viewer), 403, "forbidden")
    _check(client.post(note, json={"version": 1}, headers=lead), 422, "bad_input", {"note"})
    as_json = {**lead, "Content-Type": "application/json"}
    _check(client.post(note, data="[", headers=as_json), 422, "bad_input", {"body"})
    _check(client.post("/_dash-update-component", data="[", headers=as_json), 400, "bad_request")
    _check(client.post(note, data="x" * (1024 * 1024 + 1), headers=lead), 413, "too_large")
    stale = _check(
        client.post(note, json={"note": "x", "version": 9}, headers=lead), 409, "stale_version",
        {"version"},
    )  # fmt: skip
    assert stale["version"] == 1


def test_a_browser_without_csrf_gets_the_shape_too(app: Flask, rt: Runtime) -> None:
    client = app.test_client()
    assert client.get(f"/wall?token={make_token(rt, 'viewer')}").status_code == 200
    response = client.post("/api/v1/cases/HZ-E-1/note", json={"note": "x", "version": 1})
    _check(response, 400, "csrf_failed")


def test_the_document_describes_the_shape(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").json
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == SHAPE
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                schema = answer["content"]["application/json"]["schema"]
                if status.startswith("4") or status.startswith("5"):
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method)
