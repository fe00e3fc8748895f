"""KPIs over time (dashboard/services/trends.py) against a hand-computed fixture, on the real
database (SQLite, or PostgreSQL with TEST_DATABASE_URL): local-time buckets in
Asia/Shanghai across a week boundary that UTC would get wrong, hours, days, weeks, months,
the hour-of-week heatmap, grids, the department league, histograms, 环比/同比 and the URL
state. Every expected number is worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callbacks import trends_state
from callbacks.trends_state import PageState
from dashboard.models import Case, Grid, UnitPing
from dashboard.runtime import Runtime
from dashboard.services import trends
from dashboard.services.kpis import KpiOptions, Period, period_kpis
from dashboard.services.trends import Filters, TrendRequest
from dashboard.sla import SlaPolicy

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=SH).astimezone(UTC)  # a Monday


def local(month: int, day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2026, month, day, hh, mm, ss, tzinfo=SH).astimezone(UTC)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def make(case_id: str, status: str, category: str, reported: datetime, **kw: Any) -> Case:
    values: dict[str, Any] = {
        "id": case_id, "status": status, "category": category, "priority": 3,
        "lat": 29.37, "lon": 106.26, "reported_at": reported, "status_since": reported,
        "status_ts": reported, "rework_count": 0, "version": 1, "overdue": False,
        "source": "hotline_12345", "grid_code": "G1", "department_id": "justice",
    }  # fmt: skip
    values.update(kw)
    return Case(**values)


def fixture_cases() -> list[Case]:
    r1 = local(11, 22, 23, 30)  # Sunday 23:30 local = Sunday 15:30 UTC: week of Nov 16
    r2 = local(11, 23, 0, 10)  # Monday 00:10 local = *Sunday* 16:10 UTC: week of Nov 23
    r3 = local(11, 23, 9)  # Monday 09:00:00 sharp: hour 9
    r4 = local(11, 24, 10)
    r6 = local(11, 16, 8)  # Monday 08:00 of the first week
    r7 = local(11, 29, 23, 59, 59)  # the last second of the second week
    return [
        # W1 dispute (72 h): dispatch 60 s, arrival 300 s, resolved in 1 h (on time), closed.
        make("W1", "closed", "dispute", r1, dispatched_at=r1 + s(60),
             on_scene_at=r1 + s(360), resolved_at=r1 + s(3600), closed_at=r1 + s(7200)),
        # W2 traffic (2 h): dispatch 120 s, arrival 600 s, resolved after 3 h: late.
        make("W2", "resolved", "traffic", r2, source="grid_app", grid_code="G2",
             department_id="traffic_police", dispatched_at=r2 + s(120),
             on_scene_at=r2 + s(720), resolved_at=r2 + s(3 * 3600)),
        # W3 noise, on scene (open): dispatch 30 s, arrival 150 s.
        make("W3", "on_scene", "noise", r3, grid_code="G2", department_id="city_mgmt",
             dispatched_at=r3 + s(30), on_scene_at=r3 + s(180),
             deadline_at=r3 + s(4 * 3600)),
        # W4 dispute, still reported (open).
        make("W4", "reported", "dispute", r4, deadline_at=r4 + s(300)),
        # W5 cancelled: in no figure.
        make("W5", "cancelled", "environment", local(11, 24, 11), cancelled_at=local(11, 24, 12)),
        # W6 other, due 1 h, resolved in 50 min (on time), closed; reworked once.
        # dispatch 600 s, no arrival.
        make("W6", "closed", "other", r6, source="grid_app", department_id="grid_office",
             due_at=r6 + s(3600), dispatched_at=r6 + s(600), resolved_at=r6 + s(3000),
             closed_at=r6 + s(3600), rework_count=1),
        # W7 public security, urgent (30 min): dispatch 60 s, closed after 10 min (on time).
        make("W7", "closed", "public_security", r7, priority=1, department_id="police",
             dispatched_at=r7 + s(60), closed_at=r7 + s(600)),
        # Around a month boundary (local): W8 is October's, W9 November's, though both are
        # on October 31 in UTC.
        make("W8", "reported", "other", local(10, 31, 23, 30)),
        make("W9", "reported", "other", local(11, 1, 0, 30)),
    ]  # fmt: skip


def options() -> KpiOptions:
    return KpiOptions(
        policy=SlaPolicy(),
        categories=("dispute", "public_security", "traffic", "noise", "environment", "other"),
    )


@pytest.fixture
def loaded(runtime: Runtime) -> Runtime:
    square = {"type": "Polygon", "coordinates": [[[106, 29], [106.1, 29], [106.1, 29.1],
                                                  [106, 29]]]}  # fmt: skip
    with runtime.db.write() as session:
        session.add(Grid(code="G1", name="一网格", kind="residential", zone_code="Z1",
                         geometry=square, centroid_lat=29.05, centroid_lon=106.05))  # fmt: skip
        session.add(Grid(code="G2", name="二网格", kind="market", zone_code="Z2",
                         geometry=square, centroid_lat=29.05, centroid_lon=106.05))  # fmt: skip
        session.add_all(fixture_cases())
    return runtime


def request(
    start: date, end: date, granularity: str, filters: Filters | None = None, zone: Any = SH
) -> TrendRequest:
    period = trends.resolve_period("custom", now=NOW, zone=zone, start=start, end=end)
    return TrendRequest(period=period, granularity=granularity, zone=zone,
                        filters=filters or Filters())  # fmt: skip


TWO_WEEKS = (date(2026, 11, 16), date(2026, 11, 29))


def test_weekly_kpis_follow_local_weeks(loaded: Runtime) -> None:
    req = request(*TWO_WEEKS, "week")
    with loaded.db.read() as session:
        got = trends.kpi_series(session, req=req, options=options())
    assert got["buckets"] == ["2026-11-16T00:00:00+08:00", "2026-11-23T00:00:00+08:00"]
    # Week 1: W6, W1 (both closed and on time; W6 reworked; W1 the dispute, disposed).
    # Week 2: W2 (resolved, late), W3 (open), W4 (open dispute), W7 (closed, on time).
    assert got["reported"] == [2, 4]
    assert got["open"] == [0, 2]
    assert got["disposal_rate"] == [1.0, 0.5]
    assert got["closure_rate"] == [1.0, 0.25]
    assert got["on_time_rate"] == [1.0, 0.5]
    assert got["rework_rate"] == [0.5, 0.0]
    assert got["dispute_resolution_rate"] == [1.0, 0.0]
    # Dispatch: week 1 {60, 600}: p50 330, p90 60 + 0.9 × 540 = 546;
    # week 2 {30, 60, 120}: p50 60, p90 at rank 1.8 = 60 + 0.8 × 60 = 108.
    assert got["dispatch_p50_s"] == [330.0, 60.0]
    assert got["dispatch_p90_s"] == [546.0, 108.0]
    # Arrival: week 1 {300}; week 2 {600, 150}: p50 375, p90 150 + 0.9 × 450 = 555.
    assert got["arrival_p50_s"] == [300.0, 375.0]
    assert got["arrival_p90_s"] == [300.0, 555.0]


def test_buckets_add_up_to_the_kpi_engines_period_figures(loaded: Runtime) -> None:
    req = request(*TWO_WEEKS, "day")
    with loaded.db.read() as session:
        series = trends.kpi_series(session, req=req, options=options())
        whole = period_kpis(session, period=req.period, options=options())
    assert len(series["buckets"]) == 14
    assert sum(series["reported"]) == whole["reported"] == 6
    assert sum(series["open"]) == whole["open"] == 2
    assert sum(series["resolved"]) == 4
    assert sum(series["on_time"]) / sum(series["resolved"]) == whole["on_time_rate"] == 0.75


def test_daily_and_hourly_buckets_are_local(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        days = trends.kpi_series(session, req=request(*TWO_WEEKS, "day"), options=options())
        hours = trends.kpi_series(
            session, req=request(date(2026, 11, 23), date(2026, 11, 23), "hour"),
            options=options(),
        )  # fmt: skip
    by_day = dict(zip(days["buckets"], days["reported"], strict=True))
    assert by_day["2026-11-16T00:00:00+08:00"] == 1  # W6
    assert by_day["2026-11-22T00:00:00+08:00"] == 1  # W1 (15:30 UTC)
    assert by_day["2026-11-23T00:00:00+08:00"] == 2  # W2 (Sunday in UTC!) and W3
    assert by_day["2026-11-24T00:00:00+08:00"] == 1  # W4 (W5 is cancelled)
    assert by_day["2026-11-29T00:00:00+08:00"] == 1  # W7 at 23:59:59
    assert len(hours["buckets"]) == 24
    assert hours["reported"][0] == 1 and hours["reported"][9] == 1  # 00:10 and 09:00:00
    assert sum(hours["reported"]) == 2


def test_monthly_buckets_follow_local_months(loaded: Runtime) -> None:
    req = request(date(2026, 10, 1), date(2026, 11, 30), "month")
    with loaded.db.read() as session:
        got = trends.kpi_series(session, req=req, options=options())
    assert got["buckets"] == ["2026-10-01T00:00:00+08:00", "2026-11-01T00:00:00+08:00"]
    assert got["reported"] == [1, 7]  # W8 | W9, W6, W1, W2, W3, W4, W7


def test_volume_heatmap_grids_and_histograms(loaded: Runtime) -> None:
    req = request(*TWO_WEEKS, "week")
    with loaded.db.read() as session:
        cats = trends.volume_by(session, req=req, dimension="category")
        sources = trends.volume_by(session, req=req, dimension="source")
        heat = trends.hour_of_week(session, req=req)
        grids = trends.by_grid(session, req=req)
        hist = trends.histogram(session, req=req, span="dispatch")
    assert cats["series"] == {
        "dispute": [1, 1], "other": [1, 0], "public_security": [0, 1], "noise": [0, 1],
        "traffic": [0, 1],
    }  # fmt: skip
    assert next(iter(cats["series"])) == "dispute"  # the largest first
    assert sources["series"] == {"hotline_12345": [1, 3], "grid_app": [1, 1]}
    # Monday = 0: W6 Mon 08, W2 Mon 00, W3 Mon 09, W4 Tue 10, W1 Sun 23, W7 Sun 23.
    assert heat[0][8] == heat[0][0] == heat[0][9] == heat[1][10] == 1
    assert heat[6][23] == 2
    assert sum(map(sum, heat)) == 6
    assert grids == {"G1": 4, "G2": 2}
    # Dispatch times 60, 600, 120, 30, 60 → bins <30 s: 0, <60: 1 (30), <120: 2 (60, 60),
    # <180: 1 (120), …, <900: 1 (600).
    assert hist == [0, 1, 2, 1, 0, 0, 1, 0, 0, 0]


def test_filters_narrow_every_figure(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        market = trends.kpi_series(
            session, req=request(*TWO_WEEKS, "week", Filters(grid_kind="market")),
            options=options(),
        )  # fmt: skip
        zone = trends.by_grid(session, req=request(*TWO_WEEKS, "week", Filters(zone="Z1")))
        both = trends.kpi_series(
            session,
            req=request(*TWO_WEEKS, "week", Filters(categories=("dispute",),
                                                    sources=("hotline_12345",))),
            options=options(),
        )  # fmt: skip
        dept = trends.by_grid(
            session, req=request(*TWO_WEEKS, "week", Filters(department="police"))
        )
    assert market["reported"] == [0, 2]  # W2, W3 in G2
    assert zone == {"G1": 4}
    assert both["reported"] == [1, 1] and both["dispute_resolution_rate"] == [1.0, 0.0]
    assert dept == {"G1": 1}  # W7


def test_department_league(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        rows = trends.departments(session, req=request(*TWO_WEEKS, "week"), options=options())
    by = {r["department"]: r for r in rows}
    # justice: W1 (resolved in 3600 s, on time) and W4 (open).
    assert by["justice"]["reported"] == 2
    assert by["justice"]["on_time_rate"] == 1.0
    assert by["justice"]["resolve_p50_s"] == 3600.0
    assert by["traffic_police"]["on_time_rate"] == 0.0  # W2, late
    assert by["traffic_police"]["resolve_p50_s"] == 10800.0
    assert by["grid_office"]["rework_rate"] == 1.0  # W6
    assert by["city_mgmt"]["on_time_rate"] is None  # W3: nothing resolved yet
    assert rows[-1]["department"] == "city_mgmt"  # null rates last


def test_period_over_period(loaded: Runtime) -> None:
    req = request(date(2026, 11, 23), date(2026, 11, 29), "day")
    with loaded.db.read() as session:
        got = trends.compare(session, req=req, options=options())
    assert got["current"]["reported"] == 4
    assert got["previous"]["reported"] == 2  # Nov 16-22
    assert got["previous_period"][0] == local(11, 16, 0).isoformat()
    assert got["last_year"] is None  # no data in November 2025
    assert trends.change(0.5, 1.0, "disposal_rate") == {"kind": "points", "value": -50.0}
    assert trends.change(4, 2, "reported") == {"kind": "percent", "value": 100.0}
    assert trends.change(3, 0, "reported") is None
    assert trends.change(None, 1.0, "on_time_rate") is None


def test_last_year_is_compared_when_it_has_data(loaded: Runtime) -> None:
    with loaded.db.write() as session:
        session.add(make("Y1", "closed", "other", local(11, 24, 9) - timedelta(days=365),
                         closed_at=local(11, 24, 10) - timedelta(days=365)))  # fmt: skip
    req = request(date(2026, 11, 23), date(2026, 11, 29), "day")
    with loaded.db.read() as session:
        got = trends.compare(session, req=req, options=options())
    assert got["last_year"]["reported"] == 1
    assert got["last_year"]["closure_rate"] == 1.0


def test_named_periods_and_the_url_state() -> None:
    period = trends.resolve_period("last_week", now=NOW, zone=SH)
    assert period == Period(local(11, 23, 0), local(11, 30, 0))
    this_month = trends.resolve_period("this_month", now=NOW, zone=SH)
    assert this_month == Period(local(11, 1, 0), local(12, 1, 0))  # up to the end of today
    last_month = trends.resolve_period("last_month", now=NOW, zone=SH)
    assert last_month == Period(local(10, 1, 0), local(11, 1, 0))
    assert trends.previous_period(period) == Period(local(11, 16, 0), local(11, 23, 0))
    assert trends.default_granularity(trends.resolve_period("today", now=NOW, zone=SH)) == "hour"
    assert trends.default_granularity(last_month) == "day"
    from urllib.parse import parse_qs, urlencode

    state = PageState(
        period="custom", start=date(2026, 11, 1), end=date(2026, 11, 20), granularity="week",
        filters=Filters(categories=("dispute", "noise"), zone="Z1", department="police"),
        replay_day=date(2026, 11, 5), replay_shift="night",
    )  # fmt: skip
    again = trends_state.parse_state(parse_qs(urlencode(trends_state.state_query(state))))
    assert again == state
    assert trends_state.parse_state({"period": ["bogus"], "g": ["year"]}) == PageState()


def test_daylight_saving_buckets() -> None:
    # New York, the week DST ends (2026-11-01 02:00 → 01:00): 7 days, one 25-hour day.
    req = request(date(2026, 10, 29), date(2026, 11, 4), "hour", zone=NY)
    starts = trends.bucket_starts(req.period, "hour", NY)
    assert len(starts) == 7 * 24  # the repeated 01:00 is one bucket
    segments = trends.offset_segments(req.period, NY)
    assert [offset for _, offset in segments] == [-4 * 3600, -5 * 3600]
    assert segments[1][0] == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def test_replay_of_a_shift(loaded: Runtime) -> None:
    with loaded.db.write() as session:
        base = local(11, 23, 9)
        session.add_all(
            UnitPing(unit_id="P-1", ts=base + s(10 * i), lat=29.37 + i * 1e-4, lon=106.26)
            for i in range(60)
        )
    window = trends.shift_window(date(2026, 11, 23), "day", SH)
    assert window == Period(local(11, 23, 8), local(11, 23, 20))
    with loaded.db.read() as session:
        got = trends.replay(session, window=window, filters=Filters(), max_points=100)
    assert [c["id"] for c in got["cases"]] == ["W3"]  # W2 was at 00:10
    stages = got["cases"][0]["t"]
    assert set(stages) == {"reported", "dispatched", "on_scene"}
    assert stages["on_scene"] - stages["reported"] == 180_000
    # 12 h × 1 unit / 100 points → 432 s steps: the 10 minutes of pings fall in 2 steps.
    assert got["step_s"] == 432
    assert 1 <= len(got["units"]["P-1"]) <= 3


def test_the_whole_page(loaded: Runtime) -> None:
    req = request(*TWO_WEEKS, "day")
    with loaded.db.read() as session:
        page = trends.trends_page(session, req=req, options=options(), now=NOW)
    assert page["series"]["reported"][7] == 2
    assert [c["id"] for c in page["top_cases"]["overdue"]] == ["W3", "W4"]  # late the longest
    assert [c["id"] for c in page["top_cases"]["rework"]] == ["W6"]
    with pytest.raises(trends.TrendError):
        trends.kpi_series(
            session, req=request(date(2026, 1, 1), date(2026, 12, 31), "hour"), options=options()
        )


# -- issue 15: the meeting's conclusions, kept per period and filters and printed ----------------
def _login(app: Any, rt: Runtime, username: str, role: str) -> tuple[Any, str]:
    import re

    from dashboard.services import accounts

    with rt.db.write() as session:
        accounts.create_user(session, username=username, role=role, password="correct horse 1")
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    client.post("/login", data={"username": username, "password": "correct horse 1",
                                "csrf_token": token.group(1)})  # fmt: skip
    client.get("/trends")
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    return client, cookie.value


def _call(client: Any, csrf: str, output: str, values: dict[str, Any], changed: str) -> Any:
    """Run the one server callback that writes ``output`` when ``changed`` changes."""
    import json

    from helpers import callback_body

    from layouts import ids

    deps = client.get("/_dash-dependencies").json
    dep = next(
        d for d in deps if output in d["output"]
        and any(f"{i['id']}.{i['property']}" == changed for i in d["inputs"])
        and not d.get("clientside_function")
    )  # fmt: skip
    body = callback_body(dep, {f"{ids.URL}.pathname": "/trends", **values}, changed=[changed])
    return client.post("/_dash-update-component", data=json.dumps(body),
                       headers={"X-CSRFToken": csrf, "Content-Type": "application/json"})


def test_conclusions_are_kept_per_period_and_filters_and_printed(app: Any, rt: Runtime) -> None:
    from layouts import ids

    client, csrf = _login(app, rt, "leader9", "leader")
    week = "?period=custom&from=2026-11-23&to=2026-11-29&category=dispute"
    text = "一、纠纷类案件环比上升，东区为主。\n二、责成东区派出所本周内完成回访。"
    save = f"{ids.TRENDS_DECISIONS_SAVE}.n_clicks"

    def saving(who: Any, token: str, value: str) -> Any:
        return _call(who, token, ids.TRENDS_DECISIONS_STATUS,
                     {save: 1, f"{ids.TRENDS_DECISIONS}.value": value,
                      f"{ids.URL}.search": week}, save)  # fmt: skip

    saved = saving(client, csrf, text)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert "已保存" in saved.json["response"][ids.TRENDS_DECISIONS_STATUS]["children"]

    def loaded(search: str) -> Any:
        response = _call(client, csrf, ids.TRENDS_DECISIONS, {f"{ids.URL}.search": search},
                         f"{ids.URL}.search")  # fmt: skip
        assert response.status_code == 200
        return response.json["response"][ids.TRENDS_DECISIONS]["value"]

    assert loaded(week) == text
    # The same week and filter seen by day is the same meeting; another filter or another
    # week is not.
    assert loaded(week + "&g=day") == text
    assert loaded("?period=custom&from=2026-11-23&to=2026-11-29") == ""
    assert loaded("?period=custom&from=2026-11-16&to=2026-11-22&category=dispute") == ""

    # Printed after the figures, with the grid choropleth and the sources chart.
    page = _call(client, csrf, ids.PAGE, {f"{ids.URL}.pathname": "/trends/print",
                                          f"{ids.URL}.search": week}, f"{ids.URL}.pathname")
    assert page.status_code == 200
    printed = __import__("json").dumps(page.json, ensure_ascii=False)
    assert "研判结论与后续措施" in printed and "责成东区派出所" in printed
    assert "各网格案件数" in printed and "各来源案件量" in printed
    empty = __import__("json").dumps(_call(
        client, csrf, ids.PAGE, {f"{ids.URL}.pathname": "/trends/print",
                                 f"{ids.URL}.search": "?period=today"}, f"{ids.URL}.pathname",
    ).json, ensure_ascii=False)  # fmt: skip
    assert "本周期尚未填写研判结论" in empty

    # Clearing saves an empty text; an operator may not write (nor see /trends).
    cleared = saving(client, csrf, "  ").json["response"][ids.TRENDS_DECISIONS_STATUS]
    assert "已保存" in cleared["children"]
    assert loaded(week) == ""
    saving(client, csrf, text)
    operator, csrf2 = _login(app, rt, "operator9", "operator")
    denied = saving(operator, csrf2, "overwritten")
    assert denied.status_code in (204, 403) or "已保存" not in __import__("json").dumps(
        denied.json, ensure_ascii=False)
    assert loaded(week) == text


def test_saving_conclusions_needs_the_write_permission(app: Any, rt: Runtime) -> None:
    from dashboard.policy import PERMISSIONS

    assert PERMISSIONS["write_decisions"] == PERMISSIONS["view_trends"]


def test_the_replay_says_when_the_day_has_no_unit_positions(app: Any, rt: Runtime) -> None:
    """Issue 15: a replayed day without stored pings says so (only cases replay then)."""
    from layouts import ids

    client, csrf = _login(app, rt, "leader8", "leader")

    def replayed(day: str) -> Any:
        response = _call(client, csrf, ids.TRENDS_REPLAY_DATA,
                         {f"{ids.URL}.search": f"?replay={day}&shift=day"}, f"{ids.URL}.search")
        assert response.status_code == 200
        return response.json["response"][ids.TRENDS_REPLAY_DATA]["data"]

    empty = replayed("2026-11-23")
    assert empty["units"] == {} and empty["note"] == "该日无力量定位历史，仅回放案件"
    with rt.db.write() as session:
        session.add_all(
            UnitPing(unit_id="P-1", ts=local(11, 24, 9) + s(10 * i), lat=29.37, lon=106.26)
            for i in range(6)
        )
    full = replayed("2026-11-24")
    assert full["units"] and full["note"] == ""
