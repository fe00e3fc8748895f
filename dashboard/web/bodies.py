"""Request bodies at the boundary: how big, how deep, and which text may come in.

* **Size.** ``MAX_CONTENT_LENGTH`` (``MAX_BODY``, 1 MiB) for every request: forms, the
  API and Dash's callbacks alike. The largest body a real page sends is a Dash callback
  of the dispatch console at a few kB (measured: README "Security settings"), so 1 MiB
  leaves two orders of magnitude of headroom. A declared ``Content-Length`` above it is
  refused with 413 before a byte is read, before authentication; a chunked body is read
  up to the limit and refused whole (werkzeug alone would silently truncate it).
* **Depth.** Python's ``json`` recurses: 100,000 nested ``[`` raise ``RecursionError``,
  which no ``except ValueError`` catches. Every JSON body is decoded here, and anything
  nested deeper than ``MAX_DEPTH`` is refused (no page or API body goes past ~8 levels).
* **Text.** JSON can carry a lone surrogate (``"\\ud800"``): a Python string that cannot
  be encoded as UTF-8, so it breaks the response, the database driver and every later
  reader of the row. It can also carry U+0000, which PostgreSQL cannot store in text.
  Neither is ever legitimate here: both are refused with 422, naming the field, before
  any handler sees the body. (Forms and query strings cannot carry a surrogate: werkzeug
  decodes them with replacement characters. They can carry a NUL: the fields of theirs
  that reach the database — usernames, ids, filter values — check their characters.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Request, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    RequestEntityTooLarge,
    UnprocessableEntity,
)

MAX_BODY = 1024 * 1024
MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyError(ValueError):
    """A JSON body refused at the boundary, with the HTTP status, a reason and the field."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


def _field(path: list[str]) -> str:
    return ".".join(path)[:100] or "body"


def check_json(value: Any) -> None:
    """Raise BodyError if ``value`` (decoded JSON) nests deeper than MAX_DEPTH or holds a
    string (or key) with a lone surrogate or a NUL. Iterative: no recursion to exhaust."""
    stack: list[tuple[Any, int, list[str]]] = [(value, 0, [])]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise BodyError(
                    422,
                    "text that cannot be stored (a lone UTF-16 surrogate or a NUL character)",
                    _field(path),
                )
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise BodyError(400, f"JSON nested deeper than {MAX_DEPTH} levels", _field(path))
        if isinstance(item, dict):
            for key, child in item.items():
                if _UNSTORABLE.search(key):
                    raise BodyError(
                        422, "a key that cannot be stored (a lone surrogate or a NUL)",
                        _field(path),
                    )  # fmt: skip
                stack.append((child, depth + 1, [*path, key] if len(path) < 4 else path))
        else:
            stack.extend((child, depth + 1, path) for child in item)


def decode_json(data: str | bytes) -> Any:
    """``json.loads`` that answers every hostile input with BodyError (a ValueError)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BodyError(400, f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise BodyError(400, "the body is not UTF-8") from None
    except ValueError as exc:
        raise BodyError(400, f"not JSON: {str(exc)[:80]}") from None
    check_json(value)
    return value


class JSONProvider(DefaultJSONProvider):
    """The app's JSON: Flask's, with every decoded body checked (``decode_json``); answers
    keep Chinese text as it is and the contract's key order."""

    ensure_ascii = False
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return decode_json(s)


class BodyRefused(HTTPException):
    """The HTTP error for a refused body (its status, reason and field)."""

    def __init__(self, error: BodyError) -> None:
        super().__init__(error.reason)
        self.code = error.status
        self.field = error.field


class LianqinRequest(Request):
    """Flask's request, answering a refused JSON body with its own status and reason
    (Flask's default turns every decoding failure into a bare 400 without a reason)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, BodyError):
            raise BodyRefused(e)
        if e is None:
            raise UnprocessableEntity("the body must be JSON (Content-Type: application/json)")
        raise BadRequest(f"not JSON: {str(e)[:80]}")


def _json_path(path: str) -> bool:
    return path.startswith(("/api/", "/_dash-"))


def error_body(exc: HTTPException) -> dict[str, Any]:
    """An HTTP error in the API's one shape (dashboard/api/errors.py): the field at fault
    under ``fields`` when known."""
    from dashboard.api.errors import code_for
    from dashboard.api.errors import error_body as shaped

    status = exc.code or 500
    reason = exc.description or exc.name
    field = getattr(exc, "field", None)
    return shaped(code_for(status), reason, {field: reason} if field else None)


def _read_at_most(stream: Any, limit: int) -> bytes | None:
    """The stream's bytes, or None as soon as there are more than ``limit`` of them."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None


