"""Accounts, roles, tokens: who gets in, who is refused, and that revocation is immediate."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio
from flask import Flask
from flask.testing import FlaskClient
from helpers import make_token, seed_case
from sqlalchemy import select
from werkzeug.serving import make_server

from dashboard.config import Settings
from dashboard.live.publisher import NAMESPACE
from dashboard.models import AuditEvent, Case, User
from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.web.app import create_app, runtime_of

PASSWORD = "correct horse battery"


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    server = create_app(settings)
    yield server
    runtime_of(server).close()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return runtime_of(app)


def add_user(rt: Runtime, name: str, role: str) -> None:
    with rt.db.write() as session:
        accounts.create_user(session, username=name, role=role, password=PASSWORD)


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, name: str, password: str = PASSWORD, next_: str = "/wall") -> int:
    form = client.get(f"/login?next={next_}").get_data(as_text=True)
    response = client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": csrf_from(form), "next": next_},
    )
    return response.status_code


def audit_actions(rt: Runtime) -> list[tuple[str, str]]:
    with rt.db.read() as session:
        return [
            (e.actor, e.action) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


# -- anonymous --------------------------------------------------------------------------------
def test_anonymous_requests(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/assets/wall.css").status_code == 200
    assert client.get("/login").status_code == 200
    api = client.get("/api/v1/cases")
    assert api.status_code == 401 and api.json == {
        "error": "authentication required",
        "code": "unauthenticated",
        "fields": {},
    }
    assert client.get("/_dash-layout").status_code == 401
    page = client.get("/wall")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/wall"
    assert client.get("/dispatch").headers["Location"] == "/login?next=/dispatch"


def test_login_page_speaks_chinese_by_default_and_english_on_request(app: Flask) -> None:
    client = app.test_client()
    assert "用户名" in client.get("/login").get_data(as_text=True)
    assert "Username" in client.get("/login?lang=en").get_data(as_text=True)


# -- signing in -------------------------------------------------------------------------------
def test_sign_in_then_out(app: Flask, rt: Runtime) -> None:
    add_user(rt, "zhang", "lead")
    client = app.test_client()
    assert sign_in(client, "zhang", next_="/wall") == 302
    assert client.get("/wall").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    form_page = client.get("/wall")
    token = form_page.headers.get("Set-Cookie", "")
    assert "_csrf_token=" in token  # for Dash's X-CSRFToken header
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    assert client.post("/logout", headers={"X-CSRFToken": cookie.value}).status_code == 302
    assert client.get("/wall").status_code == 302
    actions = audit_actions(rt)
    assert ("user:zhang", "login") in actions and ("user:zhang", "logout") in actions


def test_wrong_password_unknown_user_and_missing_csrf_are_refused(app: Flask, rt: Runtime) -> None:
    add_user(rt, "li", "viewer")
    client = app.test_client()
    assert sign_in(client, "li", "wrong password!") == 401
    assert sign_in(client, "nobody") == 401
    assert client.get("/wall").status_code == 302
    no_csrf = client.post("/login", data={"username": "li", "password": PASSWORD})
    assert no_csrf.status_code == 400
    failed = [a for a in audit_actions(rt) if a[1] == "login.failed"]
    assert failed == [("user:li", "login.failed"), ("user:nobody", "login.failed")]


def test_next_never_leaves_the_site(app: Flask, rt: Runtime) -> None:
    add_user(rt, "wang", "viewer")
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        response = client.post(
            "/login",
            data={
                "username": "wang",
                "password": PASSWORD,
                "csrf_token": csrf_from(form),
                "next": target,
            },
        )
        assert response.headers["Location"] == "/", target


@pytest.mark.parametrize(
    ("role", "wall", "dispatch", "trends"),
    [
        ("viewer", 200, 403, 403),
        ("operator", 200, 200, 403),
        ("lead", 200, 200, 200),
        ("leader", 200, 403, 200),
        ("admin", 200, 200, 200),
    ],
)
def test_page_access_by_role(
    app: Flask, rt: Runtime, role: str, wall: int, dispatch: int, trends: int
) -> None:
    add_user(rt, f"u-{role}", role)
    client = app.test_client()
    assert sign_in(client, f"u-{role}") == 302
    assert client.get("/wall").status_code == wall
    assert client.get("/dispatch").status_code == dispatch
    assert client.get("/trends").status_code == trends
    assert client.get("/api/v1/cases").status_code == 200


def test_disabling_a_user_or_changing_the_password_ends_their_sessions(
    app: Flask, rt: Runtime
) -> None:
    add_user(rt, "zhao", "operator")
    first, second = app.test_client(), app.test_client()
    assert sign_in(first, "zhao") == 302 and sign_in(second, "zhao") == 302
    with rt.db.write() as session:
        accounts.set_password(session, username="zhao", password="another long password")
    assert first.get("/wall").status_code == 302
    assert sign_in(second, "zhao", "another long password") == 302
    with rt.db.write() as session:
        accounts.set_disabled(session, username="zhao", disabled=True)
    assert second.get("/wall").status_code == 302
    assert sign_in(second, "zhao", "another long password") == 401


def test_passwords_are_hashed_with_scrypt(rt: Runtime) -> None:
    add_user(rt, "sun", "viewer")
    with rt.db.read() as session:
        user = session.scalar(select(User).where(User.username == "sun"))
    assert (
        user is not None
        and user.password_hash.startswith("scrypt:")
        and PASSWORD not in user.password_hash
    )
    with pytest.raises(accounts.AccountError):
        with rt.db.write() as session:
            accounts.create_user(session, username="short", role="viewer", password="too short")
    with pytest.raises(accounts.AccountError):
        with rt.db.write() as session:
            accounts.create_user(session, username="x", role="chief", password=PASSWORD)


# -- tokens -----------------------------------------------------------------------------------
def test_bearer_tokens_for_the_api_and_immediate_revocation(app: Flask, rt: Runtime) -> None:
    token = make_token(rt, "viewer", name="cad-gateway")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/cases", headers=headers).status_code == 200
    assert (
        client.get("/api/v1/cases", headers={"Authorization": "Bearer lq_nope"}).status_code == 401
    )
    with rt.db.write() as session:
        accounts.revoke_token(session, name="cad-gateway", now=rt.now())
    assert client.get("/api/v1/cases", headers=headers).status_code == 401
    with rt.db.read() as session:
        stored = accounts.list_tokens(session)[0]
    assert stored.token_hash != token and token not in stored.token_hash


def test_kiosk_token_opens_the_wall_and_revocation_cuts_the_screen_off(
    app: Flask, rt: Runtime
) -> None:
    token = make_token(rt, "viewer", name="hall-screen")
    screen = app.test_client()
    assert screen.get(f"/wall?token={token}").status_code == 200
    assert screen.get("/_dash-layout").status_code == 200  # the screen's session
    assert screen.get("/dispatch").status_code == 403  # a viewer token opens only the wall
    with rt.db.write() as session:
        accounts.revoke_token(session, name="hall-screen", now=rt.now())
    assert screen.get("/_dash-layout").status_code == 401
    assert app.test_client().get(f"/wall?token={token}").status_code == 302
    assert ("token:hall-screen", "token.kiosk") in audit_actions(rt)


def test_dash_callbacks_need_the_csrf_header(app: Flask, rt: Runtime) -> None:
    add_user(rt, "zhou", "viewer")
    client = app.test_client()
    sign_in(client, "zhou")
    client.get("/wall")
    body = {
        "output": "lq-page.children",
        "outputs": {"id": "lq-page", "property": "children"},
        "inputs": [
            {"id": "lq-url", "property": "pathname", "value": "/wall"},
            {"id": "lq-url", "property": "search", "value": ""},
        ],
        "changedPropIds": ["lq-url.pathname"],
    }
    assert client.post("/_dash-update-component", json=body).status_code == 400
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    ok = client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": cookie.value})
    assert ok.status_code == 200


# -- sockets ----------------------------------------------------------------------------------
@pytest.fixture
def server_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_sockets_are_refused_without_credentials(server_url: str, rt: Runtime) -> None:
    anonymous = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(
            server_url, namespaces=[NAMESPACE], transports=["websocket"], wait_timeout=5
        )
    bad = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        bad.connect(
            server_url,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            wait_timeout=5,
            auth={"token": "lq_x"},
        )
    good = socketio.Client(reconnection=False)
    good.connect(
        server_url, namespaces=[NAMESPACE], transports=["websocket"], wait_timeout=5,
        auth={"token": make_token(rt)},
    )  # fmt: skip
    assert good.connected
    good.disconnect()


# -- the command line -------------------------------------------------------------------------
def cli(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(settings.data_dir),
        "DATABASE_URL": settings.effective_database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--data-dir", str(settings.data_dir), *args],
        input=stdin, capture_output=True, text=True, timeout=60, env=env,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_users_and_tokens_from_the_command_line(
    settings: Settings, rt: Runtime, app: Flask
) -> None:
    added = cli(
        settings,
        "users",
        "add",
        "chen",
        "--role",
        "lead",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert re.search(r"chen\s+lead\s+active", cli(settings, "users", "list").stdout)
    duplicate = cli(
        settings,
        "users",
        "add",
        "chen",
        "--role",
        "lead",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    client = app.test_client()
    assert sign_in(client, "chen") == 302
    assert cli(settings, "users", "disable", "chen").returncode == 0
    assert client.get("/wall").status_code == 302  # cut off at once
    created = cli(settings, "tokens", "create", "--name", "hall-screen")
    token = created.stdout.strip()
    assert created.returncode == 0 and token.startswith("lq_")
    listed = cli(settings, "tokens", "list").stdout
    assert "hall-screen" in listed and token not in listed
    assert app.test_client().get(f"/wall?token={token}").status_code == 200
    assert cli(settings, "tokens", "revoke", "hall-screen").returncode == 0
    assert app.test_client().get(f"/wall?token={token}").status_code == 302


@pytest.mark.parametrize(("proxies", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_the_audit_trail_sees_the_browser_behind_a_trusted_proxy_only(
    settings: Settings, proxies: int, expected: str
) -> None:
    server = create_app(settings.model_copy(update={"trusted_proxies": proxies}))
    rt = runtime_of(server)
    try:
        client = server.test_client()
        form = client.get("/login").get_data(as_text=True)
        client.post(
            "/login",
            data={"username": "ghost", "password": "x", "csrf_token": csrf_from(form)},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        with rt.db.read() as session:
            event = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "login.failed")
            ).one()
        assert event.ip == expected  # a forged header counts only behind a real proxy
    finally:
        rt.close()


# -- one credential per request (issue 11, point 7) ----------------------------------------------
def test_a_bearer_header_is_the_requests_only_credential(app: Flask, rt: Runtime) -> None:
    """A session cookie plus ``Authorization: Bearer <nonsense>`` used to skip the CSRF check
    and act as the session's user. Now the header decides: invalid is 401 whatever the
    cookie; valid acts as the token and the session is ignored (its role does not count)."""
    add_user(rt, "qian", "lead")
    seed_case(rt, "HZ-BEARER-1")
    browser = app.test_client()
    assert sign_in(browser, "qian") == 302
    browser.get("/wall")
    csrf = browser.get_cookie("_csrf_token")
    assert csrf is not None
    body = {"reason": "重复上报", "version": 1}
    for header in ("Bearer nonsense", "Bearer ", "Basic cWlhbjpwdw==", "lq_not_a_scheme"):
        headers = {"Authorization": header}
        read = browser.get("/api/v1/cases", headers=headers)
        assert read.status_code == 401, header
        write = browser.post("/api/v1/cases/HZ-BEARER-1/cancel", json=body, headers=headers)
        assert write.status_code == 401, header
        assert browser.get("/dispatch", headers=headers).status_code in (302, 401), header
    # With its CSRF token the session itself may still act: only the header was refused.
    with rt.db.read() as session:
        assert session.get(Case, "HZ-BEARER-1").status == "registered"  # type: ignore[union-attr]

    viewer = make_token(rt, "viewer", name="wall-reader")
    as_token = {"Authorization": f"Bearer {viewer}"}
    refused = browser.post("/api/v1/cases/HZ-BEARER-1/cancel", json=body, headers=as_token)
    assert refused.status_code == 403  # the token's role, not the lead's session
    assert browser.get("/dispatch", headers=as_token).status_code == 403
    answer = browser.get("/api/v1/cases", headers=as_token)
    assert answer.status_code == 200
    assert not [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("_csrf_token")]
    done = browser.post(
        "/api/v1/cases/HZ-BEARER-1/cancel", json=body, headers={"X-CSRFToken": csrf.value}
    )
    assert done.status_code == 200 and done.json["change"]["actor"] == "user:qian"


def test_a_socket_with_a_token_is_judged_by_the_token_alone(server_url: str, rt: Runtime) -> None:
    add_user(rt, "sun", "viewer")
    import requests

    browser = requests.Session()
    form = browser.get(f"{server_url}/login").text
    browser.post(f"{server_url}/login", data={"username": "sun", "password": PASSWORD,
                                              "csrf_token": csrf_from(form)})  # fmt: skip
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server_url, namespaces=[NAMESPACE], transports=["websocket"],
                       wait_timeout=5, headers={"Cookie": cookie},
                       auth={"token": "lq_revoked_or_made_up"})  # fmt: skip


# -- kiosk links (issue 11, point 8) --------------------------------------------------------------
@pytest.mark.parametrize("role", ["operator", "lead", "leader", "admin"])
def test_a_kiosk_link_with_a_token_of_another_role_is_refused_and_audited(
    app: Flask, rt: Runtime, role: str
) -> None:
    token = make_token(rt, role, name=f"ops-{role}")
    screen = app.test_client()
    page = screen.get(f"/wall?token={token}")
    assert page.status_code == 403
    assert "viewer" in page.get_data(as_text=True)
    assert screen.get_cookie("session") is None or screen.get("/api/v1/cases").status_code == 401
    assert screen.get("/dispatch").status_code == 302  # no session was opened
    assert (f"token:ops-{role}", "token.kiosk_refused") in audit_actions(rt)
    assert (f"token:ops-{role}", "token.kiosk") not in audit_actions(rt)


def test_a_kiosk_link_opens_only_the_wall(app: Flask, rt: Runtime) -> None:
    token = make_token(rt, "viewer", name="hall-screen")
    for path in ("/dispatch", "/trends", "/trends/print"):
        screen = app.test_client()
        assert screen.get(f"{path}?token={token}").status_code == 403, path
        assert screen.get("/wall").status_code == 302, path  # nothing was signed in
    assert app.test_client().get(f"/?token={token}").status_code == 200


def test_a_kiosk_link_asks_before_replacing_another_principals_session(
    app: Flask, rt: Runtime
) -> None:
    add_user(rt, "chen", "lead")
    token = make_token(rt, "viewer", name="hall-screen")
    browser = app.test_client()
    assert sign_in(browser, "chen") == 302
    page = browser.get(f"/wall?token={token}&layers=grids")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "chen" in text and "hall-screen" in text and "切换为大屏" in text
    assert page.headers["Cache-Control"] == "no-store"
    assert browser.get("/dispatch").status_code == 200  # still the lead: nothing replaced
    english = browser.get(f"/wall?token={token}&lang=en").get_data(as_text=True)
    assert "This browser is signed in as chen (lead)" in english

    form = {"token": token, "next": "/wall?layers=grids"}
    assert browser.post("/kiosk", data=form).status_code == 400  # no CSRF token
    assert browser.get("/dispatch").status_code == 200
    switched = browser.post("/kiosk", data={**form, "csrf_token": csrf_from(text)})
    assert switched.status_code == 302 and switched.headers["Location"] == "/wall?layers=grids"
    assert browser.get("/dispatch").status_code == 403  # now the wall's viewer token
    assert browser.get("/wall").status_code == 200
    assert browser.get(f"/wall?token={token}").status_code == 200  # its own link: no question
    with rt.db.read() as session:
        kiosk = session.scalars(select(AuditEvent).where(AuditEvent.action == "token.kiosk")).one()
    assert kiosk.actor == "token:hall-screen" and kiosk.detail == {"replaced": "user:chen"}


def test_the_kiosk_switch_refuses_tokens_of_other_roles(app: Flask, rt: Runtime) -> None:
    add_user(rt, "zhou", "viewer")
    admin = make_token(rt, "admin", name="root-bot")
    browser = app.test_client()
    assert sign_in(browser, "zhou") == 302
    form = browser.get("/login").get_data(as_text=True)
    switched = browser.post(
        "/kiosk", data={"token": admin, "next": "/wall", "csrf_token": csrf_from(form)}
    )
    assert switched.status_code == 403
    assert browser.get("/api/v1/units").status_code == 200  # still zhou's session
    assert ("token:root-bot", "token.kiosk_refused") in audit_actions(rt)
