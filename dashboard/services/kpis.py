"""The KPI engine: the definitions of docs/kpis.md, aggregated in SQL, for the wall, the
API and trends.

Every figure is computed by the database (conditional counts over an indexed range of
``cases.reported_at``, percentiles by the database's sort: dashboard/dialect.py); no case
row is loaded into Python, so the same functions serve one day or months of history.
docs/kpis.md is the definition of each figure, including what the short definitions
leave open (the period and its base, "was resolved", the resolution deadline, negative
spans, the interpolation of percentiles); change it with the code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from dashboard.config import Settings
from dashboard.dialect import EPSILON_S, epoch_s, floor_int, percentiles
from dashboard.dialect import name as dialect_name
from dashboard.geo import haversine_m
from dashboard.models import Assignment, Case, Grid, Unit
from dashboard.sla import SlaPolicy
from dashboard.vocabulary import (
    DISPOSED,
    KPI_NAMES,
    OPEN_STATUSES,
    TERMINAL,
    UNIT_STATUSES,
    Status,
)

COVERAGE_S = 300  # the "5-minute service circle"
# The wall's live scope (docs/kpis.md "The wall's live scope"): its 未办结 and 超期 figures
# and its overdue list count the cases reported today plus older ones still open that were
# reported in the previous LIVE_WINDOW_DAYS days; years-old open cases of an import are
# records, not live work.
LIVE_WINDOW_DAYS = 7


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)``, aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs aware datetimes")
        if self.end <= self.start:
            raise ValueError("a period ends after it starts")


@dataclass(frozen=True, slots=True)
class KpiOptions:
    """What the live figures depend on besides the database (from the settings)."""

    policy: SlaPolicy
    categories: Sequence[str]
    unit_stale_s: int = 300
    coverage_speed_kmh: float = 18.0


# -- periods ----------------------------------------------------------------------------------
def local_midnight(day: date, zone: tzinfo) -> datetime:
    """00:00 of a local day, as an aware UTC datetime (DST-safe through zoneinfo)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_period(day: date, zone: tzinfo) -> Period:
    return Period(local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone))


def today_period(now: datetime, zone: tzinfo) -> Period:
    return day_period(now.astimezone(zone).date(), zone)


# -- SQL helpers (the SQLite/PostgreSQL differences are dashboard/dialect.py's) ----------------
def _dialect(session: Session) -> str:
    return dialect_name(session)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(
        Case.reported_at >= period.start,
        Case.reported_at < period.end,
        Case.status != Status.CANCELLED,
    )


def resolution_limit_s(policy: SlaPolicy, categories: Iterable[str]) -> ColumnElement[Any]:
    """The SLA's resolution time (s) of each row's category and priority, as a SQL CASE."""
    whens = []
    for category in categories:
        for priority in (1, 2, 3, 4):
            _, seconds = policy.limits(category, priority)
            whens.append((and_(Case.category == category, Case.priority == priority), seconds))
    # A category outside the catalogue (the catalogue changed since): the policy's default.
    for priority in (1, 2, 3, 4):
        _, seconds = policy.limits("\0unknown", priority)
        whens.append((Case.priority == priority, seconds))
    return case(*whens, else_=policy.default_resolve_s)


# -- the figures ----------------------------------------------------------------------------------
# The counts behind the per-period rates, in order: trends (dashboard/services/trends/)
# groups the very same aggregates by time bucket, grid or department.
COUNT_NAMES: tuple[str, ...] = (
    "reported", "open", "disposed", "closed", "resolved", "on_time", "rework",
    "disputes", "disputes_done",
)  # fmt: skip


