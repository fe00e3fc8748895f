"""Real headless Chromium (Debian's package) against a real `lianqin demo` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from demo_process import DemoProcess
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


def open_page(
    browser: Browser, width: int = 1920, height: int = 1080, *, csp: bool = False
) -> Page:
    """A page in a context of its own; script errors and dialogs land in ``page.errors``.

    Playwright's string predicates (``wait_for_function("window.x")``) run through eval,
    which the app's Content-Security-Policy forbids: pages bypass it unless ``csp`` is
    set (tests/browser/test_security_browser.py checks the pages under the real policy).
    """
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="zh-CN", bypass_csp=not csp
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def close_page(page: Page) -> None:
    """Close the page's context; fail on any script error or dialog it saw."""
    errors = page.errors  # type: ignore[attr-defined]
    page.context.close()
    assert errors == [], f"errors in the page: {errors}"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = open_page(browser)
    yield page
    close_page(page)


def screenshot_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "assets" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
