"""The wall's panels in real Chromium on a running demo (with its simulator): both screen
sizes, nothing overflowing, KPIs and lists updating live, deadlines passing by the clock,
switchable layers, and the display datum conversion.

Set LIANQIN_UPDATE_SCREENSHOTS=1 to write the README's screenshots (assets/screenshots/).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from demo_process import DemoProcess
from helpers import close_page, open_page
from playwright.sync_api import Browser, Page

from dashboard.geo import wgs84_to_gcj02
from dashboard.theme import STATUS_COLORS

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "assets" / "screenshots"

PANELS = ("#lq-kpis", "#lq-units-panel", "#lq-categories", "#lq-ticker", "#lq-overdue-panel",
          "#lq-hourly", "#lq-legend", "#lq-clock", "#lq-connection", "#lq-wall-map")  # fmt: skip

# Every element outside the map's own panes must lie inside the viewport; Leaflet's panes
# hold markers beyond the map's edge on purpose (clipped by the map container).
OVERFLOW_JS = """
() => {
  const w = innerWidth, h = innerHeight, bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.leaflet-pane') || el.closest('[hidden]')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -0.5 || r.top < -0.5 || r.right > w + 0.5 || r.bottom > h + 0.5) {
      bad.push((el.id || el.className || el.tagName) + ' ' + JSON.stringify(r));
    }
  }
  const d = document.documentElement;
  return {bad: bad.slice(0, 10), scroll: d.scrollWidth > w || d.scrollHeight > h};
}
"""
# Text cut off inside a panel: an element whose content is wider or taller than its box
# without an ellipsis meant for it (titles may be ellipsized; figures never are).
FIGURES = ".lq-kpi-value, .lq-unit-count-value, .lq-bar-value, .lq-clock, .lq-count"
CLIPPED_FIGURES_JS = f"""
() => [...document.querySelectorAll('{FIGURES}')]
  .filter(el => el.scrollWidth > el.clientWidth + 1)
  .map(el => el.className + ': ' + el.textContent)
