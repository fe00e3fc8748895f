"""The count-surveillance detector on hand-built series (no database, no randomness)."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.services.warning import (
    AlertBook,
    CaseTable,
    GridInfo,
    PlaceIndex,
    WarningSettings,
    detect,
)
from dashboard.services.warning.alerts import statistical_text
from dashboard.services.warning.baseline import baseline_counts, week_anchors
from dashboard.services.warning.detector import predictive_sf, thresholds

WEEK = 7 * 86400.0
NOW = 1_790_000_000.0  # a Monday-ish instant; only differences matter
CATS = ("noise", "dispute", "fire_hazard")


def places() -> PlaceIndex:
    grids = [
        GridInfo("G1", "福城社区第4网格", "Z1", 29.37, 106.26),
        GridInfo("G2", "福城社区第5网格", "Z1", 29.37, 106.27),
        GridInfo("G3", "双福社区第1网格", "Z2", 29.38, 106.26),
    ]
    return PlaceIndex.build(grids, {"Z1": "第一巡区", "Z2": "第二巡区"}, CATS)


def table(events: list[tuple[float, str, str]]) -> CaseTable:
    times = [t for t, _, _ in events]
    return CaseTable.build(
        places(),
        times,
        [g for _, g, _ in events],
        [c for _, _, c in events],
        ids=[f"C{i}" for i in range(len(events))],
    )


def regular(start: float, end: float, every_s: float, grid: str, cat: str) -> list:
    return [(t, grid, cat) for t in np.arange(start, end, every_s)]


def history(weeks: int = 9) -> list:
    """Noise every 10 min in G1 and every 30 min in G2, a dispute every 100 min in G2."""
    start = NOW - weeks * WEEK
    return (
        regular(start, NOW, 600, "G1", "noise")
        + regular(start + 11, NOW, 1800, "G2", "noise")
        + regular(start + 7, NOW, 6000, "G2", "dispute")
    )


def test_a_flat_series_raises_nothing() -> None:
    t = table(history())
    for minute in range(0, 24 * 60, 7):  # a whole day of runs
        assert detect(t, places(), NOW - minute * 60, since=NOW - 9 * WEEK) == []


def test_a_threefold_spike_raises_at_the_right_place_category_and_window() -> None:
    events = history()
    # For the last 2 h noise in G1 runs at 3× its rate: 24 extra (every 5 min)
    events += [(NOW - 7200 + 150 + i * 300, "G1", "noise") for i in range(24)]
    signals = detect(table(events), places(), NOW, since=NOW - 9 * WEEK)
    assert signals, "a 3× spike over 2 h must raise"
    (event,) = AlertBook(places()).update(NOW, signals)
    top = event.alert
    assert (top.place, top.category) == ("G1", "noise")
    assert top.window_s == 7200
    assert top.observed == 36  # 12 usual ones (every 10 min) + 24 extra
    assert top.expected == pytest.approx(12.0, rel=0.03)  # × the level ratio (1.02)
    assert top.level in ("blue", "yellow", "orange", "red")
    assert len(top.cases) == top.observed
    assert top.message == "福城社区第4网格 噪音扰民 2小时内 36 起，常态 12 起"
    # nothing is raised for the grid that stayed flat
    assert not [s for s in signals if s.place.code in ("G2", "G3")]


def test_levels_rise_with_the_spike() -> None:
    def top_level(extra: int) -> str:
        events = history() + [(NOW - 1700 + i * 10, "G1", "noise") for i in range(extra)]
        signals = detect(table(events), places(), NOW, since=NOW - 9 * WEEK)
        return AlertBook(places()).update(NOW, signals)[0].alert.level

    order = ("blue", "yellow", "orange", "red")
    levels = [top_level(n) for n in (10, 18, 40)]
    assert [order.index(x) for x in levels] == sorted(order.index(x) for x in levels)
    assert levels[-1] == "red"


def test_seasonality_does_not_raise_at_its_usual_peak() -> None:
    # Every day 18:00–19:00 brings 12 noise cases in G3 (one every 5 min), nothing else:
    # the 18:30 peak of today is its usual self and must not raise.
    events = history()
    day0 = NOW - 9 * WEEK
    for d in range(9 * 7 + 1):
        peak = day0 + d * 86400 + 18 * 3600
        events += [(peak + i * 300, "G3", "noise") for i in range(12)]
    t = table([e for e in events if e[0] < NOW + 9 * WEEK])
    at_peak = day0 + 9 * 7 * 86400 + 18.9 * 3600
    assert at_peak > NOW - 9 * WEEK
    flagged = detect(t, places(), at_peak, since=day0)
    assert [s for s in flagged if s.place.code == "G3"] == []


def test_a_place_with_no_history_needs_more_cases() -> None:
    p = predictive_sf(np.array([3, 3]), np.array([0, 48]), 24, 0.5)
    assert p[0] < p[1]  # 3 where 0 were usual is rarer than 3 where 2 were usual
    assert p[0] > predictive_sf(np.array([3]), np.array([0]), 10_000, 0.5)[0]


def test_thresholds_spend_the_same_budget_on_each_level() -> None:
    pl = places()
    s = WarningSettings(false_alarms_per_day=1.0)
    alpha = thresholds(pl, s, 1800)
    levels = pl.level_of_series()
    per_level = [alpha[levels == k].sum() * 48 for k in range(3)]
    assert per_level == pytest.approx([0.4 / 3] * 3)  # the 30-min window's share: 0.4


def test_baseline_skips_weeks_before_the_history() -> None:
    t = table(history(weeks=2))
    _total, n = baseline_counts(t, NOW, 1800, weeks=8, since=NOW - 2 * WEEK - 1800)
    assert n == 2
    assert week_anchors(NOW, 2) == [NOW - WEEK, NOW - 2 * WEEK]


def test_one_spike_is_one_alert_that_escalates() -> None:
    pl = places()
    book = AlertBook(pl, quiet_s=1800)
    base = history()
    raised, escalated = [], []
    extra: list = []
    for minute in range(0, 90):
        now = NOW + minute * 60
        if minute % 2 == 0:
            extra.append((now - 1, "G1", "noise"))
        signals = detect(table(base + extra), pl, now, since=NOW - 9 * WEEK)
        for ev in book.update(now, signals):
            (raised if ev.kind == "raised" else escalated).append(ev)
    assert len(raised) == 1, [e.alert.message for e in raised]
    assert raised[0].alert.place in ("G1", "Z1", "district")
    assert any(e.kind == "escalated" for e in escalated)
    assert book.ongoing[0].level != "blue"


def test_the_alert_sentence() -> None:
    assert (
        statistical_text("福城社区第4网格", "noise", 7200, 9, 1.2, "zh-CN")
        == "福城社区第4网格 噪音扰民 2小时内 9 起，常态 1.2 起"
    )
    assert (
        statistical_text("福城社区第4网格", "noise", 7200, 9, 1.2, "en")
        == "福城社区第4网格 Noise: 9 cases in 2 h, usually 1.2"
    )


def test_alert_fields_are_flat_text() -> None:
    pl = places()
    events = history() + [(NOW - 1700 + i * 10, "G1", "noise") for i in range(10)]
    signals = detect(table(events), pl, NOW, since=NOW - 9 * WEEK)
    (ev, *_) = AlertBook(pl).update(NOW, signals)
    fields = ev.alert.fields()
    assert {
        "id",
        "level",
        "kind",
        "place",
        "category",
        "window_s",
        "observed",
        "expected",
        "ts",
        "status",
        "message",
        "cases",
    } <= set(fields)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["kind"] == "statistical" and fields["status"] == "open"


def test_a_rise_common_to_every_place_is_taken_out() -> None:
    from dashboard.services.warning.baseline import level_ratio

    # The last week is 1.6× busier than the eight before, everywhere (a season, a campaign
    # that brings more calls): the baselines are scaled up rather than every place alarming.
    events = []
    for k in range(9):
        rate = 1.6 if k == 0 else 1.0
        start = NOW - (k + 1) * WEEK
        events += regular(start, start + WEEK, 60 / rate, "G1", "noise")
        events += regular(start + 5, start + WEEK, 90 / rate, "G2", "dispute")
    t = table(events)
    assert level_ratio(t, NOW, weeks=8, since=NOW - 9 * WEEK) == pytest.approx(1.6, rel=0.01)
    plain = detect(t, places(), NOW, WarningSettings(level_adjust=False), since=NOW - 9 * WEEK)
    assert {s.place.code for s in plain} >= {"G1", "G2"}
    assert detect(t, places(), NOW, since=NOW - 9 * WEEK) == []