def install_body_limits(server: Flask) -> None:
    """Refuse a declared oversize body before anything reads it (authentication included),
    and answer HTTP errors on the API and Dash's endpoints in the API's JSON error shape."""

    def refuse_oversize() -> None:
        length = request.content_length
        limit = request.max_content_length
        if limit is None:
            return
        if length is not None and length > limit:
            raise RequestEntityTooLarge(f"the body is {length} bytes; at most {limit} are accepted")
        if length is None and request.environ.get("wsgi.input_terminated"):
            # Chunked: werkzeug would silently cut the body at the limit (a truncated form
            # could then be parsed). Read it here, whole or refused.
            buffered = _read_at_most(request.environ["wsgi.input"], limit)
            if buffered is None:
                raise RequestEntityTooLarge(f"the body is over {limit} bytes")
            request._cached_data = buffered  # what get_data() and the form parser read

    def as_json(exc: HTTPException) -> Any:
        if not _json_path(request.path):
            return exc  # pages: werkzeug's own short HTML answer
        response = jsonify(error_body(exc))
        response.status_code = exc.code or 500
        return response

    server.before_request(refuse_oversize)
    server.register_error_handler(HTTPException, as_json)


# -- Dash's callback endpoint ---------------------------------------------------------------
DASH_UPDATE = "/_dash-update-component"


def _dependency(item: Any, spec: dict[str, Any], what: str) -> None:
    """One input/state/output of a request against the callback's registered one."""
    if isinstance(spec.get("id"), dict):  # a pattern-matching id: a list of matches
        if not isinstance(item, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), dict) for m in item
        ):
            raise BadRequest(f"{what}: a list of pattern matches expected")
        return
    if not isinstance(item, dict):
        raise BadRequest(f"{what}: an object expected")
    prop = item.get("property")
    if item.get("id") != spec["id"] or not isinstance(prop, str):
        raise BadRequest(f"{what}: not {spec['id']}.{spec['property']}")
    if prop.split("@", 1)[0] != str(spec["property"]).split("@", 1)[0]:
        raise BadRequest(f"{what}: not {spec['id']}.{spec['property']}")


def check_callback_body(body: Any, callback_map: dict[str, Any]) -> None:
    """Raise BadRequest unless ``body`` is what Dash's renderer sends for a registered server
    callback: its output, every input and state in order, string ``changedPropIds``. Dash
    itself indexes into the body unguarded (a list body or a missing key is a 500)."""
    if not isinstance(body, dict):
        raise BadRequest("a callback request is a JSON object")
    output = body.get("output")
    callback = callback_map.get(output) if isinstance(output, str) else None
    if not callback or "callback" not in callback:
        raise BadRequest("no server callback for this output")
    for key in ("inputs", "state"):
        items = body.get(key, [])
        specs = callback.get(key) or []
        if not isinstance(items, list) or len(items) != len(specs):
            raise BadRequest(f"{key}: {len(specs)} expected")
        for i, (item, spec) in enumerate(zip(items, specs, strict=True)):
            _dependency(item, spec, f"{key}[{i}]")
    from dash._utils import split_callback_id

    expected = split_callback_id(output)
    outputs = body.get("outputs")
    if isinstance(expected, list):
        if not isinstance(outputs, list) or len(outputs) != len(expected):
            raise BadRequest(f"outputs: {len(expected)} expected")
        for i, (item, spec) in enumerate(zip(outputs, expected, strict=True)):
            _dependency(item, spec, f"outputs[{i}]")
    else:
        _dependency(outputs, expected, "outputs")
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        raise BadRequest("changedPropIds: a list of strings expected")


def install_callback_checks(server: Flask, callback_map: dict[str, Any]) -> None:
    """Check every callback request's envelope after the guard and before Dash reads it."""

    def check() -> None:
        if request.path == DASH_UPDATE and request.method == "POST":
            check_callback_body(request.get_json(), callback_map)

    server.before_request(check)
