"""The briefing view's queries: the KPI engine's figures by time bucket and more.

Everything is aggregated by the database, grouped by an integer *bucket key* computed
in SQL from ``cases.reported_at`` (an indexed range), on SQLite and PostgreSQL alike
(dashboard/services/trends/periods.py). The figures are docs/kpis.md's
(dashboard/services/kpis.py: ``count_columns``, ``rates_of``, ``dispatch_span``,
``arrival_span``, ``period_kpis``), only grouped: the sum of a series over its buckets is
the period's figure. Percentiles per bucket are dashboard/dialect.py's
``grouped_percentiles``, the same interpolation as the wall's.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from dashboard.dialect import EPSILON_S, epoch_s, floor_int, grouped_percentiles, tune_for_analytics
from dashboard.dialect import name as dialect_name
from dashboard.models import Case, Department, Grid, Zone
from dashboard.services.kpis import (
    COUNT_NAMES,
    KpiOptions,
    Period,
    arrival_span,
    count_columns,
    dispatch_span,
    period_kpis,
    rates_of,
)
from dashboard.services.trends.periods import (
    Filters,
    TrendRequest,
    bucket_expr,
    bucket_keys,
    last_year_period,
    local_seconds,
    previous_period,
)
from dashboard.vocabulary import KPIS, NOT_TERMINAL, STAGE_COLUMNS, Status

# The KPIs the page compares period over period, in order (how each reads, and whether a
# rise is good news: the KPI registry, dashboard/vocabulary.py).
COMPARED: tuple[str, ...] = (
    "reported",
    "disposal_rate",
    "closure_rate",
    "on_time_rate",
    "dispatch_p50_s",
    "dispatch_p90_s",
    "arrival_p50_s",
    "arrival_p90_s",
    "rework_rate",
    "dispute_resolution_rate",
)
# Dispatch / arrival time histogram bins (upper edges, seconds); the last is open-ended.
HIST_EDGES_S: tuple[int, ...] = (30, 60, 120, 180, 300, 600, 900, 1800, 3600)


# -- filters ----------------------------------------------------------------------------------
def filter_clause(filters: Filters) -> ColumnElement[bool] | None:
    """The filters as one SQL condition on ``cases`` (None: no filter)."""
    parts: list[ColumnElement[bool]] = []
    if filters.categories:
        parts.append(Case.category.in_(filters.categories))
    if filters.sources:
        parts.append(Case.source.in_(filters.sources))
    if filters.grids:
        parts.append(Case.grid_code.in_(filters.grids))
    if filters.grid_kind:
        parts.append(Case.grid_code.in_(select(Grid.code).where(Grid.kind == filters.grid_kind)))
    if filters.zone:
        parts.append(Case.grid_code.in_(select(Grid.code).where(Grid.zone_code == filters.zone)))
    if filters.department:
        parts.append(Case.department_id == filters.department)
    if not parts:
        return None
    return and_(*parts)


def base_clause(period: Period, filters: Filters) -> ColumnElement[bool]:
    """docs/kpis.md's base (reported in P, not cancelled), narrowed by the filters."""
    parts = [
        Case.reported_at >= period.start,
        Case.reported_at < period.end,
        Case.status != Status.CANCELLED,
    ]
    extra = filter_clause(filters)
    if extra is not None:
        parts.append(extra)
    return and_(*parts)


# -- the series -------------------------------------------------------------------------------


