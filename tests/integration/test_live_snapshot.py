"""The snapshot's column-based case records equal the deltas' (``case_to_live``) field for field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from helpers import fixture_cases
from sqlalchemy import select

from dashboard.models import Case
from dashboard.runtime import Runtime
from dashboard.services.cases import case_to_live, live_cases


def test_live_cases_match_case_to_live(runtime: Runtime) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 11, 23, 23, 0, tzinfo=zone).astimezone(UTC)
    with runtime.db.write() as session:
        session.add_all(fixture_cases())
        session.add(
            Case(id="OLD-CLOSED", status="closed", category="noise", lat=29.3, lon=106.2,
                 reported_at=now - timedelta(days=3), status_since=now - timedelta(days=3),
                 status_ts=now - timedelta(days=3), department_id="police")
        )  # fmt: skip
    with runtime.db.read() as session:
        snapshot = {c["id"]: c for c in live_cases(session, zone=zone, now=now)}
        expected = {
            c.id: case_to_live(c, now=now)
            for c in session.scalars(select(Case))
            if c.id in snapshot
        }
    assert "OLD-CLOSED" not in snapshot and "H" in snapshot  # older: only while open
    assert snapshot == expected
    assert list(snapshot["A"]) == list(expected["A"])  # same keys, same order
