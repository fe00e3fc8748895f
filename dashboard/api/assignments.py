"""The write API of responders (issue 13): ``POST /api/v1/cases/<id>/<action>`` with
``action`` one of ``dispatch``, ``progress``, ``transfer``, ``return``, ``urge``,
``callback``, ``close`` (dashboard/services/assignments.py has the rules, shared with the
console), and their OpenAPI description (:func:`paths`, merged into
``/api/v1/openapi.json`` by dashboard/api/openapi.py).

The same rules as the v1 actions (dashboard/api/write.py): the guard has required a
principal (401) and, for browser sessions, a CSRF token; the role is checked per action
before the body is read (403); then the input (422, a reason per field), the case (404),
its version (409 ``stale_version``, with the current version) and the lifecycle (409:
``case_closed``, ``illegal_move``, ``already_assigned``, ``has_lead``, ``not_resolved``,
``not_open``); 503 while the database is unreachable. The answer: the case after the
change with its assignments, the change (its lq:changes entry) and the lq:tasks written.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy.exc import DBAPIError

from dashboard.api.write import _body
from dashboard.assignments import CALLBACK_RESULTS, KINDS
from dashboard.runtime import Runtime
from dashboard.services import assignments as service
from dashboard.services.dispatch import DispatchError
from dashboard.web.auth import client_ip, current_principal

log = logging.getLogger(__name__)
api_assignments = Blueprint("api_assignments", __name__)
_ACTIONS = ",".join(service.ASSIGNMENT_ACTIONS)


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["lianqin"]
    return rt


def _refuse(status: int, body: dict[str, Any]) -> tuple[Response, int]:
    """Every refusal in the write API's error shape (``error``, ``code``, ``fields``)."""
    return jsonify(body), status


def _refusal(exc: DispatchError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.error, "code": exc.code}
    if exc.fields:
        body["fields"] = exc.fields
    if exc.current_version is not None:
        body["version"] = exc.current_version
    return body


@api_assignments.post(f"/api/v1/cases/<case_id>/<any({_ACTIONS}):action>")
def assignment_action(case_id: str, action: str) -> Response | tuple[Response, int]:
    """One responder action on one case; the body carries the case's ``version``."""
    principal = current_principal()
    try:
        service.check_permission(principal, action)  # 403 before anything about the input
        body = _body()
        outcome = service.perform(
            _runtime(), principal=principal, action=action, case_id=case_id, body=body,
            ip=client_ip(),
        )  # fmt: skip
    except DispatchError as exc:
        return _refuse(exc.status, _refusal(exc))
    except DBAPIError as exc:
        log.warning("assignment API: database unavailable (%s)", exc.__class__.__name__)
        return _refuse(
            503, {"error": "the database is unavailable, try again", "code": "unavailable"}
        )
    return jsonify(
        {
            "case": outcome.case,
            "change": {
                "id": outcome.change_id,
                "action": action,
                "effect": outcome.effect,
                "actor": outcome.fields["actor"],
                "version": outcome.case["version"],
            },
            "tasks": [task_id for task_id, _ in outcome.tasks],
        }
    )


# -- OpenAPI ------------------------------------------------------------------------------
_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,64}$"}


def _text(limit: int, *, required: bool = False) -> dict[str, Any]:
    pattern = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$" if required else f"^[^{_CONTROL}]*$"
    return {"type": "string", "maxLength": limit, "pattern": pattern}


_ASSIGNEE = {
    "type": "object",
    "required": ["id", "kind"],
    "additionalProperties": False,
    "properties": {
        "id": _ID,
        "kind": {"type": "string", "enum": list(KINDS)},
        "role": {"type": "string", "enum": ["lead", "assist", "responder"],
                 "description": "lead | assist for departments and stations; a unit responds"},
        "required": {"type": "boolean", "description": "a co-handler the case waits for"},
    },
}  # fmt: skip
_VERSION = {"type": "integer", "minimum": 1, "description": "the case's version as you saw it"}
_ASSIGNMENT = {"type": "integer", "minimum": 1, "description": "one of the case's assignments"}


def _schema(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["version", *required],
        "additionalProperties": False,
        "properties": {"version": _VERSION, **properties},
    }


BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "dispatch": (
        "dispatch several departments, stations and units in one action (one lead at most; "
        "the first department leads when none is marked)",
        _schema(["assignees"], assignees={"type": "array", "minItems": 1,
                "maxItems": service.MAX_ASSIGNEES, "items": _ASSIGNEE},
                note=_text(service.NOTE_MAX)),
    ),
    "progress": (
        "record a responder's progress on its behalf (radio, phone): entered_by is you",
        _schema(["assignment", "status"], assignment=_ASSIGNMENT,
                status={"type": "string", "enum": ["accepted", "en_route", "on_scene", "done",
                                                   "returned", "transferred"]},
                to=_ID, reason=_text(service.REASON_MAX), note=_text(service.NOTE_MAX)),
    ),
    "transfer": (
        "转办: the assignment ends, the receiving department gets its own (the chain is kept)",
        _schema(["assignment", "to", "reason"], assignment=_ASSIGNMENT, to=_ID,
                reason=_text(service.REASON_MAX, required=True),
                note=_text(service.NOTE_MAX)),
    ),
    "return": (
        "退回: not this assignee's remit, back to the center",
        _schema(["assignment", "reason"], assignment=_ASSIGNMENT,
                reason=_text(service.REASON_MAX, required=True),
                note=_text(service.NOTE_MAX)),
    ),
    "urge": (
        "督办: a lead urges a responder (the note says what is asked)",
        _schema(["assignment", "note"], assignment=_ASSIGNMENT,
                note=_text(service.NOTE_MAX, required=True)),
    ),
    "callback": (
        "回访: the citizen's answer after resolution; unsatisfied sends it back (rework)",
        _schema(["result"], result={"type": "string", "enum": list(CALLBACK_RESULTS)},
                note=_text(service.NOTE_MAX)),
    ),
    "close": (
        "核查结案: close a resolved case; without a callback a reason is needed (unless its "
        "category or source is exempt)",
        _schema([], reason=_text(service.REASON_MAX), note=_text(service.NOTE_MAX)),
    ),
}  # fmt: skip


def paths(errors: Any, json: Any) -> dict[str, Any]:
    """The actions' OpenAPI paths (``errors``/``json``: openapi.py's helpers)."""
    return {
        f"/api/v1/cases/{{id}}/{action}": {
            "post": {
                "summary": f"{action}: {summary}",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": _ID}],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": schema}}},
                "responses": {
                    "200": json({"type": "object", "required": ["case", "change", "tasks"]},
                                "done: the case with its assignments, the change, the tasks"),
                    **errors(401, 403, 404, 409, 413, 422, 503),
                },
            }
        }
        for action, (summary, schema) in BODIES.items()
    }  # fmt: skip
