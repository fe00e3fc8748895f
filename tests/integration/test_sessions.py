"""Server-side sessions (issue 11, point 5): logging out, a password change, a disable and a
token's revocation end a browser session everywhere at once — a copied cookie included, on
every web instance, and its open sockets too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
import socketio
from flask import Flask
from flask.testing import FlaskClient
from helpers import make_token, seed_case, wait_for
from sqlalchemy import select, update
from werkzeug.serving import make_server

from dashboard.config import Settings
from dashboard.live.publisher import NAMESPACE
from dashboard.models import Case, WebSession
from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.web.app import create_app, runtime_of

PASSWORD = "correct horse battery"


def add_user(rt: Runtime, name: str, role: str = "lead") -> None:
    with rt.db.write() as session:
        accounts.create_user(session, username=name, role=role, password=PASSWORD)


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def sign_in(client: FlaskClient, name: str) -> None:
    form = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf_from(form)}
    )
    assert response.status_code == 302


def csrf_cookie(client: FlaskClient) -> str:
    client.get("/wall")
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    return cookie.value


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second browser holding a copy of ``client``'s cookies (a stolen cookie)."""
    thief = app.test_client()
    for name in ("session", "_csrf_token"):
        cookie = client.get_cookie(name)
        if cookie is not None:
            thief.set_cookie(name, cookie.value)
    return thief


def sessions_in_db(rt: Runtime) -> list[WebSession]:
    with rt.db.read() as session:
        return list(session.scalars(select(WebSession)))


def test_a_copied_cookie_neither_reads_nor_writes_after_logout(app: Flask, rt: Runtime) -> None:
    add_user(rt, "zhang")
    seed_case(rt, "HZ-S-1")
    browser = app.test_client()
    sign_in(browser, "zhang")
    csrf = csrf_cookie(browser)
    thief = copy_of(app, browser)
    assert thief.get("/api/v1/cases").status_code == 200  # the copy works while signed in

    assert browser.post("/logout", headers={"X-CSRFToken": csrf}).status_code == 302
    assert sessions_in_db(rt) == []
    assert thief.get("/api/v1/cases").status_code == 401
    assert thief.get("/wall").status_code == 302
    cancel = thief.post(
        "/api/v1/cases/HZ-S-1/cancel",
        json={"reason": "重复上报", "version": 1},
        headers={"X-CSRFToken": csrf},
    )
    assert cancel.status_code == 401
    with rt.db.read() as session:
        case = session.get(Case, "HZ-S-1")
        assert case is not None and case.status == "registered"


def test_password_change_and_disable_end_every_session_of_the_user(app: Flask, rt: Runtime) -> None:
    add_user(rt, "li")
    add_user(rt, "bystander")
    phones = [app.test_client() for _ in range(3)]
    for phone in phones:
        sign_in(phone, "li")
    other = app.test_client()
    sign_in(other, "bystander")
    assert len(sessions_in_db(rt)) == 4
    with rt.db.write() as session:
        accounts.set_password(session, username="li", password="a brand new password")
    assert len(sessions_in_db(rt)) == 1  # only the bystander's
    assert all(p.get("/api/v1/cases").status_code == 401 for p in phones)
    assert other.get("/api/v1/cases").status_code == 200

    with rt.db.write() as session:
        accounts.set_disabled(session, username="bystander", disabled=True)
    assert sessions_in_db(rt) == []
    assert other.get("/api/v1/cases").status_code == 401


def test_a_kiosk_screen_session_ends_with_its_token(app: Flask, rt: Runtime) -> None:
    token = make_token(rt, "viewer", name="hall-screen")
    screen = app.test_client()
    assert screen.get(f"/wall?token={token}").status_code == 200
    [row] = sessions_in_db(rt)
    assert row.kind == "token" and row.expires_at - row.created_at == timedelta(days=30)
    with rt.db.write() as session:
        accounts.revoke_token(session, name="hall-screen", now=rt.now())
    assert sessions_in_db(rt) == []
    assert screen.get("/_dash-layout").status_code == 401


def test_an_expired_session_is_refused_and_swept_at_the_next_sign_in(
    app: Flask, rt: Runtime
) -> None:
    add_user(rt, "wang")
    browser = app.test_client()
    sign_in(browser, "wang")
    with rt.db.write() as session:
        session.execute(update(WebSession).values(expires_at=rt.now() - timedelta(seconds=1)))
    assert browser.get("/api/v1/cases").status_code == 401
    sign_in(app.test_client(), "wang")
    assert len(sessions_in_db(rt)) == 1  # the expired row is gone, the new one is there


def test_a_cookie_without_a_server_side_session_is_refused(app: Flask, rt: Runtime) -> None:
    """A cookie signed with the right key but naming no live session (e.g. from before
    server-side sessions, or re-signed by someone holding the key) opens nothing."""
    add_user(rt, "zhao")
    browser = app.test_client()
    sign_in(browser, "zhao")
    with browser.session_transaction() as flask_session:
        flask_session.pop("lq_sid")
    assert browser.get("/api/v1/cases").status_code == 401
    with browser.session_transaction() as flask_session:
        flask_session["lq_sid"] = "made-up"
    assert browser.get("/api/v1/cases").status_code == 401


# -- several web instances, and open sockets ---------------------------------------------------
class Server:
    def __init__(self, app: Flask) -> None:
        import threading

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def two_instances(app: Flask, settings: Settings) -> Iterator[tuple[Server, Server]]:
    other = create_app(settings)
    servers = (Server(app), Server(other))
    try:
        yield servers
    finally:
        for s in servers:
            s.close()
        runtime_of(other).close()


def browser_sign_in(base: str, name: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{base}/login").text
    response = browser.post(
        f"{base}/login",
        data={"username": name, "password": PASSWORD, "csrf_token": csrf_from(form)},
        allow_redirects=False,
    )
    assert response.status_code == 302
    return browser


def cookie_header(browser: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in browser.cookies.items())


def connect(url: str, cookie: str) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(url, namespaces=[NAMESPACE], transports=["websocket"], wait_timeout=10,
                   headers={"Cookie": cookie})  # fmt: skip
    return client


def test_logout_on_one_instance_ends_the_session_and_its_sockets_on_every_instance(
    rt: Runtime, two_instances: tuple[Server, Server]
) -> None:
    a, b = two_instances
    add_user(rt, "sun")
    leaving = browser_sign_in(a.url, "sun")
    staying = browser_sign_in(a.url, "sun")  # the same user in another browser
    copied = cookie_header(leaving)
    sockets = [connect(s.url, copied) for s in (a, b)]
    kept = connect(b.url, cookie_header(staying))
    assert requests.get(f"{b.url}/api/v1/cases", headers={"Cookie": copied}).status_code == 200

    leaving.get(f"{a.url}/wall")
    csrf = leaving.cookies.get("_csrf_token") or ""
    out = leaving.post(f"{a.url}/logout", headers={"X-CSRFToken": csrf}, allow_redirects=False)
    assert out.status_code == 302

    wait_for(lambda: not any(s.connected for s in sockets), timeout=10,
             message="the logged-out session's sockets are closed on both instances")  # fmt: skip
    assert kept.connected  # the user's other session is untouched
    response = requests.get(
        f"{b.url}/api/v1/cases", headers={"Cookie": copied}, allow_redirects=False
    )
    assert response.status_code == 401
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(b.url, copied)
    kept.disconnect()
