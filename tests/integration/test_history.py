"""`lianqin simulate --history N`: past cases in bulk (executemany on SQLite, COPY on
PostgreSQL), the same ids again add nothing, and the briefing view reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from callbacks import trends_state
from dashboard.demo.district import generate_district, seed_district
from dashboard.demo.history import generate_history
from dashboard.models import Case, UnitPing
from dashboard.runtime import Runtime
from dashboard.services import trends
from dashboard.services.kpis import options_for

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def test_history_in_bulk_is_idempotent_and_readable(runtime: Runtime) -> None:
    district = generate_district()
    with runtime.db.write() as session:
        seed_district(session, district)
        counts = generate_history(
            session, district, n=3000, now=NOW, zone=SH, policy=runtime.policy, days=30,
            seed=7, ping_hours=1,
        )  # fmt: skip
    assert counts["cases"] == 3000
    assert counts["pings"] == 60 * len(district.units)
    with runtime.db.write() as session:  # the same seed again: nothing new
        generate_history(
            session, district, n=3000, now=NOW, zone=SH, policy=runtime.policy, days=30,
            seed=7, ping_hours=1,
        )  # fmt: skip
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 3000
        assert session.scalar(select(func.count()).select_from(UnitPing)) == counts["pings"]
        first, last = session.execute(
            select(func.min(Case.reported_at), func.max(Case.reported_at))
        ).one()
        assert NOW - timedelta(days=31) <= first and last <= NOW
        statuses = dict(
            (s, n)
            for s, n in session.execute(select(Case.status, func.count()).group_by(Case.status))
        )
        assert statuses["closed"] > 2500 and statuses.get("cancelled", 0) > 0
        # Stage times are in order, and every case sits in a grid of the district.
        bad = session.scalar(
            select(func.count()).where(
                Case.dispatched_at.is_not(None), Case.dispatched_at < Case.reported_at
            )
        )
        assert bad == 0
        assert session.scalar(select(func.count()).where(Case.grid_code.is_(None))) == 0
        req = trends_state.request_of(trends_state.PageState(period="last_week"), now=NOW, zone=SH)
        page = trends.trends_page(
            session, req=req, options=options_for(runtime.settings, runtime.policy), now=NOW
        )
    assert sum(page["series"]["reported"]) == page["compare"]["current"]["reported"] > 300
    assert 0.9 < page["compare"]["current"]["disposal_rate"] <= 1.0
    assert len(page["departments"]) >= 5
    # Issue 13: responders and callbacks, as the live simulator makes them; not twice.
    from dashboard.models import Assignment
    from dashboard.services.kpis import Period, responder_kpis

    assert counts["assignments"] > 3000
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Assignment)) == counts["assignments"]
        kpis = responder_kpis(session, period=Period(NOW - timedelta(days=30), NOW), now=NOW)
    assert 0.1 < kpis["joint_rate"] < 0.6
    assert 60 < kpis["acceptance_p50_s"] < 300
    assert 0.8 < kpis["callback_rate"] < 0.95
    assert 0.95 < kpis["satisfaction_rate"] < 0.995
    assert kpis["return_count"] > 0