def kpi_series(session: Session, *, req: TrendRequest, options: KpiOptions) -> dict[str, Any]:
    """Every per-period KPI for every bucket: ``{"buckets": [iso…], name: [value…]}``."""
    dialect = dialect_name(session)
    starts, keys = bucket_keys(req)
    bucket = bucket_expr(dialect, req.period, req.granularity, req.zone)
    where = base_clause(req.period, req.filters)
    rows = session.execute(
        select(bucket, *count_columns(dialect, options)).where(where).group_by(bucket)
    ).all()
    counts: dict[int, dict[str, int]] = {
        int(row[0]): dict(zip(COUNT_NAMES, (int(v or 0) for v in row[1:]), strict=True))
        for row in rows
    }
    dispatch, dispatch_ok = dispatch_span(dialect)
    arrival, arrival_ok = arrival_span(dialect)
    disp = grouped_percentiles(session, dispatch, bucket, and_(where, dispatch_ok))
    arr = grouped_percentiles(session, arrival, bucket, and_(where, arrival_ok))
    empty = dict.fromkeys(COUNT_NAMES, 0)
    out: dict[str, Any] = {"buckets": [s.isoformat() for s in starts]}
    for name in (*COUNT_NAMES, "disposal_rate", "closure_rate", "on_time_rate",
                 "rework_rate", "dispute_resolution_rate"):  # fmt: skip
        out[name] = []
    for name in ("dispatch_p50_s", "dispatch_p90_s", "arrival_p50_s", "arrival_p90_s"):
        out[name] = []
    for key in keys:
        c = counts.get(key, empty)
        for name in COUNT_NAMES:
            out[name].append(c[name])
        for name, value in rates_of(c).items():
            if name not in COUNT_NAMES:
                out[name].append(value)
        d = disp.get(key, [None, None])
        a = arr.get(key, [None, None])
        out["dispatch_p50_s"].append(d[0])
        out["dispatch_p90_s"].append(d[1])
        out["arrival_p50_s"].append(a[0])
        out["arrival_p90_s"].append(a[1])
    return out


def volume_by(session: Session, *, req: TrendRequest, dimension: str) -> dict[str, Any]:
    """Base cases per bucket and ``dimension`` (``category`` or ``source``)."""
    column = {"category": Case.category, "source": Case.source}[dimension]
    dialect = dialect_name(session)
    starts, keys = bucket_keys(req)
    bucket = bucket_expr(dialect, req.period, req.granularity, req.zone)
    rows = session.execute(
        select(bucket, column, func.count())
        .where(base_clause(req.period, req.filters))
        .group_by(bucket, column)
    ).all()
    index = {k: i for i, k in enumerate(keys)}
    series: dict[str, list[int]] = {}
    for key, value, n in rows:
        i = index.get(int(key))
        if i is None:
            continue
        series.setdefault(str(value), [0] * len(keys))[i] += int(n)
    ordered = dict(sorted(series.items(), key=lambda item: (-sum(item[1]), item[0])))
    return {"buckets": [s.isoformat() for s in starts], "series": ordered}


def hour_of_week(session: Session, *, req: TrendRequest) -> list[list[int]]:
    """Base cases by local weekday (0 = Monday) and hour: a 7 × 24 matrix."""
    dialect = dialect_name(session)
    local = local_seconds(dialect, req.period, req.zone)
    hours = floor_int(local / 3600.0, dialect)
    days = floor_int(local / 86400.0 + 3, dialect)  # days since a Monday
    # The same expression objects in SELECT and GROUP BY: PostgreSQL must see one parameter.
    dow, hour_of_day = days % 7, hours % 24
    rows = session.execute(
        select(dow, hour_of_day, func.count())
        .where(base_clause(req.period, req.filters))
        .group_by(dow, hour_of_day)
    ).all()
    matrix = [[0] * 24 for _ in range(7)]
    for weekday, hour, n in rows:
        matrix[int(weekday)][int(hour)] += int(n)
    return matrix


def by_grid(session: Session, *, req: TrendRequest) -> dict[str, int]:
    """Base cases per grid, busiest first (cases with no grid are left out)."""
    rows = session.execute(
        select(Case.grid_code, func.count())
        .where(base_clause(req.period, req.filters), Case.grid_code.is_not(None))
        .group_by(Case.grid_code)
        .order_by(func.count().desc(), Case.grid_code)
    ).all()
    return {str(code): int(n) for code, n in rows}


def departments(
    session: Session, *, req: TrendRequest, options: KpiOptions
) -> list[dict[str, Any]]:
    """The league table: cases, on-time rate, median time to resolve, rework rate."""
    dialect = dialect_name(session)
    where = base_clause(req.period, req.filters)
    dept = func.coalesce(Case.department_id, "")
    rows = session.execute(
        select(dept, *count_columns(dialect, options)).where(where).group_by(dept)
    ).all()
    resolved_ever = or_(Case.resolved_at.is_not(None), Case.closed_at.is_not(None))
    to_resolve = epoch_s(func.coalesce(Case.resolved_at, Case.closed_at), dialect) - epoch_s(
        Case.reported_at, dialect
    )
    medians = grouped_percentiles(
        session, to_resolve, dept, and_(where, resolved_ever, to_resolve >= 0), ps=(0.5,)
    )
    out = []
    for row in rows:
        counts = dict(zip(COUNT_NAMES, (int(v or 0) for v in row[1:]), strict=True))
        rates = rates_of(counts)
        out.append(
            {
                "department": str(row[0]),
                "reported": counts["reported"],
                "resolved": counts["resolved"],
                "disposal_rate": rates["disposal_rate"],
                "on_time_rate": rates["on_time_rate"],
                "resolve_p50_s": medians.get(row[0], [None])[0],
                "rework_rate": rates["rework_rate"],
            }
        )
    out.sort(
        key=lambda r: (
            r["on_time_rate"] is None,
            -(r["on_time_rate"] or 0.0),
            -r["reported"],
            r["department"],
        )
    )
    return out


