"""Security: headers (CSP), cookies, login rate limiting across instances, token-use audit,
and open sockets cut off at once on every web instance when a principal is revoked."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio
from flask import Flask
from helpers import make_token, wait_for
from sqlalchemy import select
from werkzeug.serving import make_server

from dashboard.config import Settings
from dashboard.live.publisher import NAMESPACE
from dashboard.models import AuditEvent
from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.streams import now_utc
from dashboard.web.app import create_app, runtime_of
from dashboard.web.security import announce_revocation

PASSWORD = "correct horse battery"


@pytest.fixture
def sec_settings(settings: Settings) -> Settings:
    # A long recheck: only the pub/sub announcement can cut a socket off within the test.
    return settings.model_copy(update={"socket_recheck_s": 600.0, "login_max_attempts": 3})


@pytest.fixture
def app(sec_settings: Settings) -> Iterator[Flask]:
    server = create_app(sec_settings)
    yield server
    runtime_of(server).close()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return runtime_of(app)


def add_user(rt: Runtime, name: str, role: str = "operator") -> None:
    with rt.db.write() as session:
        accounts.create_user(session, username=name, role=role, password=PASSWORD)


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def audit(rt: Runtime, action: str) -> list[AuditEvent]:
    with rt.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


class Server:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


# -- headers and cookies ------------------------------------------------------------------------
def test_every_response_carries_a_csp_without_inline_script(app: Flask, rt: Runtime) -> None:
    client = app.test_client()
    token = make_token(rt)
    for path in ("/login", f"/wall?token={token}", "/api/v1/units", "/healthz"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        script_src = next(d for d in csp.split("; ") if d.startswith("script-src "))
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        assert "'sha256-" in script_src  # Dash's own inline scripts, by hash
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


def test_tile_hosts_are_allowed_as_images_only(sec_settings: Settings) -> None:
    from dashboard.web.security import content_security_policy

    amap = sec_settings.model_copy(update={"tile_preset": "amap"})
    csp = content_security_policy(amap, [])
    img = next(d for d in csp.split("; ") if d.startswith("img-src "))
    assert "https://*.is.autonavi.com" in img
    assert "autonavi" not in csp.replace(img, "")


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_is_httponly_samesite_and_secure_when_set(
    sec_settings: Settings, secure: bool
) -> None:
    server = create_app(sec_settings.model_copy(update={"cookie_secure": secure}))
    try:
        add_user(runtime_of(server), "cookie")
        client = server.test_client()
        form = client.get("/login").get_data(as_text=True)
        response = client.post(
            "/login",
            data={"username": "cookie", "password": PASSWORD, "csrf_token": csrf_from(form)},
        )
        assert response.status_code == 302
        cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure
    finally:
        runtime_of(server).close()


# -- login rate limiting --------------------------------------------------------------------------
def attempt(client: object, username: str, password: str) -> requests.Response:
    session: requests.Session = client  # type: ignore[assignment]
    base = session.base  # type: ignore[attr-defined]
    form = session.get(f"{base}/login?lang=en").text
    return session.post(
        f"{base}/login?lang=en",
        data={"username": username, "password": password, "csrf_token": csrf_from(form)},
        allow_redirects=False,
    )


def test_login_attempts_are_limited_per_ip_and_user_across_instances(
    app: Flask, rt: Runtime, sec_settings: Settings
) -> None:
    add_user(rt, "target")
    add_user(rt, "bystander")
    other = create_app(sec_settings)  # a second web instance: the same Redis counters
    servers = [Server(app), Server(other)]
    try:
        clients = []
        for s in servers:
            c = requests.Session()
            c.base = s.url  # type: ignore[attr-defined]
            clients.append(c)
        for i in range(3):
            assert attempt(clients[i % 2], "target", "wrong password!").status_code == 401
        for c in clients:  # blocked on both instances, even with the right password
            blocked = attempt(c, "target", PASSWORD)
            assert blocked.status_code == 429
            assert "Too many failed sign-ins" in blocked.text
        assert attempt(clients[0], "bystander", PASSWORD).status_code == 302  # another user
        assert audit(rt, "login.limited")
        assert len(audit(rt, "login.failed")) == 3
        # Once the window has passed (here: the counter expires), the user may sign in.
        for key in rt.redis.scan_iter(match=f"{rt.keys.prefix}:login:*"):
            rt.redis.delete(key)
        assert attempt(clients[1], "target", PASSWORD).status_code == 302
    finally:
        for s in servers:
            s.close()
        runtime_of(other).close()


# -- the audit trail of token use ------------------------------------------------------------------
def test_token_use_is_audited_once_per_interval(app: Flask, rt: Runtime) -> None:
    token = make_token(rt, "viewer", name="cad-gateway")
    client = app.test_client()
    for _ in range(5):
        assert (
            client.get("/api/v1/units", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
    used = audit(rt, "token.use")
    assert len(used) == 1
    assert used[0].actor == "token:cad-gateway" and used[0].ip == "127.0.0.1"
    assert used[0].target == "/api/v1/units"


# -- revocation reaches open sockets on every instance --------------------------------------------
def connect(url: str, **kwargs: object) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(url, namespaces=[NAMESPACE], transports=["websocket"], wait_timeout=10,
                   **kwargs)  # type: ignore[arg-type]  # fmt: skip
    return client


def test_revoking_a_token_cuts_its_open_sockets_on_every_instance(
    app: Flask, rt: Runtime, sec_settings: Settings
) -> None:
    other = create_app(sec_settings)
    servers = [Server(app), Server(other)]
    try:
        doomed = make_token(rt, name="hall-screen")
        kept = make_token(rt, name="lobby-screen")
        sockets = [connect(s.url, auth={"token": doomed}) for s in servers]
        survivor = connect(servers[1].url, auth={"token": kept})
        with rt.db.write() as session:
            accounts.revoke_token(session, name="hall-screen", now=now_utc())
        announce_revocation(rt.redis, rt.keys)
        wait_for(lambda: not any(s.connected for s in sockets), timeout=10,
                 message="both sockets of the revoked token are closed")  # fmt: skip
        assert survivor.connected
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(servers[0].url, auth={"token": doomed})
        survivor.disconnect()
    finally:
        for s in servers:
            s.close()
        runtime_of(other).close()


def test_disabling_a_user_from_the_command_line_closes_their_browser_socket(
    app: Flask, rt: Runtime
) -> None:
    add_user(rt, "leaving")
    server = Server(app)
    try:
        browser = requests.Session()
        browser.base = server.url  # type: ignore[attr-defined]
        assert attempt(browser, "leaving", PASSWORD).status_code == 302
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        sock = connect(server.url, headers={"Cookie": cookie})
        assert sock.connected
        settings = rt.settings
        result = subprocess.run(
            [sys.executable, "-m", "dashboard.cli", "users", "disable", "leaving"],
            capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
            env={"PATH": "/usr/bin:/bin", "HOME": str(settings.data_dir),
                 "REDIS_URL": settings.redis_url or "",
                 "DATABASE_URL": settings.effective_database_url,
                 "LIANQIN_STREAM_PREFIX": settings.stream_prefix},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        wait_for(lambda: not sock.connected, timeout=10, message="the socket is cut off")
        assert browser.get(f"{server.url}/api/v1/units", allow_redirects=False).status_code == 401
    finally:
        server.close()


def test_one_ip_spraying_many_usernames_runs_out_of_its_budget_on_every_instance(
    rt: Runtime, sec_settings: Settings
) -> None:
    """Password spraying (issue 11, point 9): a few guesses at each of many accounts from one
    address. The per-(IP, username) limit alone let it try 5 passwords on every account every
    window; the per-IP budget stops it after LIANQIN_LOGIN_IP_MAX_ATTEMPTS, whatever names
    it tries, on both instances, audited as login.limited with the scope."""
    settings = sec_settings.model_copy(update={"login_ip_max_attempts": 6})
    first, second = create_app(settings), create_app(settings)
    servers = [Server(first), Server(second)]
    try:
        real = runtime_of(first)
        add_user(real, "victim")
        clients = []
        for s in servers:
            c = requests.Session()
            c.base = s.url  # type: ignore[attr-defined]
            clients.append(c)
        for i in range(6):  # two wrong passwords each at three accounts: under 3 per pair
            assert attempt(clients[i % 2], f"user{i // 2}", "wrong password!").status_code == 401
        for c in clients:  # a fourth account, even with its right password: the IP is spent
            blocked = attempt(c, "victim", PASSWORD)
            assert blocked.status_code == 429
            assert "Too many failed sign-ins" in blocked.text
        limited = audit(real, "login.limited")
        assert limited and all(e.detail["scope"] == "ip" for e in limited)
        assert len(audit(real, "login.failed")) == 6
        ttl = real.redis.ttl(real.keys.login_ip_attempts("127.0.0.1"))
        assert 0 < ttl <= settings.login_window_s
        # A success does not refill the IP's budget (a sprayer must not buy more guesses).
        real.redis.delete(real.keys.login_ip_attempts("127.0.0.1"))
        assert attempt(clients[0], "victim", PASSWORD).status_code == 302
        for i in range(6):
            attempt(clients[1], f"other{i}", "wrong password!")
        assert attempt(clients[0], "victim", PASSWORD).status_code == 429
    finally:
        for s in servers:
            s.close()
        runtime_of(first).close()
        runtime_of(second).close()


def test_a_username_that_no_account_can_have_is_refused_and_audited_safely(
    app: Flask, rt: Runtime
) -> None:
    """NUL, control characters and huge names reach the login form's handler; none may
    reach the database as a lookup (PostgreSQL refuses NUL in text: that was a 500)."""
    client = app.test_client()
    for name in ("\x00", "zhang\x00", "a\nb", "名字", "x" * 5000, "'; drop table users; --"):
        form = client.get("/login").get_data(as_text=True)
        response = client.post(
            "/login", data={"username": name, "password": "pw", "csrf_token": csrf_from(form)}
        )
        assert response.status_code == 401, name
    actors = [e.actor for e in audit(rt, "login.failed")]
    assert "user:\\x00" in actors and "user:\\u540d\\u5b57" in actors