"""


def open_wall(browser: Browser, demo: DemoProcess, w: int, h: int, query: str = "") -> Page:
    page = open_page(browser, w, h)
    page.goto(f"{demo.url}/wall?token={demo.wall_token}{query}")
    page.wait_for_function(
        "window.lianqin && window.lianqin.connected && window.lianqin.seq !== null"
        " && window.lianqin.kpis !== null",
        timeout=30_000,
    )
    return page


def xadd_case(
    client: redis.Redis, case_id: str, status: str, age_s: float = 0, **extra: Any
) -> None:
    fields = {"id": case_id, "status": status, "ts": str(int((time.time() - age_s) * 1000))}
    fields.update({k: str(v) for k, v in extra.items()})
    client.xadd("lq:incidents", fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("w", "h"), [(1920, 1080), (3840, 2160)])
def test_the_wall_fills_the_screen_with_every_panel_and_nothing_overflows(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis, w: int, h: int
) -> None:
    # Overdue for hours, so that it is the most urgent (priority 1, longest overdue) whatever
    # the simulator's own overdue cases: the list shows the rows that fit, most urgent first.
    xadd_case(producer, f"OVR-{w}", "registered", age_s=6 * 3600, lat=29.372, lon=106.262,
              category="fire_hazard", priority=1, source="iot", title="配电箱温度异常")  # fmt: skip
    page = open_wall(browser, live_demo, w, h)
    try:
        for selector in PANELS:
            box = page.locator(selector).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, selector
        assert page.locator("#lq-kpis .lq-kpi").count() == 12
        page.wait_for_function(  # the worker pushes KPIs as the warm start's cases land
            "parseInt(document.querySelector('#lq-kpi-reported .lq-kpi-value').textContent) >= 1",
            timeout=20_000,
        )
        assert page.locator("#lq-hourly .lq-hour").count() == 24
        page.wait_for_selector("#lq-ticker li[data-case]")
        page.wait_for_selector(f'#lq-overdue-panel li[data-case="OVR-{w}"].lq-od-urgent')
        page.wait_for_function("document.getElementById('lq-connection').dataset.state === 'live'")
        page.wait_for_timeout(1500)  # fonts, the first KPI push, the lists' fitting
        result = page.evaluate(OVERFLOW_JS)
        assert result == {"bad": [], "scroll": False}
        assert page.evaluate(CLIPPED_FIGURES_JS) == []
        # The panels scale with the screen: the KPI figures are ~3.7 % of its height.
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('.lq-kpi-value')).fontSize)"
        )
        assert abs(size - 0.037 * h) < 1.5
        if os.environ.get("LIANQIN_UPDATE_SCREENSHOTS") == "1":
            page.screenshot(path=str(SCREENSHOTS / f"wall-{w}x{h}.png"))
        else:
            page.screenshot(path=str(Path(live_demo.data_dir).parent / f"wall-{w}x{h}.png"))
    finally:
        close_page(page)


def test_kpis_and_the_ticker_update_live_without_a_reload(
    browser: Browser, live_demo: DemoProcess, producer: redis.Redis
) -> None:
    page = open_wall(browser, live_demo, 1920, 1080)
    try:
        page.evaluate("window.__lqMarker = 1")  # gone if the page reloads
        before = page.evaluate("window.lianqin.kpis.today.reported")
        xadd_case(producer, "TICK-1", "reported", lat=29.368, lon=106.255, category="dispute",
                  source="hotline_12345", title="<b>邻里</b>纠纷")  # fmt: skip
        page.wait_for_selector('#lq-ticker li[data-case="TICK-1"]', timeout=10_000)
        row = page.inner_text('#lq-ticker li[data-case="TICK-1"]')
        assert "矛盾纠纷" in row and "12345热线" in row and "<b>邻里</b>纠纷" in row  # as text
        page.wait_for_function(f"window.lianqin.kpis.today.reported > {before}", timeout=10_000)
        assert page.evaluate("window.__lqMarker") == 1
    finally:
        close_page(page)


def test_a_deadline_passes_by_the_clock_alone(
    browser: Browser, demo: DemoProcess, producer_redis: redis.Redis
) -> None:
    # On a demo without the simulator: its overdue cases could fill the list before CLK-1.
    producer = producer_redis
    page = open_wall(browser, demo, 1920, 1080)
    try:
        # Registered 56 s ago: the dispatch deadline (60 s) passes in ~4 s, with no message.
        xadd_case(producer, "CLK-1", "registered", age_s=56, lat=29.375, lon=106.27,
                  category="noise", priority=2, title="噪音")  # fmt: skip
        page.wait_for_function("window.lianqin.cases['CLK-1'] !== undefined", timeout=10_000)
        assert page.evaluate("window.lianqin.cases['CLK-1'].overdue") is False
        assert page.locator('#lq-overdue-panel li[data-case="CLK-1"]').count() == 0
        page.wait_for_function("window.lianqin.cases['CLK-1'].overdue === true", timeout=15_000)
        page.wait_for_selector('path[data-ring="CLK-1"].lq-overdue')
        page.wait_for_selector(  # in the list (shown when it fits: the most urgent first)
            '#lq-overdue-panel li[data-case="CLK-1"]', state="attached", timeout=5_000
        )
        style = page.evaluate("lq.live.caseStyle('CLK-1')")
        assert style["fill"] == STATUS_COLORS["registered"] and style["ring"] is True
        # Dispatched: a new stage, a new deadline: the ring goes.
        xadd_case(producer, "CLK-1", "dispatched", unit="P-001")
        page.wait_for_function(
            "window.lianqin.cases['CLK-1'].status === 'dispatched'"
            " && !window.lianqin.cases['CLK-1'].overdue",
            timeout=10_000,
        )
        page.wait_for_function("!document.querySelector('path[data-ring=\"CLK-1\"]')")
    finally:
        close_page(page)


def test_layers_switch_and_a_screen_can_pick_its_own(
    browser: Browser, live_demo: DemoProcess
) -> None:
    page = open_wall(browser, live_demo, 1920, 1080)
    try:
        page.wait_for_selector(".lq-fac-station")
        assert page.locator(".lq-fac-camera").count() == 0  # off by default
        labels = page.eval_on_selector_all(
            ".leaflet-control-layers-overlays label", "els => els.map(e => e.textContent.trim())"
        )
        for name in ("道路水系", "网格", "微网格", "网格案件密度", "巡区", "警务站", "视频监控",
                     "物联感知", "案件", "力量"):  # fmt: skip
            assert name in labels, (name, labels)
        page.hover(".leaflet-control-layers")
        page.get_by_label("视频监控", exact=True).check()
        page.wait_for_function("document.querySelectorAll('.lq-fac-camera').length === 105")
        page.get_by_label("案件", exact=True).uncheck()
        page.wait_for_function("document.querySelectorAll('path[data-case]').length === 0")
        page.get_by_label("案件", exact=True).check()  # the live dots come back, still live
        page.wait_for_function("document.querySelectorAll('path[data-case]').length > 0")
    finally:
        close_page(page)
    page = open_wall(browser, live_demo, 1920, 1080, "&layers=cases,units,sensors,density")
    try:
        page.wait_for_function("document.querySelectorAll('.lq-fac-sensor').length === 40")
        assert page.locator(".lq-fac-station").count() == 0
        page.wait_for_function(  # the density layer colors the grids with open cases
            "Object.keys(lq.live.density.counts).length > 0", timeout=10_000
        )
    finally:
        close_page(page)


def test_gcj02_display_matches_the_server(browser: Browser, live_demo: DemoProcess) -> None:
    page = open_wall(browser, live_demo, 1920, 1080)
    try:
        for lat, lon in ((29.37, 106.26), (39.9087, 116.3975), (22.54, 114.05), (48.85, 2.35)):
            got = page.evaluate(f"lq.geo.wgs84ToGcj02({lat}, {lon})")
            want = wgs84_to_gcj02(lat, lon)
            assert abs(got[0] - want[0]) < 1e-9 and abs(got[1] - want[1]) < 1e-9
    finally:
        close_page(page)


def test_english_panels(browser: Browser, live_demo: DemoProcess) -> None:
    page = open_wall(browser, live_demo, 1920, 1080, "&lang=en")
    try:
        assert page.inner_text("#lq-kpis .lq-panel-title") == "Today"
        assert "Newest cases" in page.inner_text("#lq-ticker")
        assert page.evaluate(CLIPPED_FIGURES_JS) == []
    finally:
        close_page(page)


def test_durations_never_read_sixty_seconds(browser: Browser, live_demo: DemoProcess) -> None:
    """Minutes and seconds come from one rounding (119.6 s once read "1分60秒")."""
    page = open_wall(browser, live_demo, 1920, 1080)
    try:
        got = page.evaluate("[0.4, 59.6, 65.4, 119.6, 3599.6].map(s => lq.panels.fmtDuration(s))")
        assert got == ["0秒", "1分", "1分5秒", "2分", "1.0小时"], got
        every = page.evaluate(
            "Array.from({length: 7200}, (_, i) => lq.panels.fmtDuration(i / 2))"
            ".filter(t => /(^|[^0-9])60秒/.test(t))"
        )
        assert every == []
    finally:
        close_page(page)


@pytest.mark.parametrize(("lang", "pattern"), [("zh-CN", r"^还有 \d+ 条$"), ("en", r"^\d+ more$")])
def test_the_overdue_panel_says_how_many_more_rows_there_are(
    browser: Browser, demo: DemoProcess, producer_redis: redis.Redis, lang: str, pattern: str
) -> None:
    """At 1366×768 the overdue panel holds a few rows; the rest are counted under them."""
    for n in range(30):
        xadd_case(producer_redis, f"OVM-{n:02d}", "registered", age_s=5 * 3600 + n,
                  lat=29.370 + n * 1e-4, lon=106.262, category="noise", priority=3,
                  title=f"超期案件 {n}")  # fmt: skip
    page = open_wall(browser, demo, 1366, 768, "&lang=en" if lang == "en" else "")
    try:
        page.wait_for_function(
            "parseInt(document.querySelector('#lq-overdue-panel .lq-panel-count').textContent)"
            " >= 30",
            timeout=20_000,
        )
        page.wait_for_selector("#lq-overdue-panel .lq-more:not([hidden])", timeout=10_000)
        page.wait_for_timeout(500)  # the lists settle after the fonts
        state = page.evaluate(
            """() => {
              const panel = document.getElementById('lq-overdue-panel');
              const rows = [...panel.querySelectorAll('li[data-key]')];
              const note = panel.querySelector('.lq-more');
              return {total: parseInt(panel.querySelector('.lq-panel-count').textContent),
                      shown: rows.filter(r => !r.hidden).length,
                      rest: parseInt(note.dataset.more), text: note.textContent,
                      noteBottom: note.getBoundingClientRect().bottom,
                      panelBottom: panel.getBoundingClientRect().bottom};
            }"""
        )
        assert state["shown"] >= 1 and state["rest"] > 0, state
        assert state["shown"] + state["rest"] == state["total"], state
        assert re.match(pattern, state["text"]) and str(state["rest"]) in state["text"], state
        assert state["noteBottom"] <= state["panelBottom"] + 0.5, state  # inside its panel
        assert page.evaluate(OVERFLOW_JS) == {"bad": [], "scroll": False}
        page.screenshot(path=str(Path(demo.data_dir).parent / f"wall-1366x768-{lang}.png"))
    finally:
        close_page(page)