def histogram(session: Session, *, req: TrendRequest, span: str) -> list[int]:
    """Dispatch or arrival times in HIST_EDGES_S bins (the last bin is open-ended)."""
    dialect = dialect_name(session)
    value, ok = (dispatch_span if span == "dispatch" else arrival_span)(dialect)
    whens = [(value < edge - EPSILON_S, i) for i, edge in enumerate(HIST_EDGES_S)]
    bin_ = case(*whens, else_=len(HIST_EDGES_S))
    rows = session.execute(
        select(bin_, func.count()).where(base_clause(req.period, req.filters), ok).group_by(bin_)
    ).all()
    out = [0] * (len(HIST_EDGES_S) + 1)
    for i, n in rows:
        out[int(i)] += int(n)
    return out


def compare(session: Session, *, req: TrendRequest, options: KpiOptions) -> dict[str, Any]:
    """The period's KPIs against 环比 (previous) and 同比 (last year, when it has data)."""
    where = filter_clause(req.filters)
    current = period_kpis(session, period=req.period, options=options, where=where)
    prev_period = previous_period(req.period)
    previous = period_kpis(session, period=prev_period, options=options, where=where)
    year_period = last_year_period(req.period, req.zone)
    year = period_kpis(session, period=year_period, options=options, where=where)
    return {
        "current": current,
        "previous": previous if previous["reported"] else None,
        "last_year": year if year["reported"] else None,
        "previous_period": [prev_period.start.isoformat(), prev_period.end.isoformat()],
        "last_year_period": [year_period.start.isoformat(), year_period.end.isoformat()],
    }


def change(current: Any, before: Any, name: str) -> dict[str, Any] | None:
    """The change of one KPI: points for rates, percent for counts and times."""
    if current is None or before is None:
        return None
    if KPIS[name].change_kind == "points":
        return {"kind": "points", "value": round((current - before) * 100, 1)}
    if before == 0:
        return None
    return {"kind": "percent", "value": round((current - before) / before * 100, 1)}


