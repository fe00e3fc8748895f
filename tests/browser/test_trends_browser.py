"""The briefing view (/trends) in real Chromium on a running demo with stored history: a
leader opens it, changes the period and sees the charts follow (and the URL keep the
state), replays a day on the map, exports the tables, opens the printable briefing; a
viewer is refused.

Set LIANQIN_UPDATE_SCREENSHOTS=1 to write the README's screenshots (assets/screenshots/).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from demo_process import DemoProcess
from helpers import screenshot_dir
from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser
CATEGORY_FIG = "#lq-trends-fig-category"


@pytest.fixture(scope="module")
def history_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """The demo with 30,000 past cases (60 days) and a day of unit tracks, no simulator."""
    data_dir = tmp_path_factory.mktemp("trends") / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    base = [sys.executable, "-m", "dashboard.cli", "--data-dir", str(data_dir)]
    for args in (
        ["db", "upgrade"],
        ["db", "seed-demo"],
        ["simulate", "--history", "30000", "--history-days", "60", "--ping-hours", "30"],
    ):
        subprocess.run([*base, *args], env=env, check=True, capture_output=True, timeout=300)
    process = DemoProcess(data_dir, "--no-simulator")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def new_page(browser: Browser) -> Page:
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the app's
    # Content-Security-Policy (rightly) forbids to the page's own scripts.
    context = browser.new_context(
        viewport={"width": 1920, "height": 1080}, locale="zh-CN", accept_downloads=True,
        bypass_csp=True,
    )  # fmt: skip
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def close(page: Page) -> None:
    errors = page.errors  # type: ignore[attr-defined]
    page.context.close()
    assert errors == [], errors


def sign_in(page: Page, demo: DemoProcess, user: str, target: str) -> None:
    page.goto(f"{demo.url}/login?next={quote(target, safe='')}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", demo.password(user))
    page.click("button[type=submit]")


def figure_x(page: Page, selector: str) -> list[str]:
    """The x values of a plotly figure's first trace, as the browser holds them."""
    return page.evaluate(
        "sel => { const gd = document.querySelector(sel + ' .js-plotly-plot');"
        " return gd && gd.data && gd.data.length ? gd.data[0].x : []; }",
        selector,
    )


def kpi_text(page: Page, name: str) -> str:
    return page.inner_text(f'.lq-tr-kpi[data-kpi="{name}"] .lq-tr-kpi-value')


def wait_charts(page: Page, buckets: int) -> None:
    page.wait_for_function(
        "([sel, n]) => { const gd = document.querySelector(sel + ' .js-plotly-plot');"
        " return gd && gd.data && gd.data.length && gd.data[0].x.length === n; }",
        arg=[CATEGORY_FIG, buckets],
        timeout=60_000,
    )


def pick(page: Page, dropdown_id: str, label: str) -> None:
    page.click(f"#{dropdown_id}")
    page.get_by_role("option", name=label, exact=True).click()


def test_a_leader_changes_the_period_and_the_charts_follow(
    browser: Browser, history_demo: DemoProcess
) -> None:
    page = new_page(browser)
    try:
        sign_in(page, history_demo, "leader", "/trends?period=last_week")
        wait_charts(page, 7)  # seven days
        assert figure_x(page, CATEGORY_FIG)[0].endswith("00:00")
        week_reported = kpi_text(page, "reported")
        assert int(week_reported.replace(",", "")) > 100
        # Every chart has its title, and the map its grid colors.
        titles = page.locator(".lq-tr-graph .gtitle").all_text_contents()
        assert "各类别案件量（堆叠）" in titles and len(titles) == 8

        # Yesterday: 24 hourly buckets, a smaller count, and the URL says so.
        pick(page, "lq-trends-period", "昨日")
        wait_charts(page, 24)
        page.wait_for_function(
            "prev => { const el = document.querySelector("
            "'.lq-tr-kpi[data-kpi=\"reported\"] .lq-tr-kpi-value');"
            " return el && el.textContent !== prev; }",
            arg=week_reported,
        )
        assert parse_qs(urlsplit(page.url).query)["period"] == ["yesterday"]
        day_reported = int(kpi_text(page, "reported").replace(",", ""))
        assert 0 < day_reported < int(week_reported.replace(",", ""))

        # This month by week: one bucket per Monday the month touches.
        pick(page, "lq-trends-period", "本月")
        page.click("#lq-trends-granularity label:has-text('周')")
        page.wait_for_function("() => new URLSearchParams(location.search).get('g') === 'week'")
        zone = ZoneInfo("Asia/Shanghai")
        today = datetime.now(zone).date()
        first = today.replace(day=1)
        mondays = {(first.toordinal() - first.weekday() + 7 * k) for k in range(6)}
        expected = sum(
            1 for m in mondays if m <= today.toordinal()
        )  # Mondays (weeks) from the month's first week to this one
        wait_charts(page, expected)

        # The link reproduces the view.
        url = page.url
        again = new_page(browser)
        try:
            again.context.add_cookies(page.context.cookies())
            again.goto(url)
            wait_charts(again, expected)
            assert again.inner_text("#lq-trends-period") == "本月"
        finally:
            close(again)
    finally:
        close(page)