def count_columns(dialect: str, options: KpiOptions) -> list[ColumnElement[Any]]:
    """The aggregates of COUNT_NAMES (over rows already restricted to a period's base)."""
    resolved_ever = or_(Case.resolved_at.is_not(None), Case.closed_at.is_not(None))
    resolved_when = epoch_s(func.coalesce(Case.resolved_at, Case.closed_at), dialect)
    deadline = case(
        (Case.due_at.is_not(None), epoch_s(Case.due_at, dialect)),
        else_=epoch_s(Case.reported_at, dialect)
        + resolution_limit_s(options.policy, options.categories),
    )
    dispute = Case.category == "dispute"
    disposed = Case.status.in_(DISPOSED)
    return [
        func.count(),
        _count(Case.status.in_(OPEN_STATUSES)),
        _count(disposed),
        _count(Case.status == Status.CLOSED),
        _count(resolved_ever),
        _count(and_(resolved_ever, resolved_when <= deadline + EPSILON_S)),
        _count(and_(resolved_ever, Case.rework_count > 0)),
        _count(dispute),
        _count(and_(dispute, disposed)),
    ]


def rates_of(counts: dict[str, int]) -> dict[str, Any]:
    """The count and rate figures (docs/kpis.md) from the COUNT_NAMES counts."""
    return {
        "reported": counts["reported"],
        "open": counts["open"],
        "disposal_rate": _rate(counts["disposed"], counts["reported"]),
        "closure_rate": _rate(counts["closed"], counts["reported"]),
        "on_time_rate": _rate(counts["on_time"], counts["resolved"]),
        "rework_rate": _rate(counts["rework"], counts["resolved"]),
        "dispute_resolution_rate": _rate(counts["disputes_done"], counts["disputes"]),
    }


def dispatch_span(dialect: str) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """Dispatch time (s) and the rows it is defined for (negative spans left out)."""
    value = epoch_s(Case.dispatched_at, dialect) - epoch_s(Case.reported_at, dialect)
    return value, and_(Case.dispatched_at.is_not(None), value >= 0)


def arrival_span(dialect: str) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """Arrival time (s) and the rows it is defined for."""
    value = epoch_s(Case.on_scene_at, dialect) - epoch_s(Case.dispatched_at, dialect)
    return value, and_(Case.dispatched_at.is_not(None), Case.on_scene_at.is_not(None), value >= 0)


def period_kpis(
    session: Session,
    *,
    period: Period,
    options: KpiOptions,
    where: ColumnElement[bool] | None = None,
) -> dict[str, Any]:
    """The per-period KPIs (cases reported in ``period``, optionally narrowed by ``where``),
    one aggregate query plus percentiles."""
    dialect = _dialect(session)
    base = _in_period(period) if where is None else and_(_in_period(period), where)
    row = session.execute(select(*count_columns(dialect, options)).where(base)).one()
    counts = dict(zip(COUNT_NAMES, (int(v or 0) for v in row), strict=True))
    dispatch, dispatch_ok = dispatch_span(dialect)
    arrival, arrival_ok = arrival_span(dialect)
    d50, d90 = percentiles(session, dispatch, and_(base, dispatch_ok))
    a50, a90 = percentiles(session, arrival, and_(base, arrival_ok))
    # The seeds' targets as rates: dispatched within the dispatch stage's limit, on scene
    # within the arrival stage's (the policy's defaults: 1 and 5 minutes).
    stages = options.policy.stages
    targets = session.execute(
        select(
            _count(dispatch_ok),
            _count(and_(dispatch_ok, dispatch <= stages.dispatch_s + EPSILON_S)),
            _count(arrival_ok),
            _count(and_(arrival_ok, arrival <= stages.arrive_s + EPSILON_S)),
        ).where(base)
    ).one()
    dispatched, dispatched_in, arrived, arrived_in = (int(v or 0) for v in targets)
    figures = rates_of(counts)
    return {
        "reported": figures["reported"],
        "open": figures["open"],
        "disposal_rate": figures["disposal_rate"],
        "closure_rate": figures["closure_rate"],
        "on_time_rate": figures["on_time_rate"],
        "dispatch_p50_s": d50,
        "dispatch_p90_s": d90,
        "arrival_p50_s": a50,
        "arrival_p90_s": a90,
        "dispatch_within_target_rate": _rate(dispatched_in, dispatched),
        "arrival_within_target_rate": _rate(arrived_in, arrived),
        "rework_rate": figures["rework_rate"],
        "dispute_resolution_rate": figures["dispute_resolution_rate"],
    }


