"""The early warning's database reads, on an in-memory SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from dashboard.models import Base, Case, Grid, Zone
from dashboard.services.warning.query import (
    load_counts,
    load_open_reports,
    load_places,
    load_recent,
)

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[106.26, 29.37], [106.27, 29.37], [106.27, 29.38], [106.26, 29.37]]],
}


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Zone(code="Z1", name="第一巡区", geometry=SQUARE))
        s.add(
            Grid(
                code="G1",
                name="福城社区第4网格",
                zone_code="Z1",
                geometry=SQUARE,
                centroid_lat=29.375,
                centroid_lon=106.265,
            )
        )
        s.add(
            Grid(
                code="G1-1",
                name="微网格",
                level="micro",
                parent_code="G1",
                geometry=SQUARE,
                centroid_lat=29.375,
                centroid_lon=106.265,
            )
        )
        for i, (status, minutes) in enumerate(
            [("reported", 5), ("closed", 30), ("cancelled", 10), ("on_scene", 200)]
        ):
            at = T0 - timedelta(minutes=minutes)
            s.add(
                Case(
                    id=f"C{i}",
                    status=status,
                    category="noise",
                    lat=29.375,
                    lon=106.265,
                    grid_code="G1",
                    reported_at=at,
                    status_since=at,
                    status_ts=at,
                    title="噪音",
                    description="17栋夜间施工",
                    source="hotline_12345",
                    priority=1,
                )
            )
        s.commit()
        yield s
    engine.dispose()


def test_places_are_the_grids_and_zones(session: Session) -> None:
    places = load_places(session, ("noise", "dispute"))
    assert [g.code for g in places.grids] == ["G1"]  # micro-grids are not watched
    assert [p.code for p in places.places] == ["G1", "Z1", "district"]


def test_counts_leave_out_cancelled_cases(session: Session) -> None:
    places = load_places(session, ("noise",))
    table = load_counts(session, places, T0 - timedelta(hours=1), T0)
    assert sorted(table.ids.tolist()) == ["C0", "C1"]
    counts = table.counts(T0.timestamp() - 3600, T0.timestamp())
    assert counts[places.series_id("G1", "noise")] == 2
    assert counts[places.series_id("Z1", "*")] == 2


def test_recent_and_open(session: Session) -> None:
    recent = load_recent(session, T0 - timedelta(hours=1))
    assert sorted(r.id for r in recent) == ["C0", "C1"]
    assert {r.status for r in recent} == {"reported", "closed"}
    reports = load_open_reports(session, T0 - timedelta(hours=6))
    assert sorted(r.id for r in reports) == ["C0", "C3"]
    assert load_open_reports(session, T0 - timedelta(hours=6), (0, 0, 1, 1)) == []
