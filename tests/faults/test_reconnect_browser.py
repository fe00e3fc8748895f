"""A wall in real Chromium while its web server is stopped and started again: the page shows
the outage, reconnects on its own, catches up from its cursor and ends in exactly the
server's state. Real `lianqin serve` and `lianqin worker` processes, their own Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fault_procs import Proc, env_for, free_port, start
from helpers import make_token, wait_for
from playwright.sync_api import Browser, Page

from dashboard.config import Settings
from dashboard.redis_server import EmbeddedRedis
from dashboard.runtime import Runtime
from dashboard.streams import Producer

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def wall_page(browser: Browser) -> Iterator[Page]:
    """A page of the shared Chromium (tests/conftest.py) in a context of its own."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        yield context.new_page()
    finally:
        context.close()


def case(producer: Producer, case_id: str, status: str = "reported") -> None:
    fields: dict[str, Any] = {"id": case_id, "status": status, "ts": int(time.time() * 1000) - 500}
    if status == "reported":
        fields |= {"lat": 29.3725, "lon": 106.2622, "category": "dispute"}
    producer.incident(**fields)


def server_state(base: str, token: str) -> dict[str, str]:
    got = requests.get(f"{base}/api/v1/cases?limit=1000",
                       headers={"Authorization": f"Bearer {token}"}, timeout=5)  # fmt: skip
    got.raise_for_status()
    return {c["id"]: c["status"] for c in got.json()}


def page_state(page: Any) -> dict[str, str]:
    return dict(
        page.evaluate(
            "Object.fromEntries(Object.entries(window.lianqin.cases)"
            ".map(([id, c]) => [id, c.status]))"
        )
    )


def test_the_wall_reconnects_after_a_web_restart_and_ends_in_the_servers_state(
    browser: Browser, settings: Settings, procs: list[Proc], tmp_path: Path
) -> None:
    embedded = EmbeddedRedis(tmp_path / "own-redis")
    url = embedded.start()
    rt = Runtime.open(settings, redis_url=url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(settings, redis_url=url, LIANQIN_PORT=str(port))
    try:
        producer = Producer(rt.redis, settings)
        token = make_token(rt)
        start(procs, tmp_path, "worker", ["worker", "--name", "rw"], env)
        web = start(procs, tmp_path, "web", ["serve"], env)
        wait_for(lambda: _up(base), timeout=60, message="web up")
        for i in range(5):
            case(producer, f"RC-{i}")
        with wall_page(browser) as page:
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/wall?token={token}")
            page.wait_for_function("() => window.lianqin && Object.keys(window.lianqin.cases)"
                                   ".length >= 5", timeout=30_000)  # fmt: skip
            seq_before = page.evaluate("window.lianqin.seq")

            web.signal(signal.SIGTERM)  # the web server goes away
            assert web.wait(timeout=30) == 0
            page.wait_for_function(
                "() => document.getElementById('lq-connection').dataset.state === 'offline'",
                timeout=30_000,
            )
            # While it is down the pipeline goes on: new cases and progress.
            for i in range(5, 12):
                case(producer, f"RC-{i}")
            case(producer, "RC-0", "registered")
            case(producer, "RC-1", "cancelled")
            wait_for(lambda: rt.redis.xlen(rt.keys.deltas) > 0 and _applied(rt, 12), timeout=60)

            start(procs, tmp_path, "web2", ["serve"], env)  # back on the same port
            wait_for(lambda: _up(base), timeout=60, message="web up again")
            # Reconnects back off with full jitter up to 30 s: the next try may be that far.
            page.wait_for_function(
                "() => window.lianqin.connected && "
                "document.getElementById('lq-connection').dataset.state === 'live'",
                timeout=75_000,
            )
            expected = server_state(base, token)
            wait_for(lambda: page_state(page) == expected, timeout=30,
                     message="the page holds the server's state")  # fmt: skip
            assert page.evaluate("window.lianqin.seq") > seq_before
            assert expected["RC-0"] == "registered" and expected["RC-1"] == "cancelled"
            assert errors == []
    finally:
        for proc in procs:
            proc.stop()
        procs.clear()
        rt.close()
        embedded.stop()


def _applied(rt: Runtime, n: int) -> bool:
    from sqlalchemy import func, select

    from dashboard.models import Case

    with rt.db.read() as session:
        return (session.scalar(select(func.count()).select_from(Case)) or 0) >= n


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


def test_the_wall_shows_a_database_outage_and_the_datas_age_then_recovers(
    browser: Browser, settings: Settings, procs: list[Proc], tmp_path: Path
) -> None:
    url = settings.effective_database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("locks the SQLite file")
    import sqlite3

    embedded = EmbeddedRedis(tmp_path / "own-redis")
    redis_url = embedded.start()
    rt = Runtime.open(settings, redis_url=redis_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(settings, redis_url=redis_url, LIANQIN_PORT=str(port),
                  LIANQIN_SQLITE_BUSY_S="0.3", LIANQIN_SWEEP_INTERVAL_S="0.5")  # fmt: skip
    lock = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
    try:
        token = make_token(rt)
        start(procs, tmp_path, "worker", ["worker", "--name", "dw"], env)
        start(procs, tmp_path, "web", ["serve"], env)
        wait_for(lambda: _up(base), timeout=60, message="web up")
        with wall_page(browser) as page:
            page.goto(f"{base}/wall?token={token}")
            state = (
                "() => (document.getElementById('lq-connection') || {{dataset: {{}}}})"
                ".dataset.state === '{}'"
            )
            page.wait_for_function(state.format("live"), timeout=30_000)
            lock.execute("BEGIN EXCLUSIVE")
            page.wait_for_function(state.format("degraded"), timeout=30_000)
            text = page.inner_text("#lq-connection")
            assert "数据库不可用" in text and "秒前" in text  # what is out, and the data's age
            page.wait_for_timeout(2500)
            assert int(page.get_attribute("#lq-connection", "data-age") or 0) >= 2
            if os.environ.get("LIANQIN_UPDATE_SCREENSHOTS"):
                page.screenshot(path=str(tmp_path / "degraded.png"))
            lock.execute("ROLLBACK")
            page.wait_for_function(state.format("live"), timeout=30_000)
    finally:
        lock.close()
        for proc in procs:
            proc.stop()
        procs.clear()
        rt.close()
        embedded.stop()