# -- responders (issue 13) -------------------------------------------------------------------
RESPONDER_KPIS: tuple[str, ...] = (
    "joint_rate", "acceptance_p50_s", "acceptance_p90_s", "on_time_acceptance_rate",
    "transfer_count", "return_count", "callback_rate", "satisfaction_rate",
)  # fmt: skip


def responder_kpis(
    session: Session, *, period: Period, now: datetime, where: ColumnElement[bool] | None = None
) -> dict[str, Any]:
    """docs/kpis.md "Responders": over the assignments of the period's base cases.

    * ``joint_rate``: cases with ≥ 2 departments or stations still on them (not returned or
      transferred away) / cases dispatched;
    * ``acceptance_p50_s`` / ``_p90_s``: dispatch → acceptance of department and station
      assignments (acceptance: ``accepted``, or the first later stage when it was skipped);
    * ``on_time_acceptance_rate``: accepted by the acceptance deadline / accepted, plus those
      whose deadline passed while still waiting (before ``now`` or their return/transfer);
    * ``transfer_count``, ``return_count``: assignments transferred (转办) / returned (退回);
    * ``callback_rate``: resolved cases with a callback / resolved cases;
    * ``satisfaction_rate``: satisfied + basically satisfied / callbacks that reached the
      citizen (``unreachable`` left out).
    Rates are null on an empty denominator."""
    dialect = _dialect(session)
    base = _in_period(period) if where is None else and_(_in_period(period), where)
    case_ids = select(Case.id).where(base)
    office = Assignment.kind.in_(("department", "station"))
    accept_at = func.coalesce(
        Assignment.accepted_at, Assignment.en_route_at, Assignment.on_scene_at,
        Assignment.done_at,
    )  # fmt: skip
    gave_up = func.coalesce(Assignment.returned_at, Assignment.transferred_at)
    row = session.execute(
        select(
            _count(and_(office, accept_at.is_not(None), accept_at <= Assignment.accept_due_at)),
            _count(
                and_(
                    office,
                    or_(
                        accept_at.is_not(None),
                        and_(
                            Assignment.accept_due_at.is_not(None),
                            Assignment.accept_due_at < func.coalesce(gave_up, now),
                        ),
                    ),
                )
            ),
            _count(Assignment.transferred_at.is_not(None)),
            _count(Assignment.returned_at.is_not(None)),
        ).where(Assignment.case_id.in_(case_ids))
    ).one()
    on_time, decided, transfers, returns = (int(v or 0) for v in row)
    joint_sub = (
        select(Assignment.case_id)
        .where(
            Assignment.case_id.in_(case_ids),
            office,
            Assignment.status.not_in(("returned", "transferred")),
        )
        .group_by(Assignment.case_id)
        .having(func.count(func.distinct(Assignment.assignee_id)) >= 2)
    )
    resolved_ever = or_(Case.resolved_at.is_not(None), Case.closed_at.is_not(None))
    reached = Case.callback_result.in_(("satisfied", "basically_satisfied", "unsatisfied"))
    crow = session.execute(
        select(
            _count(Case.dispatched_at.is_not(None)),
            _count(and_(Case.dispatched_at.is_not(None), Case.id.in_(joint_sub))),
            _count(resolved_ever),
            _count(and_(resolved_ever, Case.callback_result.is_not(None))),
            _count(reached),
            _count(Case.callback_result.in_(("satisfied", "basically_satisfied"))),
        ).where(base)
    ).one()
    dispatched, joint, resolved, called, reached_n, satisfied = (int(v or 0) for v in crow)
    span = epoch_s(accept_at, dialect) - epoch_s(Assignment.dispatched_at, dialect)
    p50, p90 = percentiles(
        session,
        span,
        and_(Assignment.case_id.in_(case_ids), office, accept_at.is_not(None), span >= 0),
    )
    return {
        "joint_rate": _rate(joint, dispatched),
        "acceptance_p50_s": p50,
        "acceptance_p90_s": p90,
        "on_time_acceptance_rate": _rate(on_time, decided),
        "transfer_count": transfers,
        "return_count": returns,
        "callback_rate": _rate(called, resolved),
        "satisfaction_rate": _rate(satisfied, reached_n),
    }


