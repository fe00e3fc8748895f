"""The app factory: Flask, Dash (with the top-level assets/), Socket.IO and the callbacks."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import socketio as socketio_lib
from dash import Dash
from flask import Flask
from flask_socketio import SocketIO

import dashboard
from callbacks import register_all
from callbacks.permissions import install_callback_guard
from callbacks.router import PAGES
from dashboard.api.assignments import api_assignments
from dashboard.api.openapi import openapi
from dashboard.api.read import api
from dashboard.api.write import api_write
from dashboard.config import Settings, load_settings
from dashboard.live.namespace import LiveNamespace, live_http
from dashboard.live.publisher import NAMESPACE
from dashboard.live.snapshot import SnapshotStore
from dashboard.runtime import Runtime
from dashboard.web.auth import init_auth
from dashboard.web.bodies import (
    MAX_BODY,
    JSONProvider,
    LianqinRequest,
    install_body_limits,
    install_callback_checks,
)
from dashboard.web.context import RUNTIME, SNAPSHOTS, SOCKET_GUARD
from dashboard.web.context import runtime_of as runtime_of  # re-exported for the tests
from dashboard.web.notfound import install_not_found
from dashboard.web.ops import ops
from dashboard.web.security import SocketGuard, content_security_policy, install_headers
from layouts.root import create_root_layout

log = logging.getLogger(__name__)


def assets_folder() -> Path:
    """The top-level assets/ of a checkout, or its copy inside an installed package."""
    package = Path(dashboard.__file__).resolve().parent
    for candidate in (package / "web_assets", package.parent / "assets"):
        if (candidate / "wall.css").exists():
            return candidate
    raise RuntimeError("assets folder not found (is the package installed with its assets?)")


def create_app(settings: Settings | None = None, *, redis_url: str | None = None) -> Flask:
    """Build the web app. ``redis_url`` overrides the settings (the CLI passes the embedded one)."""
    settings = settings or load_settings()
    runtime = Runtime.open(settings, redis_url=redis_url)

    server = Flask("lianqin")
    server.json = JSONProvider(server)  # every JSON body checked (dashboard/web/bodies.py)
    server.request_class = LianqinRequest
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    server.config.update(
        SECRET_KEY=secret or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_BODY,  # every body: forms, the API, Dash callbacks
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
    )
    install_body_limits(server)  # before the guard: too big is refused before anything
    server.extensions[RUNTIME] = runtime
    install_not_found(server, PAGES, settings.language)  # before the guard: 404s for all

    init_auth(server, runtime)
    server.register_blueprint(api)
    server.register_blueprint(api_write)
    server.register_blueprint(api_assignments)
    server.register_blueprint(ops)
    server.register_blueprint(openapi)

    socketio = SocketIO(
        server,
        async_mode="threading",
        client_manager=socketio_lib.RedisManager(
            runtime.redis_url, channel=runtime.keys.socketio_channel
        ),
        ping_interval=10,
        ping_timeout=10,
    )
    snapshots = SnapshotStore(runtime.redis, runtime.keys, reuse_s=settings.snapshot_reuse_s)
    server.extensions[SNAPSHOTS] = snapshots
    server.register_blueprint(live_http)
    guard = SocketGuard(socketio, runtime, NAMESPACE)  # started by the first connection
    socketio.on_namespace(LiveNamespace(runtime, snapshots, guard))
    server.extensions[SOCKET_GUARD] = guard

    dash_app = Dash(
        __name__,
        server=server,  # type: ignore[arg-type]
        assets_folder=str(assets_folder()),
        url_base_pathname="/",
        title="联勤 Lianqin",
        update_title=None,  # type: ignore[arg-type]
        suppress_callback_exceptions=True,
        serve_locally=True,
        # Pages outside Dash (login) have their own stylesheet; screenshots are docs.
        assets_ignore=r"^(login\.css|screenshots/.*)$",
    )
    dash_app.layout = create_root_layout()
    register_all(dash_app)
    server.extensions["dash"] = dash_app
    install_callback_checks(server, dash_app.callback_map)
    install_callback_guard(server)  # after the envelope check: who may call which callback
    # After every callback is registered: the hashes cover Dash's own inline scripts.
    install_headers(server, content_security_policy(settings, dash_app.csp_hashes()))
    return server


def socketio_of(server: Flask) -> SocketIO:
    sio: SocketIO = server.extensions["socketio"]
    return sio