def top_cases(
    session: Session, *, req: TrendRequest, now: datetime, limit: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """The period's most overdue open cases and its most reworked cases (for the briefing)."""
    where = base_clause(req.period, req.filters)
    late = session.execute(
        select(Case.id, Case.title, Case.category, Case.grid_code, Case.status, Case.deadline_at)
        .where(
            where,
            # An IN list, not NOT IN: the (status, reported_at) index finds the few open ones.
            Case.status.in_(NOT_TERMINAL),
            Case.deadline_at.is_not(None),
            Case.deadline_at < now,
        )
        .order_by(Case.deadline_at)
        .limit(limit)
    ).all()
    rework = session.execute(
        select(Case.id, Case.title, Case.category, Case.grid_code, Case.status, Case.rework_count)
        .where(where, Case.rework_count > 0)
        .order_by(Case.rework_count.desc(), Case.reported_at)
        .limit(limit)
    ).all()
    return {
        "overdue": [
            {
                "id": r[0], "title": r[1], "category": r[2], "grid": r[3], "status": r[4],
                "late_s": int((now - (r[5] or now)).total_seconds()),
            }
            for r in late
        ],
        "rework": [
            {"id": r[0], "title": r[1], "category": r[2], "grid": r[3], "status": r[4],
             "rework_count": int(r[5])}
            for r in rework
        ],
    }  # fmt: skip


def filter_options(session: Session) -> dict[str, list[dict[str, str]]]:
    """The filters' choices: grid kinds, grids, patrol zones, departments (codes and names)."""
    grids = session.execute(
        select(Grid.code, Grid.name, Grid.kind).where(Grid.level == "grid").order_by(Grid.code)
    ).all()
    zones = session.execute(select(Zone.code, Zone.name, Zone.name_en).order_by(Zone.code)).all()
    depts = session.execute(
        select(Department.id, Department.name, Department.name_en).order_by(Department.id)
    ).all()
    return {
        "grid_kinds": [{"value": k} for k in sorted({str(g[2]) for g in grids})],
        "grids": [{"value": g[0], "name": g[1], "kind": g[2]} for g in grids],
        "zones": [{"value": z[0], "name": z[1], "name_en": z[2]} for z in zones],
        "departments": [{"value": d[0], "name": d[1], "name_en": d[2]} for d in depts],
    }


def trends_page(
    session: Session, *, req: TrendRequest, options: KpiOptions, now: datetime
) -> dict[str, Any]:
    """Everything the /trends page shows for one request (what the benchmark times)."""
    tune_for_analytics(session)
    return {
        "period": [req.period.start.isoformat(), req.period.end.isoformat()],
        "granularity": req.granularity,
        "series": kpi_series(session, req=req, options=options),
        "by_category": volume_by(session, req=req, dimension="category"),
        "by_source": volume_by(session, req=req, dimension="source"),
        "hour_of_week": hour_of_week(session, req=req),
        "by_grid": by_grid(session, req=req),
        "departments": departments(session, req=req, options=options),
        "dispatch_hist": histogram(session, req=req, span="dispatch"),
        "arrival_hist": histogram(session, req=req, span="arrival"),
        "compare": compare(session, req=req, options=options),
        "top_cases": top_cases(session, req=req, now=now),
    }


# -- replay -------------------------------------------------------------------------------------
REPLAY_MAX_CASES = 20_000
REPLAY_MAX_POINTS = 30_000  # unit positions sent to the browser for one replay
_STAGE_TIMES = tuple((status, getattr(Case, column)) for status, column in STAGE_COLUMNS.items())


def _ms(value: object) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def replay(
    session: Session,
    *,
    window: Period,
    filters: Filters,
    max_points: int = REPLAY_MAX_POINTS,
) -> dict[str, Any]:
    """A shift from the stored history: the cases reported in it with their stage times, and
    the units' tracks thinned to at most ``max_points`` positions (averaged per time step)."""
    from dashboard.models import UnitPing

    dialect = dialect_name(session)
    where = [Case.reported_at >= window.start, Case.reported_at < window.end]
    extra = filter_clause(filters)
    if extra is not None:
        where.append(extra)
    rows = session.execute(
        select(Case.id, Case.lat, Case.lon, Case.category, *[c for _, c in _STAGE_TIMES])
        .where(*where)
        .order_by(Case.reported_at)
        .limit(REPLAY_MAX_CASES)
    ).all()
    cases = [
        {
            "id": r[0],
            "lat": round(float(r[1]), 6),
            "lon": round(float(r[2]), 6),
            "category": r[3],
            "t": {name: ms for i, (name, _) in enumerate(_STAGE_TIMES)
                  if (ms := _ms(r[4 + i])) is not None},
        }
        for r in rows
    ]  # fmt: skip
    in_window = and_(UnitPing.ts >= window.start, UnitPing.ts < window.end)
    n_units = int(
        session.scalar(select(func.count(func.distinct(UnitPing.unit_id))).where(in_window)) or 0
    )
    span_s = (window.end - window.start).total_seconds()
    step = max(30, math.ceil(span_s * max(n_units, 1) / max_points))
    start_s = window.start.timestamp()
    slot = floor_int((epoch_s(UnitPing.ts, dialect) - start_s) / step, dialect)
    tracks: dict[str, list[list[float]]] = {}
    for unit, index, lat, lon in session.execute(
        select(UnitPing.unit_id, slot, func.avg(UnitPing.lat), func.avg(UnitPing.lon))
        .where(in_window)
        .group_by(UnitPing.unit_id, slot)
        .order_by(UnitPing.unit_id, slot)
    ).all():
        t_ms = int((start_s + (int(index) + 0.5) * step) * 1000)
        tracks.setdefault(str(unit), []).append([t_ms, round(float(lat), 6), round(float(lon), 6)])
    return {
        "start": _ms(window.start),
        "end": _ms(window.end),
        "cases": cases,
        "truncated": len(cases) >= REPLAY_MAX_CASES,
        "units": tracks,
        "step_s": step,
    }
