"""The early warning's only database reads: places, and the cases the algorithms need.

Thin SQLAlchemy 2 ``select()``s over the existing models with an explicit session; the
algorithms themselves take the plain data these return. Cancelled cases are left out
of the counts (a case cancelled as invalid or as a duplicate is not an event).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.models import Case, Grid, Zone
from dashboard.services.duplicates import Report
from dashboard.services.warning.baseline import CaseTable
from dashboard.services.warning.places import GridInfo, PlaceIndex
from dashboard.services.warning.rules import CaseRecord
from dashboard.vocabulary import OPEN_STATUSES


def load_places(
    session: Session, categories: Sequence[str], district_name: str = "全区"
) -> PlaceIndex:
    """The loaded grids (level ``grid``) and zones, numbered for the detector."""
    grids = [
        GridInfo(code, name, zone, lat, lon)
        for code, name, zone, lat, lon in session.execute(
            select(Grid.code, Grid.name, Grid.zone_code, Grid.centroid_lat, Grid.centroid_lon)
            .where(Grid.level == "grid")
            .order_by(Grid.code)
        )
    ]
    zones = dict(session.execute(select(Zone.code, Zone.name)).tuples().all())
    return PlaceIndex.build(grids, zones, categories, district_name)


def load_counts(
    session: Session, places: PlaceIndex, since: datetime, until: datetime
) -> CaseTable:
    """Every case reported in [since, until) as a :class:`CaseTable` (one indexed scan of
    ``ix_cases_trends``: reported_at, status, category, grid_code)."""
    rows = session.execute(
        select(Case.id, Case.reported_at, Case.grid_code, Case.category)
        .where(Case.reported_at >= since, Case.reported_at < until, Case.status != "cancelled")
        .order_by(Case.reported_at)
    ).all()
    return CaseTable.build(
        places,
        [r.reported_at.timestamp() for r in rows],
        [r.grid_code for r in rows],
        [r.category for r in rows],
        ids=[r.id for r in rows],
    )


def load_recent(session: Session, since: datetime) -> list[CaseRecord]:
    """Cases reported since ``since`` (and not cancelled), for the rule alarms."""
    rows = session.execute(
        select(
            Case.id,
            Case.reported_at,
            Case.lat,
            Case.lon,
            Case.category,
            Case.source,
            Case.priority,
            Case.status,
            Case.grid_code,
        ).where(Case.reported_at >= since, Case.status != "cancelled")
    ).all()
    return [
        CaseRecord(
            r.id,
            r.reported_at.timestamp(),
            r.lat,
            r.lon,
            r.category,
            r.source,
            r.priority,
            r.status,
            r.grid_code,
        )
        for r in rows
    ]


def load_open_reports(
    session: Session, since: datetime, bbox: tuple[float, float, float, float] | None = None
) -> list[Report]:
    """Open cases reported since ``since`` (optionally in a lat/lon box south, west, north,
    east), as the duplicate scorer's reports."""
    query = select(
        Case.id,
        Case.reported_at,
        Case.lat,
        Case.lon,
        Case.category,
        Case.source,
        Case.title,
        Case.description,
        Case.address,
    ).where(Case.reported_at >= since, Case.status.in_(OPEN_STATUSES))
    if bbox is not None:
        south, west, north, east = bbox
        query = query.where(Case.lat.between(south, north), Case.lon.between(west, east))
    return [
        Report(
            r.id,
            r.reported_at.timestamp(),
            r.lat,
            r.lon,
            r.category,
            r.source,
            r.title,
            r.description,
            r.address,
        )
        for r in session.execute(query)
    ]
