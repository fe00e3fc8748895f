"""Request bodies at the boundary (issue 11, points 2 and 6): a size limit answered before a
byte is read, JSON nested 100,000 deep, bodies that are not JSON or not the JSON expected,
and text that cannot be stored (a lone surrogate, a NUL) refused with 422 and never
committed — on the write API and through the dispatch console's callbacks alike."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from helpers import callback_body, make_token, seed_case
from sqlalchemy import func, select
from werkzeug.serving import make_server

from dashboard.models import Case, CaseEvent, ChangeOutbox
from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.web.bodies import MAX_BODY
from layouts import ids

PASSWORD = "correct horse battery"
BIG = 20 * MAX_BODY


class CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes that counts how much of it was read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"a" * n
        self.position += n
        self.read_bytes += n
        return n


def signed_in(app: Flask, rt: Runtime, name: str, role: str) -> FlaskClient:
    with rt.db.write() as session:
        accounts.create_user(session, username=name, role=role, password=PASSWORD)
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    response = client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf.group(1)}
    )
    assert response.status_code == 302
    client.get("/wall")
    return client


def csrf(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    return {"X-CSRFToken": cookie.value}


def dependency(client: FlaskClient, output_id: str) -> dict[str, Any]:
    deps = client.get("/_dash-dependencies").json
    return next(d for d in deps if output_id in d["output"] and "callback" not in d.get("x", {})
                and d.get("clientside_function") is None)  # fmt: skip


# -- size ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/login", "application/x-www-form-urlencoded"),
        ("/api/v1/cases/X-1/note", "application/json"),
        ("/_dash-update-component", "application/json"),
    ],
)
def test_an_oversize_body_is_refused_before_a_byte_is_read(
    app: Flask, rt: Runtime, path: str, content_type: str
) -> None:
    """An unauthenticated 200 MB POST to /login used to be read (and grow the process by
    ~600 MB); with a token, the same on /api. Here 20 MiB are declared and none is read."""
    body = CountingStream(BIG)
    client = app.test_client()
    headers = {"Content-Type": content_type, "Content-Length": str(BIG)}
    if path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {make_token(rt, 'lead')}"
    response = client.post(path, input_stream=body, headers=headers)
    assert response.status_code == 413
    assert body.read_bytes == 0
    if path != "/login":
        assert response.json is not None and "at most 1048576" in response.json["error"]


@pytest.fixture
def server_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_a_chunked_body_is_cut_off_at_the_limit(server_url: str, rt: Runtime) -> None:
    """No Content-Length (chunked transfer): the body is read only up to the limit."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"note": "'
        while sent < 8 * MAX_BODY:
            sent += 64 * 1024
            yield b"a" * (64 * 1024)
        yield b'", "version": 1}'

    token = make_token(rt, "lead")
    try:
        response = requests.post(
            f"{server_url}/api/v1/cases/X-1/note", data=chunks(), timeout=30,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
    except requests.ConnectionError:
        return  # the server answered 413 and closed the connection mid-upload: also refused
    assert response.status_code == 413
    small = requests.post(
        f"{server_url}/api/v1/cases/X-1/note", data=iter([b'{"note": "ok",', b' "version": 1}']),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )  # fmt: skip
    assert small.status_code == 404  # a small chunked body is read whole: the case is unknown


def test_the_largest_real_callback_fits_well_under_the_limit(app: Flask, rt: Runtime) -> None:
    """The biggest body the console really sends: a bulk assignment of the most cases it
    allows (200), with long notes. The limit leaves far more room than that."""
    client = signed_in(app, rt, "lead1", "lead")
    dep = dependency(client, ids.BULK_NOTE)
    picked = [{"id": f"HZ-20261127-{i:04d}", "version": 12} for i in range(200)]
    body = callback_body(
        dep,
        {
            f"{ids.BULK_REQUEST}.data": {"cases": picked, "n": 1764000000000},
            f"{ids.BULK_NOTE}.value": "现场核实后统一派遣。" * 100,
            f"{ids.DISPATCH_LANG}.data": {"lang": "zh-CN", "tz": "Asia/Shanghai",
                                          "departments": {f"d{i}": "部门" * 5 for i in range(40)}},
        },
    )  # fmt: skip
    size = len(json.dumps(body, ensure_ascii=False).encode())
    assert size < MAX_BODY / 20
    response = client.post("/_dash-update-component", json=body, headers=csrf(client))
    assert response.status_code == 200  # refused by the service (unknown cases), not the size


# -- depth and shape --------------------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_json_is_a_4xx_on_the_api_and_on_dash(app: Flask, rt: Runtime) -> None:
    token = make_token(rt, "lead")
    api = app.test_client()
    for depth in (100_000, 1_000, 40):
        response = api.post(
            "/api/v1/cases/X-1/note", data='{"note": ' + nested(depth) + "}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 422, depth
        assert response.json["code"] == "bad_input"
    browser = signed_in(app, rt, "lead2", "lead")
    for depth in (100_000, 1_000, 40):
        response = browser.post(
            "/_dash-update-component", data=nested(depth),
            headers={**csrf(browser), "Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 400, depth
        assert "nested deeper" in response.json["error"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '"text"',
        "42",
        "null",
        "{}",
        '{"output": "lq-page.children"}',
        '{"output": 5, "inputs": []}',
        '{"output": "lq-no-such.children", "inputs": [], "outputs": {}}',
        '{"output": "lq-bulk-request.data", "inputs": [{"id": "lq-bulk-button", '
        '"property": "n_clicks", "value": 1}], "outputs": {"id": "lq-bulk-request", '
        '"property": "data"}}',  # a clientside callback: nothing to run on the server
        '{"output": "lq-page.children", "outputs": {"id": "lq-page", "property": "children"},'
        ' "inputs": [{"id": "lq-url", "property": "pathname", "value": "/"}]}',
        '{"output": "lq-page.children", "outputs": {"id": "lq-page", "property": "children"},'
        ' "inputs": [{"id": "x", "property": "y"}, {"id": "lq-url", "property": "search"}]}',
        '{"output": "lq-page.children", "outputs": [], "inputs": [{"id": "lq-url", '
        '"property": "pathname"}, {"id": "lq-url", "property": "search"}]}',
        '{"output": "lq-page.children", "outputs": {"id": "lq-page", "property": "children"},'
        ' "inputs": [{"id": "lq-url", "property": "pathname", "value": 7}, {"id": "lq-url", '
        '"property": "search", "value": ["?"]}], "changedPropIds": ["lq-url.pathname"]}',
        '{"output": "lq-page.children", "outputs": {"id": "lq-page", "property": "children"},'
        ' "inputs": [{"id": "lq-url", "property": "pathname"}, {"id": "lq-url", '
        '"property": "search"}], "changedPropIds": [1]}',
    ],
)
def test_a_callback_body_that_is_not_what_dash_sends_is_a_400(
    app: Flask, rt: Runtime, body: str
) -> None:
    browser = signed_in(app, rt, "lead3", "lead")
    response = browser.post(
        "/_dash-update-component", data=body,
        headers={**csrf(browser), "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json is not None and response.json["error"]


def test_a_callback_body_sent_as_another_content_type_is_a_4xx(app: Flask, rt: Runtime) -> None:
    browser = signed_in(app, rt, "lead4", "lead")
    response = browser.post(
        "/_dash-update-component", data="{}",
        headers={**csrf(browser), "Content-Type": "text/plain"},
    )  # fmt: skip
    assert response.status_code == 422 and response.json is not None


# -- text that cannot be stored -----------------------------------------------------------------
def committed(rt: Runtime, case_id: str) -> tuple[int, int, int]:
    """(the case's version, its change events, outbox rows)."""
    with rt.db.read() as session:
        case = session.get(Case, case_id)
        assert case is not None
        events = session.scalar(
            select(func.count()).select_from(CaseEvent)
            .where(CaseEvent.case_id == case_id, CaseEvent.kind == "change")
        )  # fmt: skip
        outbox = session.scalar(select(func.count()).select_from(ChangeOutbox))
    return case.version, int(events or 0), int(outbox or 0)


@pytest.mark.parametrize(
    ("action", "field", "body"),
    [
        ("note", "note", '{"note": "现场\\ud800核实", "version": 1}'),
        ("note", "note", '{"note": "\\udfff", "version": 1}'),
        ("note", "note", '{"note": "a\\u0000b", "version": 1}'),
        ("cancel", "reason", '{"reason": "重复\\ud83d", "version": 1}'),
        ("assign", "note", '{"unit": "P-1", "note": "\\ude00x", "version": 1}'),
        ("note", "body", '{"note": "ok", "\\ud800": 1, "version": 1}'),
    ],
)
def test_unstorable_text_through_the_write_api_is_a_422_and_nothing_is_committed(
    app: Flask, rt: Runtime, action: str, field: str, body: str
) -> None:
    seed_case(rt, "HZ-U-1")
    before = committed(rt, "HZ-U-1")
    response = app.test_client().post(
        f"/api/v1/cases/HZ-U-1/{action}", data=body,
        headers={"Authorization": f"Bearer {make_token(rt, 'lead')}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422
    answer = response.get_json()
    assert answer["code"] == "bad_input" and field in answer["fields"]
    assert "cannot be stored" in answer["error"]
    assert committed(rt, "HZ-U-1") == before


def test_a_pair_of_surrogates_is_one_character_and_is_accepted(app: Flask, rt: Runtime) -> None:
    seed_case(rt, "HZ-U-2")
    response = app.test_client().post(
        "/api/v1/cases/HZ-U-2/note", data='{"note": "好 \\ud83d\\ude00", "version": 1}',
        headers={"Authorization": f"Bearer {make_token(rt, 'operator')}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json["change"]["effect"] == "note"


def test_unstorable_text_from_the_console_is_refused_and_nothing_is_committed(
    app: Flask, rt: Runtime
) -> None:
    """The console's note box, its cancel reason and its bulk note: a crafted callback
    request with a lone surrogate gets a 422, and the case is unchanged."""
    seed_case(rt, "HZ-U-3")
    before = committed(rt, "HZ-U-3")
    browser = signed_in(app, rt, "lead5", "lead")
    act = dependency(browser, ids.NOTE_TEXT)
    shown = {"id": "HZ-U-3", "version": 1, "status": "registered"}
    context = {"lang": "zh-CN", "tz": "Asia/Shanghai", "departments": {}}
    for button, field, text in (
        (ids.NOTE_BUTTON, ids.NOTE_TEXT, "备注\ud800"),
        (ids.CANCEL_BUTTON, ids.CANCEL_REASON, "\udc00重复"),
    ):
        body = callback_body(
            act,
            {f"{button}.n_clicks": 1, f"{ids.CASE_STATE}.data": shown,
             f"{field}.value": text, f"{ids.DISPATCH_LANG}.data": context},
            changed=[f"{button}.n_clicks"],
        )  # fmt: skip
        response = browser.post(
            "/_dash-update-component", data=json.dumps(body),
            headers={**csrf(browser), "Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 422, button
        assert "cannot be stored" in response.json["error"]
    bulk = dependency(browser, ids.BULK_NOTE)
    body = callback_body(
        bulk,
        {f"{ids.BULK_REQUEST}.data": {"cases": [{"id": "HZ-U-3", "version": 1}]},
         f"{ids.BULK_UNIT}.value": "P-1", f"{ids.BULK_NOTE}.value": "\ud800",
         f"{ids.DISPATCH_LANG}.data": context},
    )  # fmt: skip
    response = browser.post(
        "/_dash-update-component", data=json.dumps(body),
        headers={**csrf(browser), "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422
    assert committed(rt, "HZ-U-3") == before
