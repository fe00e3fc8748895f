"""Fixtures shared by the integration tests: the web app on the test settings, its
runtime, a real HTTP server for Socket.IO clients, and an API client with a viewer token.
A test module may still define its own (e.g. an ``rt`` that seeds data) over these."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import make_token
from werkzeug.serving import make_server

from dashboard.config import Settings
from dashboard.runtime import Runtime
from dashboard.web.app import create_app, runtime_of


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    server = create_app(settings)
    yield server
    runtime_of(server).close()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return runtime_of(app)


@pytest.fixture
def server_url(app: Flask) -> Iterator[str]:
    """The app behind a real threaded HTTP server (Socket.IO clients need one)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def api_client(app: Flask) -> FlaskClient:
    """An API client with a viewer token (read access)."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(runtime_of(app))}"
    return c
