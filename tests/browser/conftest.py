"""Real headless Chromium (Debian's package) against a real `lianqin demo` process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from demo_process import DemoProcess
from playwright.sync_api import Browser, Page, sync_playwright

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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}"))
    yield page
    context.close()
    assert errors == [], f"errors in the page: {errors}"


def screenshot_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "assets" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
