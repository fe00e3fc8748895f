"""The write API of responders (issue 13): ``POST /api/v1/cases/<id>/<action>`` with
``action`` one of ``dispatch``, ``progress``, ``transfer``, ``return``, ``urge``,
``callback``, ``close`` (dashboard/services/assignments.py has the rules, shared with the
console). Each body is a pydantic model below (:data:`ASSIGNMENT_BODIES`), from which the
generated OpenAPI document (dashboard/api/openapi.py) describes them; the answer is
``responses.AssignmentActionResult``.

The same rules as the v1 actions (dashboard/api/write.py): the guard has required a
principal (401) and, for browser sessions, a CSRF token; the role is checked per action
(dashboard/policy.py) before the body is read (403); then the input (422, a reason per
field: first the body's model, then the service's own checks), the case (404), its version
(409 ``stale_version``, with the current version) and the lifecycle (409: ``case_closed``,
``illegal_move``, ``already_assigned``, ``has_lead``, ``not_resolved``, ``not_open``); 503
while the database is unreachable. Every refusal through ``api_error`` (one error shape).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DBAPIError

from dashboard.api import responses as out
from dashboard.api.errors import api_error
from dashboard.api.read import answer
from dashboard.api.schemas import field_errors, reason_list
from dashboard.api.types import Ident, Version, optional_text, required_text
from dashboard.api.write import _body
from dashboard.services import assignments as service
from dashboard.services.dispatch import DispatchError
from dashboard.web.auth import client_ip, current_principal
from dashboard.web.context import current_runtime

log = logging.getLogger(__name__)
api_assignments = Blueprint("api_assignments", __name__)
_ACTIONS = ",".join(service.ASSIGNMENT_ACTIONS)

Note = optional_text(service.NOTE_MAX)
Reason = optional_text(service.REASON_MAX)
AssignmentId = Field(ge=1, description="one of the case's assignments")


# -- bodies -------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version


class Assignee(BaseModel):
    """A department, station or unit to dispatch."""

    model_config = ConfigDict(extra="forbid")
    id: Ident
    kind: Literal["department", "station", "unit"]
    role: Literal["lead", "assist", "responder"] | None = Field(
        default=None, description="lead | assist for departments and stations; a unit responds"
    )
    required: bool | None = Field(default=None, description="a co-handler the case waits for")


class DispatchBody(_Body):
    """Dispatch several departments, stations and units in one action (one lead at most; the
    first department leads when none is marked)."""

    assignees: list[Assignee] = Field(min_length=1, max_length=service.MAX_ASSIGNEES)
    note: Note = None  # type: ignore[valid-type]


class ProgressBody(_Body):
    """Record a responder's progress on its behalf (radio, phone): entered_by is you."""

    assignment: int = AssignmentId
    status: Literal["accepted", "en_route", "on_scene", "done", "returned", "transferred"]
    to: Ident | None = None
    reason: Reason = None  # type: ignore[valid-type]
    note: Note = None  # type: ignore[valid-type]


class TransferBody(_Body):
    """转办: the assignment ends, the receiving department gets its own (the chain is kept)."""

    assignment: int = AssignmentId
    to: Ident
    reason: required_text(service.REASON_MAX, "why it is transferred")  # type: ignore[valid-type]
    note: Note = None  # type: ignore[valid-type]


class ReturnBody(_Body):
    """退回: not this assignee's remit, back to the center."""

    assignment: int = AssignmentId
    reason: required_text(service.REASON_MAX, "why it is returned")  # type: ignore[valid-type]
    note: Note = None  # type: ignore[valid-type]


class UrgeBody(_Body):
    """督办: a lead urges a responder (the note says what is asked)."""

    assignment: int = AssignmentId
    note: required_text(service.NOTE_MAX, "what is asked")  # type: ignore[valid-type]


class CallbackBody(_Body):
    """回访: the citizen's answer after resolution; unsatisfied sends it back (rework)."""

    result: Literal["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]
    note: Note = None  # type: ignore[valid-type]


class CloseBody(_Body):
    """核查结案: close a resolved case; without a callback a reason is needed (unless its
    category or source is exempt)."""

    reason: Reason = None  # type: ignore[valid-type]
    note: Note = None  # type: ignore[valid-type]


ASSIGNMENT_BODIES: Mapping[str, type[_Body]] = {
    "dispatch": DispatchBody,
    "progress": ProgressBody,
    "transfer": TransferBody,
    "return": ReturnBody,
    "urge": UrgeBody,
    "callback": CallbackBody,
    "close": CloseBody,
}
assert set(ASSIGNMENT_BODIES) == set(service.ASSIGNMENT_ACTIONS)


@api_assignments.post(f"/api/v1/cases/<case_id>/<any({_ACTIONS}):action>")
def assignment_action(case_id: str, action: str) -> Response:
    """One responder action on one case; the body carries the case's ``version``."""
    principal = current_principal()
    try:
        service.check_permission(principal, action)  # 403 before anything about the input
        body = _body()
        model = ASSIGNMENT_BODIES[action]
        try:
            model.model_validate(body)
        except ValidationError as exc:
            fields = field_errors(exc, model)
            raise DispatchError(
                422, "invalid input: " + reason_list(fields), fields, code="bad_input"
            ) from None
        # The service checks again what a model cannot (the case, its assignments): the
        # console sends it the same bodies.
        outcome = service.perform(
            current_runtime(), principal=principal, action=action, case_id=case_id, body=body,
            ip=client_ip(),
        )  # fmt: skip
    except DispatchError as exc:
        return api_error(exc.status, exc.code, exc.error, exc.fields, version=exc.current_version)
    except DBAPIError as exc:
        log.warning("assignment API: database unavailable (%s)", exc.__class__.__name__)
        return api_error(503, "unavailable", "the database is unavailable, try again")
    result = {
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
    return answer(out.AssignmentActionResult, result)