def live_scope_start(now: datetime, zone: tzinfo) -> datetime:
    """The start of the wall's live scope: LIVE_WINDOW_DAYS local days before today."""
    today = now.astimezone(zone).date()
    return local_midnight(today - timedelta(days=LIVE_WINDOW_DAYS), zone)


def open_count(session: Session, *, since: datetime) -> int:
    """Cases still open (``open`` of docs/kpis.md) reported at or after ``since``."""
    return int(
        session.scalar(
            select(func.count()).where(Case.status.in_(OPEN_STATUSES), Case.reported_at >= since)
        )
        or 0
    )


def overdue_count(session: Session, *, now: datetime, since: datetime | None = None) -> int:
    """Cases not closed or cancelled whose current stage deadline has passed (reported at
    or after ``since`` when given: the wall's live scope).

    Two index range scans on (overdue, deadline_at): those the sweep already flagged,
    and those whose deadline passed since its last run.
    """
    active: ColumnElement[bool] = Case.status.not_in(TERMINAL)
    if since is not None:
        active = and_(active, Case.reported_at >= since)
    flagged = session.scalar(select(func.count()).where(Case.overdue.is_(True), active))
    fresh = session.scalar(
        select(func.count()).where(
            Case.overdue.is_(False),
            Case.deadline_at.is_not(None),
            Case.deadline_at < now,
            active,
        )
    )
    return int(flagged or 0) + int(fresh or 0)


def units_online(session: Session, *, now: datetime, stale_s: int) -> dict[str, int]:
    """Units with a ping in the last ``stale_s`` seconds, by status, plus ``total``: those
    on duty (available or busy); off-duty units are counted apart, not in the total."""
    since = now - timedelta(seconds=stale_s)
    rows = session.execute(
        select(Unit.status, func.count()).where(Unit.last_ts >= since).group_by(Unit.status)
    ).tuples()
    out = dict.fromkeys(UNIT_STATUSES, 0)
    for status, n in rows:
        out[status] = out.get(status, 0) + int(n)
    out["total"] = sum(n for status, n in out.items() if status != "off_duty")
    return out


def coverage_5min(
    session: Session, *, now: datetime, stale_s: int, speed_kmh: float
) -> float | None:
    """Share of grids whose centroid is within 5 minutes of an online available unit."""
    centroids = session.execute(
        select(Grid.centroid_lat, Grid.centroid_lon).where(Grid.level == "grid")
    ).tuples()
    cells = list(centroids)
    if not cells:
        return None
    since = now - timedelta(seconds=stale_s)
    units: list[tuple[float, float]] = [
        (float(ulat), float(ulon))
        for ulat, ulon in session.execute(
            select(Unit.last_lat, Unit.last_lon).where(
                Unit.last_ts >= since,
                Unit.status == "available",
                Unit.last_lat.is_not(None),
                Unit.last_lon.is_not(None),
            )
        ).tuples()
        if ulat is not None and ulon is not None
    ]
    reach_m = speed_kmh / 3.6 * COVERAGE_S
    # Cheap bounding test first: a degree of latitude is ~111 km.
    pad = reach_m / 111_000.0
    covered = 0
    for lat, lon in cells:
        lon_pad = pad / max(0.05, math.cos(math.radians(lat)))
        for ulat, ulon in units:
            if abs(ulat - lat) > pad or abs(ulon - lon) > lon_pad:
                continue
            if haversine_m(lat, lon, ulat, ulon) <= reach_m:
                covered += 1
                break
    return covered / len(cells)


