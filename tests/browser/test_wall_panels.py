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


# The map's case dots (one SVG path per live case on the map).
DOTS_SHOWN = "document.querySelectorAll('path[data-case]').length > 0"
# Waits for what the live path brings (the warm start's cases, a KPI push): generous, as
# a loaded machine may take long, and never a sleep.
LIVE_TIMEOUT = 60_000


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
        page.wait_for_selector(".leaflet-pane .lq-fac-station")
        assert page.locator(".leaflet-pane .lq-fac-camera").count() == 0  # off by default
        labels = page.eval_on_selector_all(
            ".leaflet-control-layers-overlays label", "els => els.map(e => e.textContent.trim())"
        )
        for name in ("道路水系", "网格", "微网格", "网格案件密度", "巡区", "警务站", "视频监控",
                     "物联感知", "案件", "力量"):  # fmt: skip
            assert name in labels, (name, labels)
        # The live dots first (the warm start's cases, through the snapshot or the deltas):
        # unticking the layer proves nothing while there is nothing on it.
        page.wait_for_function(DOTS_SHOWN, timeout=LIVE_TIMEOUT)
        page.hover(".leaflet-control-layers")
        page.get_by_label("视频监控", exact=True).check()
        page.wait_for_function(
            "document.querySelectorAll('.leaflet-pane .lq-fac-camera').length === 105"
        )
        page.get_by_label("案件", exact=True).uncheck()
        page.wait_for_function("document.querySelectorAll('path[data-case]').length === 0")
        assert page.evaluate("Object.keys(window.lianqin.cases).length") > 0  # kept, not drawn
        page.get_by_label("案件", exact=True).check()  # the live dots come back, still live
        page.wait_for_function(DOTS_SHOWN, timeout=LIVE_TIMEOUT)
    finally:
        close_page(page)
    page = open_wall(browser, live_demo, 1920, 1080, "&layers=cases,units,sensors,density")
    try:
        page.wait_for_function(
            "document.querySelectorAll('.leaflet-pane .lq-fac-sensor').length === 40"
        )
        assert page.locator(".leaflet-pane .lq-fac-station").count() == 0
        page.wait_for_function(DOTS_SHOWN, timeout=LIVE_TIMEOUT)
        page.wait_for_function(  # the density layer colors the grids with open cases
            "Object.keys(lq.live.density.counts).length > 0", timeout=LIVE_TIMEOUT
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


# Every piece of text on the wall (header, KPI tiles, side panels, legend) is legible (not
# under 1.8 % of the screen height) and fits its box:
# no element wider than its box, no ellipsis in effect, and nothing below its panel's edge
# (a panel clips what overflows it). Inline elements have no scroll box: they are measured
# by their rectangles against their block's.
FITS_JS = """
() => {
  const bad = [];
  const roots = document.querySelectorAll('.lq-header, .lq-side .lq-box, .lq-legend');
  for (const root of roots) {
    const outer = root.getBoundingClientRect();
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (el.closest('[hidden]') || !el.getClientRects().length) continue;
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const cs = getComputedStyle(el);
      const name = (el.id || el.className) + ' "' + el.textContent.trim().slice(0, 30) + '"';
      // legible from 5 m: no text under 1.8 % of the screen height (README "The wall")
      if (parseFloat(cs.fontSize) < Math.max(0.018 * innerHeight, 14) - 0.5) {
        bad.push('small ' + name + ' ' + cs.fontSize);
      }
      if (cs.display.startsWith('inline') && cs.display !== 'inline-block') {
        const block = el.parentElement.getBoundingClientRect();
        for (const r of el.getClientRects()) {
          if (r.right > block.right + 1 || r.left < block.left - 1) bad.push('wide ' + name);
        }
      } else if (el.scrollWidth > el.clientWidth + 1) {
        bad.push('wide ' + name + ' ' + el.scrollWidth + '>' + el.clientWidth);
      }
      const r = el.getBoundingClientRect();
      if (r.bottom > outer.bottom + 1 || r.right > outer.right + 1) bad.push('outside ' + name);
      const tile = el.closest('.lq-kpi');
      if (tile) {
        const t = tile.getBoundingClientRect();
        if (r.bottom > t.bottom + 1 || r.right > t.right + 1) bad.push('out of tile ' + name);
      }
    }
  }
  return bad;
}
"""


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize(("w", "h"), [(1366, 768), (1920, 1080), (3840, 2160)])
def test_every_text_on_the_wall_fits_with_a_day_of_data(
    browser: Browser, live_demo: DemoProcess, w: int, h: int, lang: str
) -> None:
    """P90 lines, trend deltas against yesterday ("P90 2分…", "P9…"), "Volunte…": with the
    demo's history yesterday has data, so every tile carries its longest text."""
    page = open_wall(browser, live_demo, w, h, "&lang=en" if lang == "en" else "")
    try:
        page.wait_for_function(  # yesterday's figures: the trend deltas are drawn
            "[...document.querySelectorAll('#lq-kpis .lq-kpi-trend')]"
            ".filter(e => e.textContent.length > 1).length >= 3"
            " && document.querySelector('#lq-kpi-dispatch_p50_s .lq-kpi-sub').textContent"
            " && document.querySelector('#lq-units-panel .lq-unit-kinds').textContent"
            " && document.querySelector('#lq-ticker li[data-case]')",
            timeout=30_000,
        )
        page.evaluate("document.fonts.ready")
        page.wait_for_timeout(1200)  # the lists' fitting runs every second
        assert page.evaluate(FITS_JS) == []
        assert page.evaluate(CLIPPED_FIGURES_JS) == []
        assert page.evaluate(OVERFLOW_JS) == {"bad": [], "scroll": False}
        # The targets stand next to the times they judge, with the share of cases within
        # them (the policy's 60 / 300 s; dispatch_within_target_rate, arrival_…).
        texts = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#lq-kpis .lq-kpi')]"
            ".map(t => [t.dataset.kpi, t.querySelector('.lq-kpi-target').textContent]))"
        )
        rate = r"(100|\d{1,2}\.\d)%"
        if lang == "zh-CN":
            assert re.fullmatch(f"1分内 {rate}", texts["dispatch_p50_s"]), texts
            assert re.fullmatch(f"5分内 {rate}", texts["arrival_p50_s"]), texts
        else:
            assert re.fullmatch(f"≤ 1m: {rate}", texts["dispatch_p50_s"]), texts
            assert re.fullmatch(f"≤ 5m: {rate}", texts["arrival_p50_s"]), texts
        # 在岗力量: on-duty units only (available + busy), off duty said apart
        online = page.evaluate(
            "JSON.parse(document.getElementById('lq-kpi-units_online').dataset.value)"
        )
        assert online["total"] == online["available"] + online["busy"]
    finally:
        close_page(page)


