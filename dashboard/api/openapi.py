"""The OpenAPI 3.0 description of the HTTP API, served at ``/api/v1/openapi.json``.

Written by hand next to the code it describes (dashboard/api/read.py, api/write.py,
ops.py) and checked against the running app by schemathesis in the tests
(tests/integration/test_api_schema.py): every documented status, no 500s, error
bodies with reasons, authentication enforced where declared.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from dashboard.api.assignments import paths as assignment_paths
from dashboard.contract.entries import STATUSES
from dashboard.services.dispatch import ACTIONS, NOTE_MAX, REASON_MAX

openapi = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,64}$"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "a bad parameter, with the field and a reason",
        401: "no valid session or token",
        403: "the role may not do this",
        404: "not found",
        409: "a stale version or a closed case",
        413: "a body over 1 MiB",
        422: "an invalid body (not a JSON object, nested too deep, text that cannot be "
        "stored), with a reason per field; nothing is written",
        503: "the database or Redis is unavailable; retry",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


def _get(summary: str, ok: dict[str, Any], params: list[dict[str, Any]] | None = None,
         errors: tuple[int, ...] = (400, 401, 403)) -> dict[str, Any]:  # fmt: skip
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": {"200": _json(ok, "OK"), **_errors(*errors)},
        }
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


# A note or reason: text without control characters (tab and newlines allowed), trimmed.
_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
_TEXT_CHARS = f"[^{_CONTROL}]"
_NON_BLANK = f"^{_TEXT_CHARS}*[^\\s{_CONTROL}]{_TEXT_CHARS}*$"  # something left after trimming


def _text(limit: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit, "pattern": f"^{_TEXT_CHARS}*$"}


def _action(action: str) -> dict[str, Any]:
    """``POST /api/v1/cases/{id}/<action>``: each action's body (services/dispatch.py)."""
    fields: dict[str, Any] = {
        "version": {"type": "integer", "minimum": 1, "description": "the case's version"},
        "note": _text(NOTE_MAX),
    }
    required = ["version"]
    extra: dict[str, Any] = {}
    if action == "assign":
        fields |= {"unit": _ID, "department": _ID}
        extra = {"anyOf": [{"required": ["unit"]}, {"required": ["department"]}]}
    elif action == "priority":
        fields["priority"] = {"type": "integer", "minimum": 1, "maximum": 4}
        required.append("priority")
    elif action == "note":
        fields["note"] = {**_text(NOTE_MAX), "pattern": _NON_BLANK}
        required.append("note")
    elif action == "cancel":
        fields["reason"] = {**_text(REASON_MAX), "pattern": _NON_BLANK}
        required.append("reason")
    body = {
        "type": "object",
        "required": required,
        "properties": fields,
        "additionalProperties": False,
        **extra,
    }
    return {
        "post": {
            "summary": f"{action}: a dispatch action on one case (the console's rules)",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": _ID}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": _json({"type": "object", "required": ["case", "change"]}, "done"),
                **_errors(401, 403, 404, 409, 413, 422, 503),
            },
        }
    }


def spec() -> dict[str, Any]:
    geo = {"type": "object", "required": ["type", "features"],
           "properties": {"type": {"type": "string"}, "features": {"type": "array"}}}  # fmt: skip
    status = {"type": "string", "enum": list(STATUSES)}
    case = {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": status},
    }
    # An ISO date, an ISO datetime (local time zone without an offset) or epoch ms; an
    # empty value counts as absent (the default applies). Years 1970-2999 as written.
    years = r"^(19[7-9][0-9]|2[0-9]{3})-"
    date_or_time = {
        "anyOf": [
            {"type": "string", "format": "date", "pattern": years},
            {"type": "string", "format": "date-time", "pattern": years},
            {"type": "string", "pattern": r"^([0-9]{10,13})?$"},
        ]
    }
    one = "(" + "|".join(STATUSES) + ")"
    status_list = {"type": "string", "pattern": f"^({one}(,{one})*)?$"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Lianqin API",
            "version": "1",
            "description": "Cases, units, KPIs and the district's geography; the dispatch "
            "console's actions. Authenticate with `Authorization: Bearer <token>` "
            "(`lianqin tokens create`).",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/cases/{id}": {
                "get": {
                    "summary": "One case with its timeline",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": _ID}],
                    "responses": {"200": _json(case, "the case"), **_errors(400, 401, 403, 404)},
                }
            },
            "/api/v1/cases": _get(
                "Cases, newest first",
                {"type": "array", "items": case},
                [
                    _query("status", status_list, "one or more statuses, comma-separated"),
                    _query("since", date_or_time, "ISO date or datetime, or epoch ms"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "1..1000"),
                ],
            ),
            "/api/v1/units": _get("Units and their latest positions", {"type": "array"}),
            "/api/v1/kpis": _get(
                "The KPIs of a period (docs/kpis.md's definitions)",
                {"type": "object", "required": ["from", "to", "reported"]},
                [
                    _query("from", date_or_time, "ISO date or datetime (default: today)"),
                    _query("to", date_or_time, "ISO date (inclusive) or datetime (exclusive)"),
                ],
            ),
            "/api/v1/geo/basemap": _get(
                "The district's outline, roads and water (GeoJSON)",
                geo,
                [_query("crs", {"type": "string", "enum": ["wgs84", "gcj02"]}, "display datum")],
            ),
            "/api/v1/geo/grids": _get(
                "Grids (GeoJSON)",
                geo,
                [
                    _query("level", {"type": "string", "enum": ["grid", "micro"]}, "grid level"),
                    _query("crs", {"type": "string", "enum": ["wgs84", "gcj02"]}, "display datum"),
                ],
            ),
            "/api/v1/geo/zones": _get(
                "Patrol zones (GeoJSON)",
                geo,
                [_query("crs", {"type": "string", "enum": ["wgs84", "gcj02"]}, "display datum")],
            ),
            "/api/v1/geo/facilities": _get(
                "Stations, cameras, sensors (GeoJSON)",
                geo,
                [
                    _query(
                        "kind",
                        {"type": "string", "enum": ["camera", "sensor", "station"]},
                        "one kind",
                    ),
                    _query("crs", {"type": "string", "enum": ["wgs84", "gcj02"]}, "display datum"),
                ],
            ),
            **{f"/api/v1/cases/{{id}}/{action}": _action(action) for action in ACTIONS},
            **assignment_paths(_errors, _json),  # issue 13: responders
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string", "description": "the reason, for people"},
                        "field": {"type": "string", "description": "the parameter at fault"},
                        "code": {"type": "string", "description": "write API: e.g. bad_input"},
                        "fields": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "write API: a reason per body field",
                        },
                    },
                }
            },
        },
    }


@openapi.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    """The description itself is public: it holds no data."""
    return jsonify(spec())
