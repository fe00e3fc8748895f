"""Unknown paths answer 404: a JSON error in the API's shape under /api/, a 404 page (zh-CN,
or English) with a link back to the wall elsewhere; the real pages answer as before."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import make_token

from dashboard.web.app import runtime_of


@pytest.fixture
def lead(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(runtime_of(app), 'lead')}"
    return client


@pytest.mark.parametrize(
    "path",
    ["/api/v1/case/HZ-1", "/api/v2/cases", "/api/v1/", "/api/v1/cases/HZ-1/timeline/x", "/api",
     "/api/v1/nope?x=1", "/live/nope", "/_dash-nope"],
)  # fmt: skip
@pytest.mark.parametrize("authenticated", [True, False])
def test_unknown_api_paths_answer_a_json_404(
    app: Flask, lead: FlaskClient, path: str, authenticated: bool
) -> None:
    client = lead if authenticated else app.test_client()
    for method in ("get", "post", "delete"):
        response = getattr(client, method)(path)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.is_json, response.get_data(as_text=True)[:200]
        body = response.json
        assert body["code"] == "not_found" and body["fields"] == {}
        assert path.split("?")[0] in body["error"]


def test_a_known_api_path_with_another_method_is_405_not_404(lead: FlaskClient) -> None:
    response = lead.get("/api/v1/cases/HZ-1/assign")
    assert response.status_code == 405 and response.is_json
    assert response.json["code"] == "method_not_allowed" and response.headers["Allow"] == "POST"


def test_unknown_pages_answer_a_404_page_with_a_way_back(app: Flask, lead: FlaskClient) -> None:
    for client in (lead, app.test_client()):  # signed in or not: no detour through /login
        for path in ("/nonexistent", "/wall/extra", "/dispatch/x", "/trends/nope", "/walll"):
            response = client.get(path)
            assert response.status_code == 404, path
            text = response.get_data(as_text=True)
            assert response.mimetype == "text/html"
            assert "页面不存在" in text and 'href="/wall?lang=zh-CN"' in text and "返回大屏" in text
        english = client.get("/nonexistent?lang=en").get_data(as_text=True)
        assert "Page not found" in english and "Back to the wall" in english


def test_english_by_configuration(settings: object) -> None:
    from dashboard.web.app import create_app

    server = create_app(settings.model_copy(update={"language": "en"}))  # type: ignore[attr-defined]
    try:
        response = server.test_client().get("/no/such/page")
        assert response.status_code == 404 and "Page not found" in response.get_data(as_text=True)
    finally:
        runtime_of(server).close()


def test_the_real_pages_answer_as_before(app: Flask, lead: FlaskClient) -> None:
    anonymous = app.test_client()
    for path in ("/", "/wall", "/dispatch", "/trends", "/trends/print"):
        assert lead.get(path).status_code == 200, path
        assert anonymous.get(path).status_code == 302, path  # to /login, as before
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/api/v1/openapi.json").status_code == 200
    assert anonymous.get("/api/v1/cases").status_code == 401  # known API path: the guard
    assert lead.get("/api/v1/cases").status_code == 200
    assert lead.get("/api/v1/cases/NOPE").status_code == 404  # a known path, no such case
    assert lead.get("/live/snapshot").status_code in (200, 400)
    assert lead.get("/readyz").status_code in (200, 503)
    assert lead.get("/metrics").status_code in (401, 403)  # admins only, as before
    assert anonymous.post("/kiosk").status_code in (302, 400)
    assert lead.get("/_dash-layout").status_code == 200
    assert lead.get("/_dash-dependencies").status_code == 200
    assert anonymous.get("/assets/wall.css").status_code == 200
