"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/v1/openapi.json``.

Generated from the models the handlers validate and answer with (dashboard/api/schemas.py
for bodies and queries, api/responses.py for answers, api/types.py for the constrained
types): pydantic's JSON Schema is OpenAPI 3.1's, and every model is a component under
``#/components/schemas``. Only the paths, statuses and summaries are written here. Checked
against the running app by schemathesis in the tests (tests/integration/test_api_schema.py):
every documented status, response bodies conforming to their schemas, no 500s, error bodies
with reasons, authentication enforced where declared.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from dashboard.api import assignments as responders
from dashboard.api import responses as out
from dashboard.api import schemas as inp
from dashboard.api.types import ID_SCHEMA_PATTERN

openapi = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "a bad parameter, with a reason per field",
    401: "no valid session or token",
    403: "the role may not do this",
    404: "not found",
    409: "a stale version (with the case's current version) or a closed case",
    413: "a body over 1 MiB",
    422: "an invalid body (not a JSON object, nested too deep, text that cannot be "
    "stored), with a reason per field; nothing is written",
    503: "the database or Redis is unavailable; retry",
}
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (inp.Error, "serialization"),
    *((body, "validation") for body in inp.ACTION_BODIES.values()),
    *((body, "validation") for body in responders.ASSIGNMENT_BODIES.values()),
    (out.CaseOut, "serialization"),
    (out.CaseDetail, "serialization"),
    (out.UnitOut, "serialization"),
    (out.Kpis, "serialization"),
    (out.FeatureCollection, "serialization"),
    (out.ActionResult, "serialization"),
    (out.AssignmentActionResult, "serialization"),
]


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(_ref(inp.Error), _ERRORS[code]) for code in codes}


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI query parameters (all optional)."""
    schema = model.model_json_schema(ref_template=REF, by_alias=True)
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
        params.append(
            {"name": name, "in": "query", "required": False, "schema": prop,
             "description": schema["properties"][name].get("description", "")}
        )  # fmt: skip
    return params


_ID_PARAM = {
    "name": "id", "in": "path", "required": True,
    "schema": {"type": "string", "pattern": ID_SCHEMA_PATTERN},
}  # fmt: skip


def _get(
    summary: str,
    ok: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (400, 401, 403),
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": {"200": _json(ok, "OK"), **_errors(*errors)},
        }
    }


def _action(
    action: str, body: type[BaseModel], result: type[BaseModel] = out.ActionResult
) -> dict[str, Any]:
    """``POST /api/v1/cases/{id}/<action>``: each action's body (dashboard/api/schemas.py)."""
    return {
        "post": {
            "summary": f"{action}: {(body.__doc__ or '').strip()} (the console's rules)",
            "parameters": [_ID_PARAM],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(body)}},
            },
            "responses": {
                "200": _json(_ref(result), "done"),
                **_errors(401, 403, 404, 409, 413, 422, 503),
            },
        }
    }


@cache
def spec() -> dict[str, Any]:
    """The whole document (built once per process: it depends on nothing but the code)."""
    _, definitions = models_json_schema(_MODELS, ref_template=REF)
    geo = _ref(out.FeatureCollection)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lianqin API",
            "version": "1",
            "description": "Cases, units, KPIs and the district's geography; the dispatch "
            "console's actions. Authenticate with `Authorization: Bearer <token>` "
            "(`lianqin tokens create`). Every error answers "
            '`{"error": reason, "code": machine_code, "fields": {field: reason}}`.',
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/cases/{id}": {
                "get": {
                    "summary": "One case with its timeline",
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": _json(_ref(out.CaseDetail), "the case"),
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
            "/api/v1/cases": _get(
                "Cases, newest first",
                {"type": "array", "items": _ref(out.CaseOut)},
                _query(inp.CasesQuery),
            ),
            "/api/v1/units": _get(
                "Units and their latest positions", {"type": "array", "items": _ref(out.UnitOut)}
            ),
            "/api/v1/kpis": _get(
                "The KPIs of a period (docs/kpis.md's definitions)",
                _ref(out.Kpis),
                _query(inp.KpisQuery),
            ),
            "/api/v1/geo/basemap": _get(
                "The district's outline, roads and water (GeoJSON)", geo, _query(inp.GeoQuery)
            ),
            "/api/v1/geo/grids": _get("Grids (GeoJSON)", geo, _query(inp.GridsQuery)),
            "/api/v1/geo/zones": _get("Patrol zones (GeoJSON)", geo, _query(inp.GeoQuery)),
            "/api/v1/geo/facilities": _get(
                "Stations, cameras, sensors (GeoJSON)", geo, _query(inp.FacilitiesQuery)
            ),
            **{
                f"/api/v1/cases/{{id}}/{action}": _action(action, body)
                for action, body in inp.ACTION_BODIES.items()
            },
            **{  # issue 13: the responders' actions (dashboard/api/assignments.py)
                f"/api/v1/cases/{{id}}/{action}": _action(action, body, out.AssignmentActionResult)
                for action, body in responders.ASSIGNMENT_BODIES.items()
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": definitions["$defs"],
        },
    }


@openapi.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    """The description itself is public: it holds no data."""
    return jsonify(spec())
