"""The one error shape of every ``/api/`` answer (and of the JSON answers of the guard and of
Dash's endpoints)::

    {"error": "a sentence for people", "code": "a_machine_code", "fields": {"name": "reason"}}

``fields`` is always there (empty when no one field is at fault); a stale-version 409 of the
write API also carries ``version``, the case's current one. The OpenAPI document describes it
as the ``Error`` schema (dashboard/api/schemas.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify

# The code an error gets when its raiser names none: one per HTTP status.
STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_input",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def code_for(status: int) -> str:
    """The default machine code of an HTTP status."""
    return STATUS_CODES.get(status, "error" if status >= 500 else "bad_request")


def error_body(
    code: str, message: str, fields: Mapping[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """The error shape as a dict (``extra``: e.g. ``version`` on a stale-version 409)."""
    body: dict[str, Any] = {"error": message, "code": code, "fields": dict(fields or {})}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def api_error(
    status: int,
    code: str | None,
    message: str,
    fields: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A JSON error response in the API's one shape; ``code`` None: the status's default.

    Needs an application context (it uses the app's JSON provider)."""
    response = jsonify(error_body(code or code_for(status), message, fields, **extra))
    response.status_code = status
    return response