def compute_kpis(
    session: Session,
    *,
    period: Period,
    now: datetime,
    options: KpiOptions,
    live: bool = True,
) -> dict[str, Any]:
    """All KPIs in docs/kpis.md's names and order; ``live=False`` leaves out the live figures."""
    figures = period_kpis(session, period=period, options=options)
    figures.update(responder_kpis(session, period=period, now=now))
    if live:
        figures["overdue"] = overdue_count(session, now=now)
        figures["units_online"] = units_online(session, now=now, stale_s=options.unit_stale_s)
        figures["coverage_5min"] = coverage_5min(
            session, now=now, stale_s=options.unit_stale_s, speed_kmh=options.coverage_speed_kmh
        )
    return {name: figures[name] for name in KPI_NAMES if name in figures}


def by_category(session: Session, *, period: Period) -> dict[str, int]:
    """Base cases of the period per category, largest first."""
    rows = session.execute(
        select(Case.category, func.count())
        .where(_in_period(period))
        .group_by(Case.category)
        .order_by(func.count().desc(), Case.category)
    ).tuples()
    return {category: int(n) for category, n in rows}


def hourly(session: Session, *, period: Period, hours: int = 24) -> list[int]:
    """Base cases per hour since the period's start (index 0 = its first hour)."""
    dialect = _dialect(session)
    start_s = period.start.timestamp()
    since = epoch_s(Case.reported_at, dialect) - start_s + EPSILON_S  # 09:00:00 is hour 9
    bucket = floor_int(since / 3600.0, dialect)
    rows = session.execute(
        select(bucket, func.count()).where(_in_period(period)).group_by(bucket)
    ).tuples()
    out = [0] * hours
    for index, n in rows:
        if index is not None and 0 <= int(index) < hours:
            out[int(index)] += int(n)
    return out


def wall_summary(
    session: Session,
    *,
    now: datetime,
    zone: tzinfo,
    options: KpiOptions,
    yesterday_part: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the wall's panels show: today's KPIs, yesterday's at the same time of day
    (for the trend arrows), today's cases by category, and hourly volume of both days.

    ``yesterday_part`` (``yesterday_of`` an earlier summary of the same day) saves
    recomputing a past day on every push.
    """
    today = today_period(now, zone)
    yesterday = day_period(now.astimezone(zone).date() - timedelta(days=1), zone)
    scope = live_scope_start(now, zone)
    figures = compute_kpis(session, period=today, now=now, options=options)
    # 未办结 and 超期 over one scope: today's cases plus older ones still open from the
    # live window (not today's alone against every case ever).
    figures["open"] = open_count(session, since=scope)
    figures["overdue"] = overdue_count(session, now=now, since=scope)
    # Yesterday up to the same time of day, so that counts compare like with like.
    elapsed = max(now - today.start, timedelta(milliseconds=1))
    so_far = Period(yesterday.start, min(yesterday.start + elapsed, yesterday.end))
    return {
        "at": int(now.timestamp() * 1000),
        "day_start": int(today.start.timestamp() * 1000),
        "scope_start": int(scope.timestamp() * 1000),
        "scope_days": LIVE_WINDOW_DAYS,
        "today": figures,
        "yesterday": (
            yesterday_part["yesterday"]
            if yesterday_part
            else _without_open(
                compute_kpis(session, period=so_far, now=now, options=options, live=False)
            )
        ),
        "by_category": by_category(session, period=today),
        "hourly": {
            "today": hourly(session, period=today),
            "yesterday": (
                yesterday_part["hourly_yesterday"]
                if yesterday_part
                else hourly(session, period=yesterday)
            ),
        },
    }


def _without_open(figures: dict[str, Any]) -> dict[str, Any]:
    """Yesterday's figures for the trend arrows, less ``open``: today's is over the live
    scope, which has no like-for-like yesterday (a case's past statuses are not kept)."""
    return {name: value for name, value in figures.items() if name != "open"}


def yesterday_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The part of a wall summary that a later one of the same day may reuse."""
    return {"yesterday": summary["yesterday"], "hourly_yesterday": summary["hourly"]["yesterday"]}


def options_for(settings: Settings, policy: SlaPolicy) -> KpiOptions:
    """The KPI options of a process's settings and SLA policy."""
    return KpiOptions(
        policy=policy,
        categories=settings.categories,
        unit_stale_s=settings.unit_stale_s,
        coverage_speed_kmh=settings.coverage_speed_kmh,
    )
