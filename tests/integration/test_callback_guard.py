"""The Dash callbacks' permission guard (callbacks/permissions.py): every registered callback
is in the table, and a principal calling a callback directly over HTTP is refused (403)
unless its role may update every output — whatever the callback itself checks."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import callback_body, make_token

from callbacks.permissions import OUTPUT_PERMISSIONS, required_permissions, unmapped_outputs
from dashboard.services.accounts import PERMISSIONS, ROLES
from layouts import ids


def test_every_registered_callback_is_in_the_table(app: Flask) -> None:
    callback_map = app.extensions["dash"].callback_map
    assert callback_map, "the app registers callbacks"
    assert unmapped_outputs(callback_map) == []
    assert set(OUTPUT_PERMISSIONS.values()) <= set(PERMISSIONS)
    for output in callback_map:
        assert required_permissions(output), output


def test_an_unmapped_output_is_refused() -> None:
    assert required_permissions("lq-not-in-the-table.children") is None
    assert required_permissions(f"..{ids.FEEDBACK}.children...lq-nowhere.value..") is None


def _client(app: Flask, role: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(_rt(app), role)}"
    return client


def _rt(app: Flask) -> Any:
    return app.extensions["lianqin"]


def _dependency(client: FlaskClient, output_id: str) -> dict[str, Any]:
    deps = client.get("/_dash-dependencies").json
    assert deps is not None
    return next(d for d in deps if f"{output_id}." in d["output"] and "callback" not in d)


def _call(client: FlaskClient, output_id: str, values: dict[str, Any] | None = None) -> Any:
    body = callback_body(_dependency(client, output_id), values)
    headers = {}
    cookie = client.get_cookie("_csrf_token")
    if cookie is not None:
        headers["X-CSRFToken"] = cookie.value
    return client.post("/_dash-update-component", json=body, headers=headers)


CONSOLE = {  # open_case: the console's read of a case (it checked nothing itself)
    f"{ids.CASE_OPEN}.data": {"id": "NO-SUCH-CASE", "n": "1"},
    f"{ids.DISPATCH_LANG}.data": {"lang": "en", "tz": "Asia/Shanghai", "departments": {}},
}
TRENDS = {f"{ids.URL}.search": "?period=today", f"{ids.URL}.pathname": "/trends"}


@pytest.mark.parametrize("role", ROLES)
def test_console_and_trends_callbacks_by_role(app: Flask, role: str) -> None:
    client = _client(app, role)
    console = _call(client, ids.CASE_DETAIL, CONSOLE)
    trends = _call(client, ids.TRENDS_KPIS, TRENDS)
    may_console = role in PERMISSIONS["view_dispatch"]
    may_trends = role in PERMISSIONS["view_trends"]
    assert console.status_code == (200 if may_console else 403), console.get_data(as_text=True)
    assert trends.status_code in ((200, 204) if may_trends else (403,)), trends.get_data()
    for refused in [r for r in (console, trends) if r.status_code == 403]:
        assert refused.json["code"] == "forbidden" and refused.json["error"]
        assert refused.json["fields"] == {}
    if may_console:
        assert "response" in console.json  # the callback ran: "no such case"


def test_the_router_is_open_to_every_role(app: Flask) -> None:
    client = _client(app, "viewer")
    response = _call(client, ids.PAGE, {f"{ids.URL}.pathname": "/wall"})
    assert response.status_code == 200


def test_a_kiosk_screen_may_not_call_console_or_trends_callbacks(app: Flask) -> None:
    client = app.test_client()
    token = make_token(_rt(app), "viewer")
    assert client.get(f"/wall?token={token}").status_code == 200  # the kiosk session
    client.get("/wall")  # the CSRF cookie
    assert _call(client, ids.PAGE, {f"{ids.URL}.pathname": "/wall"}).status_code == 200
    assert _call(client, ids.CASE_DETAIL, CONSOLE).status_code == 403
    assert _call(client, ids.TRENDS_KPIS, TRENDS).status_code == 403
    assert _call(client, ids.TRENDS_DOWNLOAD, TRENDS).status_code == 403


def test_an_anonymous_caller_is_refused(app: Flask) -> None:
    lead = _client(app, "lead")
    body = callback_body(_dependency(lead, ids.CASE_DETAIL), CONSOLE)
    response = app.test_client().post("/_dash-update-component", json=body)
    assert response.status_code == 401 and response.json["code"] == "unauthenticated"


def test_export_needs_its_own_permission() -> None:
    needed = [required_permissions(o) or frozenset() for o in (f"{ids.TRENDS_DOWNLOAD}.data",)]
    assert needed == [frozenset({"export"})]
