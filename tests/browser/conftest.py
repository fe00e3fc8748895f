"""Real headless Chromium (Debian's package) against a real `lianqin demo` process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from demo_process import DemoProcess
from helpers import close_page, open_page
from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """The demo district with no simulator: the tests are the only producer."""
    process = DemoProcess(tmp_path_factory.mktemp("browser") / "data", "--no-simulator")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def producer_redis(demo: DemoProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(demo.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """The demo as a user starts it, with the simulator feeding it and a past (two days of
    history, written at its first start, so that the wall compares with yesterday)."""
    process = DemoProcess(
        tmp_path_factory.mktemp("live") / "data", "--warm", "200", "--speed", "10",
        "--history-days", "2",
    )  # fmt: skip
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def producer(live_demo: DemoProcess) -> Iterator[redis.Redis]:
    """A producer's Redis client on the live demo."""
    client = redis.Redis.from_url(live_demo.redis_url)
    yield client
    client.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = open_page(browser)
    yield page
    close_page(page)