def test_replay_exports_and_screenshot(browser: Browser, history_demo: DemoProcess) -> None:
    page = new_page(browser)
    try:
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        sign_in(page, history_demo, "leader", f"/trends?period=last_week&replay={today}&shift=all")
        wait_charts(page, 7)
        page.wait_for_function(
            "() => !document.getElementById('lq-trends-replay-play').disabled", timeout=60_000
        )
        loaded = page.evaluate("lq.trends.replay.data.cases.length")
        assert loaded > 0
        # Jump to the middle of the day and play: cases appear, units move.
        page.evaluate("window.dash_clientside.lqTrends.seek(500)")
        page.click("#lq-trends-replay-play")
        page.wait_for_function("() => lq.trends.replay.playing && lq.trends.replay.shown > 0")
        start = page.evaluate("lq.trends.replay.t")
        page.wait_for_function(f"() => lq.trends.replay.t > {start} + 60000")  # a minute, at 60×
        assert page.locator("#lq-trends-map path.leaflet-interactive").count() > 100
        page.click("#lq-trends-replay-play")  # pause
        page.wait_for_function("() => !lq.trends.replay.playing")

        # The tables as CSV: docs/kpis.md's names, one row per day.
        with page.expect_download() as download:
            page.click("#lq-trends-csv-series")
        text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][:4] == ["bucket", "reported", "open", "disposal_rate"]
        assert len(rows) == 8
        with page.expect_download() as download:
            page.click("#lq-trends-excel")
        assert download.value.suggested_filename.endswith(".xlsx")
        assert Path(download.value.path()).read_bytes()[:2] == b"PK"

        page.evaluate("document.querySelector('.lq-trends').scrollTop = 0")
        page.wait_for_timeout(500)
        target = (
            screenshot_dir() / "trends-1920x1080.png"
            if os.environ.get("LIANQIN_UPDATE_SCREENSHOTS") == "1"
            else Path(history_demo.data_dir).parent / "trends-1920x1080.png"
        )
        page.screenshot(path=str(target))
    finally:
        close(page)


def test_the_printable_briefing(browser: Browser, history_demo: DemoProcess) -> None:
    page = new_page(browser)
    try:
        sign_in(page, history_demo, "leader", "/trends/print?period=last_week")
        page.wait_for_selector(".lq-trp-chart .main-svg", timeout=60_000)
        assert page.locator(".lq-trp-chart").count() == 6
        assert page.locator(".lq-tr-kpitable tbody tr").count() == 10
        assert "部门排名" in page.inner_text(".lq-trprint")
        page.wait_for_timeout(500)
        page.emulate_media(media="print")
        # Nothing is wider than the printed page.
        overflow = page.evaluate(
            "() => [...document.querySelectorAll('.lq-trprint .main-svg, .lq-trprint table')]"
            ".filter(el => el.getBoundingClientRect().right >"
            " document.querySelector('.lq-trprint').getBoundingClientRect().right + 1).length"
        )
        assert overflow == 0
        pdf = page.pdf(format="A4", print_background=True)
        assert pdf[:4] == b"%PDF" and pdf.count(b"/Type /Page") >= 2
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.wait_for_timeout(800)  # plotly follows the width
        target = (
            screenshot_dir() / "trends-print.png"
            if os.environ.get("LIANQIN_UPDATE_SCREENSHOTS") == "1"
            else Path(history_demo.data_dir).parent / "trends-print.png"
        )
        page.screenshot(path=str(target), full_page=True)
    finally:
        close(page)


def test_a_viewer_is_refused(browser: Browser, history_demo: DemoProcess) -> None:
    page = new_page(browser)
    try:
        sign_in(page, history_demo, "viewer", "/wall")
        page.wait_for_url("**/wall")
        for path in ("/trends", "/trends/print?period=today"):
            response = page.goto(f"{history_demo.url}{path}")
            assert response is not None and response.status == 403
            assert "viewer" in page.inner_text("body")
    finally:
        close(page)


def test_the_page_runs_under_the_content_security_policy(
    browser: Browser, history_demo: DemoProcess
) -> None:
    """No inline script, no eval: the charts, the map colors and the replay work under the
    app's real Content-Security-Policy (only the waits above need eval, so they bypass it)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    try:
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        sign_in(page, history_demo, "leader", f"/trends?period=last_week&replay={today}")
        page.wait_for_selector(f"{CATEGORY_FIG} .main-svg", timeout=60_000)
        page.wait_for_selector("#lq-trends-replay-play:not([disabled])", timeout=60_000)
        page.wait_for_selector("#lq-trends-map path.leaflet-interactive", timeout=60_000)
        page.wait_for_function(
            "document.querySelectorAll('.lq-tr-kpi').length === 10", timeout=60_000
        )
        assert problems == []
    finally:
        context.close()