@pytest.mark.parametrize(("w", "h"), [(1366, 768), (1920, 1080)])
def test_the_category_bars_add_up_to_the_days_total(
    browser: Browser, live_demo: DemoProcess, w: int, h: int
) -> None:
    """No category is dropped silently (7 of 12 were shown, summing to 260 of 337): those
    without a row of their own are one "其他（n类）" row, so the bars sum to the total."""
    page = open_wall(browser, live_demo, w, h)
    try:
        page.wait_for_selector("#lq-categories .lq-bar-row[data-count]")
        page.wait_for_timeout(1200)  # the bars are regrouped once the rows are measured
        state = page.evaluate(
            """() => {
              const rows = [...document.querySelectorAll('#lq-categories .lq-bar-row')]
                .filter(r => !r.hidden);
              const other = rows.find(r => r.dataset.key === '__other__');
              return {
                sum: rows.reduce((s, r) => s + parseInt(r.dataset.count), 0),
                byCategory: window.lianqin.kpis.by_category,
                named: rows.filter(r => r !== other).length,
                other: other ? other.querySelector('.lq-bar-label').textContent : null,
                last: rows.length && rows[rows.length - 1] === other,
              };
            }"""
        )
        counts = state["byCategory"]
        assert state["sum"] == sum(counts.values())
        folded = len(counts) - state["named"]
        if folded:
            assert state["last"] and state["other"] == f"其他（{folded}类）"
        else:
            assert state["other"] is None
    finally:
        close_page(page)


def test_years_old_open_cases_stay_off_the_lists_and_ages_read_in_days(
    browser: Browser, live_demo: DemoProcess
) -> None:
    """An import's case open for years read "超时 4779.5天" / "42356小时前": it is outside
    the wall's live scope (today and the 7 days before), and ages past a day are days."""
    page = open_wall(browser, live_demo, 1920, 1080)
    try:
        got = page.evaluate(
            "[[3599, 86399, 86400, 36 * 3600, 12.5 * 86400]"
            ".map(s => lq.panels.fmtAge(s * 1000)),"
            " [86399, 1.5 * 86400, 4779.5 * 86400].map(s => lq.panels.fmtDuration(s))]"
        )
        assert got == [
            ["59分钟前", "23小时前", "1天前", "1天前", "12天前"],
            ["24.0小时", "1.5天", "4779天"],
        ]
        page.wait_for_function("window.lianqin.kpis.scope_start > 0")
        state = page.evaluate(
            """() => {
              const now = Date.now(), k = window.lianqin.kpis;
              const old = {id: 'OLD-IMPORT', status: 'dispatched', category: 'noise',
                           priority: 1, title: 'old', reported: now - 4779 * 86400e3,
                           deadline: now - 4779 * 86400e3 + 3600e3, _overdue: true};
              const recent = Object.assign({}, old, {id: 'RECENT-OD',
                           reported: k.scope_start + 3600e3, deadline: k.scope_start + 7200e3});
              window.lianqin.cases[old.id] = old;
              window.lianqin.cases[recent.id] = recent;
              lq.panels.render();
              const q = (panel, id) =>
                document.querySelectorAll(`#${panel} li[data-case="${id}"]`).length;
              return {old: q('lq-overdue-panel', 'OLD-IMPORT') + q('lq-ticker', 'OLD-IMPORT'),
                      recent: q('lq-overdue-panel', 'RECENT-OD')};
            }"""
        )
        assert state == {"old": 0, "recent": 1}
    finally:
        close_page(page)
