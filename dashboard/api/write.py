"""The write API for integrators: the dispatch console's actions over HTTP.

``POST /api/v1/cases/<id>/<action>`` with a JSON body, ``action`` one of ``assign``,
``priority``, ``note``, ``cancel``, ``reopen`` (dashboard/services/dispatch.py has the
rules, shared with the console). The guard (dashboard/web/auth.py) has already required a
principal (401) and, for browser sessions, a CSRF token; the role is checked per
action here (403). Answers: 200 with the case after the change, 401, 403, 404, 409 on a
stale version or a closed case, 413 for a body over 1 MiB, 422 with a reason per field
(a body that is not a JSON object, nests too deep, or holds text that cannot be stored —
a lone surrogate or a NUL — is refused before anything is written), 503 while the
database or Redis is unreachable — never a 500 for anything a client sends.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from dashboard.api import responses as out
from dashboard.api.errors import api_error
from dashboard.api.read import answer
from dashboard.services import dispatch
from dashboard.web.auth import client_ip, current_principal
from dashboard.web.bodies import BodyRefused
from dashboard.web.context import current_runtime

log = logging.getLogger(__name__)
api_write = Blueprint("api_write", __name__)
_ACTIONS = ",".join(dispatch.ACTIONS)



def _body() -> Any:
    """The request's JSON, or a 422 that says what is wrong with it (dashboard/web/bodies.py
    refuses too-deep nesting and text that cannot be stored, naming the field)."""
    try:
        return request.get_json()
    except BodyRefused as exc:
        if exc.field is None:  # not JSON at all, or nested too deep
            raise dispatch.DispatchError(
                422, f"the body must be JSON: {exc.description}", {"body": "not JSON"},
                code="bad_input",
            ) from None  # fmt: skip
        field = exc.field
        raise dispatch.DispatchError(
            422, f"invalid body: {field}: {exc.description}", {field: exc.description or ""},
            code="bad_input",
        ) from None  # fmt: skip
    except RequestEntityTooLarge:
        raise  # 413, in the API's error shape
    except HTTPException as exc:
        detail = f" ({exc.description[:100]})" if exc.description else ""
        raise dispatch.DispatchError(
            422, f"the body must be JSON (Content-Type: application/json){detail}",
            {"body": "not JSON"}, code="bad_input",
        ) from None  # fmt: skip


@api_write.post(f"/api/v1/cases/<case_id>/<any({_ACTIONS}):action>")
def case_action(case_id: str, action: str) -> Response:
    """Apply one action to one case; the body carries the case's ``version``."""
    principal = current_principal()
    try:
        dispatch.check_permission(principal, action)  # 403 before anything about the input
        body = _body()
        outcome = dispatch.perform(
            current_runtime(),
            principal=principal,
            action=action,
            case_id=case_id,
            body=body,
            ip=client_ip(),
        )[0]
    except dispatch.DispatchError as exc:
        return api_error(exc.status, exc.code, exc.error, exc.fields, version=exc.current_version)
    except DBAPIError as exc:
        log.warning("write API: database unavailable (%s)", exc.__class__.__name__)
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
        "warnings": outcome.warnings,
    }
    return answer(out.ActionResult, result)
