"""The KPI engine against hand-computed fixtures, on the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import SH, fixture_cases, local, make_case

from dashboard.models import Grid, Unit
from dashboard.runtime import Runtime
from dashboard.services.kpis import (
    KPI_NAMES,
    KpiOptions,
    Period,
    by_category,
    compute_kpis,
    day_period,
    hourly,
    wall_summary,
)
from dashboard.sla import SlaPolicy

DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=SH).astimezone(UTC)


def options() -> KpiOptions:
    return KpiOptions(
        policy=SlaPolicy(),
        categories=(
            "dispute",
            "public_security",
            "traffic",
            "fire_hazard",
            "environment",
            "noise",
            "other",
        ),
        unit_stale_s=300,
        coverage_speed_kmh=18.0,  # 1500 m in 5 minutes
    )


def grid(code: str, lat: float, lon: float, level: str = "grid") -> Grid:
    d = 0.001
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return Grid(
        code=code,
        name=code,
        kind="residential",
        level=level,
        geometry={"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        centroid_lat=lat,
        centroid_lon=lon,
    )


def unit(unit_id: str, status: str, lat: float, lon: float, age_s: float) -> Unit:
    return Unit(
        id=unit_id,
        name=unit_id,
        kind="patrol",
        status=status,
        last_lat=lat,
        last_lon=lon,
        last_ts=NOW - timedelta(seconds=age_s),
    )


@pytest.fixture
def loaded(runtime: Runtime) -> Runtime:
    with runtime.db.write() as session:
        session.add_all(fixture_cases())
        session.add_all(
            [
                grid("G1", 29.37, 106.26),  # U1 stands on it
                grid("G2", 29.379, 106.26),  # ~1.0 km north of U1: covered
                grid("G3", 29.388, 106.26),  # ~2.0 km: not covered
                grid("G4", 29.30, 106.20),  # only the busy U2 is near: not covered
                grid("M1", 29.30, 106.20, level="micro"),  # micro-grids do not count
            ]
        )
        session.add_all(
            [
                unit("U1", "available", 29.37, 106.26, age_s=60),
                unit("U2", "busy", 29.30, 106.20, age_s=100),
                unit("U3", "available", 29.30, 106.20, age_s=400),  # offline: stale ping
                unit("U4", "off_duty", 29.40, 106.30, age_s=10),
            ]
        )
    return runtime


def test_every_kpi_against_the_hand_computed_fixture(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        kpis = compute_kpis(session, period=day_period(DAY, SH), now=NOW, options=options())
    assert list(kpis) == list(KPI_NAMES)
    assert kpis == {
        "reported": 7,  # A B C D F G I (E cancelled, H the day before)
        "open": 4,  # C D G I
        "disposal_rate": pytest.approx(3 / 7),  # A B F
        "closure_rate": pytest.approx(2 / 7),  # A F
        "on_time_rate": pytest.approx(3 / 4),  # resolved: A B F G; late: B
        "overdue": 4,  # C D H I, whatever their day
        "dispatch_p50_s": 60.0,  # [0, 30, 60, 60, 120, 600]
        "dispatch_p90_s": 360.0,  # rank 4.5: 120 + (600 - 120) / 2
        "arrival_p50_s": 600.0,  # [150, 240, 600, 600, 840]
        "arrival_p90_s": 744.0,  # rank 3.6: 600 + 240 * 0.6
        # within the policy's 60 s: A 60, C 30, F 60, I 0 of A B C F G I (B 120, G 600)
        "dispatch_within_target_rate": pytest.approx(4 / 6),
        # within 300 s: A 240, C 150 of A B C F G (B 600, F 840, G 600)
        "arrival_within_target_rate": pytest.approx(2 / 5),
        "rework_rate": pytest.approx(1 / 4),  # G
        "dispute_resolution_rate": pytest.approx(1 / 3),  # A of A D I
        # on duty: U1 available, U2 busy (U4 off duty apart, U3 stale)
        "units_online": {"available": 1, "busy": 1, "off_duty": 1, "total": 2},
        "coverage_5min": 0.5,  # G1 G2 of four grids
        # No assignments in this fixture (tests/integration/test_kpis_responders.py has them).
        "joint_rate": 0.0,  # none of the 6 dispatched has two departments
        "acceptance_p50_s": None,
        "acceptance_p90_s": None,
        "on_time_acceptance_rate": None,
        "transfer_count": 0,
        "return_count": 0,
        "callback_rate": 0.0,  # 4 resolved, no callback
        "satisfaction_rate": None,
    }
    assert isinstance(kpis["reported"], int) and isinstance(kpis["open"], int)


def test_an_empty_day_gives_zero_counts_and_null_rates(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        kpis = compute_kpis(
            session, period=day_period(date(2026, 11, 1), SH), now=NOW, options=options()
        )
    assert kpis["reported"] == 0 and kpis["open"] == 0
    for name in (
        "disposal_rate",
        "closure_rate",
        "on_time_rate",
        "rework_rate",
        "dispute_resolution_rate",
        "dispatch_p50_s",
        "dispatch_p90_s",
        "arrival_p50_s",
        "arrival_p90_s",
        "dispatch_within_target_rate",
        "arrival_within_target_rate",
    ):
        assert kpis[name] is None, name
    assert kpis["overdue"] == 4  # live, not per period


def test_an_empty_database(runtime: Runtime) -> None:
    with runtime.db.read() as session:
        kpis = compute_kpis(session, period=day_period(DAY, SH), now=NOW, options=options())
    assert kpis["reported"] == 0 and kpis["overdue"] == 0
    assert kpis["units_online"] == {"available": 0, "busy": 0, "off_duty": 0, "total": 0}
    assert kpis["coverage_5min"] is None  # no grids: no denominator


def test_the_day_is_the_configured_time_zones_day(runtime: Runtime) -> None:
    # 07:30 in Shanghai on the 23rd is 23:30 UTC on the 22nd.
    early = datetime(2026, 11, 23, 7, 30, tzinfo=SH)
    with runtime.db.write() as session:
        session.add(make_case("TZ", "reported", "noise", early.astimezone(UTC)))
    with runtime.db.read() as session:

        def reported(day: date, zone: Any) -> int:
            kpis = compute_kpis(
                session, period=day_period(day, zone), now=NOW, options=options(), live=False
            )
            return int(kpis["reported"])

        assert reported(DAY, SH) == 1
        assert reported(DAY, ZoneInfo("UTC")) == 0
        assert reported(date(2026, 11, 22), ZoneInfo("UTC")) == 1


def test_periods_follow_daylight_saving() -> None:
    ny = ZoneInfo("America/New_York")
    spring = day_period(date(2026, 3, 8), ny)
    assert spring.end - spring.start == timedelta(hours=23)
    assert day_period(DAY, SH).start == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        Period(NOW, NOW)


def test_categories_and_hourly_volume(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        cats = by_category(session, period=day_period(DAY, SH))
        hours = hourly(session, period=day_period(DAY, SH))
    assert cats == {"dispute": 3, "noise": 1, "other": 1, "public_security": 1, "traffic": 1}
    assert next(iter(cats)) == "dispute"
    expected = [0] * 24
    for hh in (8, 9, 10, 11, 12, 14, 23):
        expected[hh] = 1
    assert hours == expected


def test_the_wall_summary_compares_with_yesterday_at_the_same_time(loaded: Runtime) -> None:
    # At 10:30 on the 24th, "yesterday" is the 23rd up to 10:30: G (08:00), A (09:00), B (10:00).
    now = datetime(2026, 11, 24, 10, 30, tzinfo=SH).astimezone(UTC)
    with loaded.db.write() as session:
        session.add(make_case("T1", "reported", "traffic", local(24, 9, 15)))
    with loaded.db.read() as session:
        summary = wall_summary(session, now=now, zone=SH, options=options())
    assert summary["today"]["reported"] == 1
    assert summary["yesterday"]["reported"] == 3
    assert "overdue" not in summary["yesterday"]  # live figures are not compared
    assert summary["by_category"] == {"traffic": 1}
    assert summary["hourly"]["today"][9] == 1
    assert sum(summary["hourly"]["yesterday"]) == 7  # the whole of yesterday
    assert summary["day_start"] == int(datetime(2026, 11, 23, 16, tzinfo=UTC).timestamp() * 1000)


def test_the_targets_follow_the_policy(loaded: Runtime) -> None:
    """A dispatch limit of 2 minutes takes B (120 s) in; an arrival limit of 10 min takes
    B and G (600 s) in, not F (840 s)."""
    from dashboard.sla import StageLimits

    opts = KpiOptions(
        policy=SlaPolicy(stages=StageLimits(dispatch_s=120, arrive_s=600)),
        categories=options().categories,
    )
    with loaded.db.read() as session:
        kpis = compute_kpis(session, period=day_period(DAY, SH), now=NOW, options=opts)
    assert kpis["dispatch_within_target_rate"] == pytest.approx(5 / 6)
    assert kpis["arrival_within_target_rate"] == pytest.approx(4 / 5)


def test_the_walls_open_and_overdue_share_one_live_scope(loaded: Runtime) -> None:
    """未办结 and 超期 on the wall: today's cases plus older ones still open reported in the
    last LIVE_WINDOW_DAYS (7) days; an imported case open for years is in neither."""
    from dashboard.services.kpis import LIVE_WINDOW_DAYS

    assert LIVE_WINDOW_DAYS == 7
    with loaded.db.write() as session:
        session.add_all(
            [
                # years old, open, overdue: outside the scope
                make_case("OLD", "dispatched", "noise", datetime(2013, 5, 1, 9, tzinfo=SH),
                          deadline_at=datetime(2013, 5, 1, 10, tzinfo=SH), overdue=True),
                # eight days before the 24th: outside; seven days: inside (from 17th 00:00)
                make_case("W8", "reported", "noise", local(16, 12), overdue=True,
                          deadline_at=local(16, 13)),
                make_case("W7", "reported", "noise", local(17, 0, 30), overdue=True,
                          deadline_at=local(17, 1)),
                # today, open, not overdue
                make_case("T1", "reported", "traffic", local(24, 9, 15)),
            ]
        )  # fmt: skip
    with loaded.db.read() as session:
        summary = wall_summary(session, now=NOW, zone=SH, options=options())
        everything = compute_kpis(session, period=day_period(DAY, SH), now=NOW, options=options())
    # open in scope: C D G I (23rd) + H (22nd) + W7 + T1; not OLD, not W8
    assert summary["today"]["open"] == 7
    # overdue in scope: C D H I + W7; G's deadline (12:03 on the 24th) has not passed at 12:00
    assert summary["today"]["overdue"] == 5
    assert everything["overdue"] == 7  # the API's live figure: every case (+ OLD, W8)
    assert summary["scope_days"] == 7
    assert summary["scope_start"] == int(datetime(2026, 11, 16, 16, tzinfo=UTC).timestamp() * 1000)
    assert "open" not in summary["yesterday"]  # no like-for-like yesterday for the scope
