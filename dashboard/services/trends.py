"""Trends for the briefing view (/trends): the KPI engine's figures by time bucket and more.

Everything is aggregated by the database, grouped by an integer *bucket key* computed
in SQL from ``cases.reported_at`` (an indexed range), on SQLite and PostgreSQL alike:

* The local wall time of a row is its UTC epoch plus the zone's UTC offset at that
  instant. The offsets a period can see are few (one for Asia/Shanghai, two or three
  for a zone with daylight saving time), so they are a small ``CASE`` over the
  period's transitions, worked out here with zoneinfo.
* hour = ``floor(local / 3600)``, day = ``floor(local / 86400)``, week (Monday first,
  ISO) = ``floor((local / 86400 + 3) / 7)`` (1970-01-01 was a Thursday), month = a
  ``CASE`` over the period's local month starts (at most a few dozen).
* The same keys are computed in Python for every bucket's local start, so empty
  buckets show as zeros and every series has the same x axis.

The figures are DESIGN.md's (dashboard/services/kpis.py: ``count_columns``,
``rates_of``, ``dispatch_span``, ``arrival_span``, ``period_kpis``), only grouped: the
sum of a series over its buckets is the period's figure. Percentiles per bucket are
``percentile_cont`` on PostgreSQL and the same linear interpolation from row numbers
over one window partitioned by bucket on SQLite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, text
from sqlalchemy.orm import Session

from dashboard.contract.entries import ID_RE
from dashboard.lifecycle import OPEN_STATUSES
from dashboard.models import Case, Department, Grid, Zone
from dashboard.services.kpis import (
    COUNT_NAMES,
    KpiOptions,
    Period,
    arrival_span,
    count_columns,
    dispatch_span,
    epoch_s,
    local_midnight,
    period_kpis,
    rates_of,
)

GRANULARITIES: tuple[str, ...] = ("hour", "day", "week", "month")
PERIOD_KINDS: tuple[str, ...] = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "custom",
)
# Rates the page compares period over period, and whether a rise is good news.
COMPARED: tuple[tuple[str, bool], ...] = (
    ("reported", False),
    ("disposal_rate", True),
    ("closure_rate", True),
    ("on_time_rate", True),
    ("dispatch_p50_s", False),
    ("dispatch_p90_s", False),
    ("arrival_p50_s", False),
    ("arrival_p90_s", False),
    ("rework_rate", False),
    ("dispute_resolution_rate", True),
)
# Dispatch / arrival time histogram bins (upper edges, seconds); the last is open-ended.
HIST_EDGES_S: tuple[int, ...] = (30, 60, 120, 180, 300, 600, 900, 1800, 3600)
MAX_BUCKETS = 2000  # hour granularity over three months is 2,200: ask for days instead
# The days a period may cover: the bucket keys assume times after 1970 (SQLite truncates
# toward zero), and year 1 or 9999 cannot be shifted by a zone's offset at all.
EARLIEST_DAY = date(1971, 1, 1)
LATEST_DAY = date(2999, 12, 31)
MAX_FILTER_VALUES = 500  # values per list filter in a URL (the district has ~100 grids)
_BUCKET_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}
_EPSILON_S = 0.001  # SQLite's julianday() carries ~0.1 ms of rounding: 09:00:00 is hour 9
_EPOCH = datetime(1970, 1, 1)
_NOT_TERMINAL = (*OPEN_STATUSES, "resolved")


class TrendError(ValueError):
    """A request the page cannot answer (a bad range, too many buckets)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the leader narrowed the view to; empty means everything."""

    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    grid_kind: str | None = None
    grids: tuple[str, ...] = ()
    zone: str | None = None
    department: str | None = None


@dataclass(frozen=True, slots=True)
class TrendRequest:
    period: Period
    granularity: str
    zone: tzinfo
    filters: Filters = field(default_factory=Filters)

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise TrendError(f"unknown granularity {self.granularity!r}")


# -- periods ----------------------------------------------------------------------------------
def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _month_start(day: date, shift: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def resolve_period(
    kind: str,
    *,
    now: datetime,
    zone: tzinfo,
    start: date | None = None,
    end: date | None = None,
) -> Period:
    """A named period (local days of ``zone``); ``custom`` is ``start``..``end`` inclusive.

    "This" week / month run to the end of today, not into the future.
    """
    today = now.astimezone(zone).date()
    tomorrow = today + timedelta(days=1)
    first: date
    last_excl: date
    if kind == "today":
        first, last_excl = today, tomorrow
    elif kind == "yesterday":
        first, last_excl = today - timedelta(days=1), today
    elif kind == "this_week":
        first, last_excl = _monday(today), tomorrow
    elif kind == "last_week":
        first = _monday(today) - timedelta(days=7)
        last_excl = first + timedelta(days=7)
    elif kind == "this_month":
        first, last_excl = _month_start(today), tomorrow
    elif kind == "last_month":
        first, last_excl = _month_start(today, -1), _month_start(today)
    elif kind == "custom":
        if start is None or end is None:
            raise TrendError("a custom period needs a start and an end date")
        if not (EARLIEST_DAY <= start <= LATEST_DAY and EARLIEST_DAY <= end <= LATEST_DAY):
            raise TrendError(f"a period between {EARLIEST_DAY} and {LATEST_DAY}")
        if end < start:
            raise TrendError("the period ends before it starts")
        if (end - start).days > 3660:
            raise TrendError("a period of at most ten years")
        first, last_excl = start, end + timedelta(days=1)
    else:
        raise TrendError(f"unknown period {kind!r}")
    return Period(local_midnight(first, zone), local_midnight(last_excl, zone))


def previous_period(period: Period) -> Period:
    """环比: the period of the same length just before."""
    length = period.end - period.start
    return Period(period.start - length, period.start)


def _year_back(moment: datetime, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone)
    try:
        back = local.replace(year=local.year - 1)
    except ValueError:  # 29 February
        back = local.replace(year=local.year - 1, day=28)
    return datetime.combine(back.date(), back.time(), tzinfo=zone).astimezone(UTC)


def last_year_period(period: Period, zone: tzinfo) -> Period:
    """同比: the same local dates and times one year earlier."""
    return Period(_year_back(period.start, zone), _year_back(period.end, zone))


def default_granularity(period: Period) -> str:
    days = (period.end - period.start).total_seconds() / 86400
    if days <= 2.01:
        return "hour"
    if days <= 62:
        return "day"
    if days <= 190:
        return "week"
    return "month"


# -- buckets ----------------------------------------------------------------------------------
def _offset_s(moment: datetime, zone: tzinfo) -> int:
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def offset_segments(period: Period, zone: tzinfo) -> list[tuple[datetime, int]]:
    """(from, UTC offset s) segments covering ``period``: one per daylight-saving change."""
    segments = [(period.start, _offset_s(period.start, zone))]
    day = period.start
    while day < period.end:
        nxt = min(day + timedelta(days=1), period.end)
        if _offset_s(nxt, zone) != segments[-1][1]:
            probe = day
            while probe < nxt:  # the change, to the quarter hour
                probe += timedelta(minutes=15)
                if _offset_s(probe, zone) != segments[-1][1]:
                    segments.append((probe, _offset_s(probe, zone)))
                    break
        day = nxt
    return segments


def _local_seconds(dialect: str, period: Period, zone: tzinfo) -> ColumnElement[Any]:
    segments = offset_segments(period, zone)
    offset: ColumnElement[Any]
    if len(segments) == 1:
        offset = literal(segments[0][1])
    else:
        whens = [
            (Case.reported_at < start, segments[i - 1][1])
            for i, (start, _) in enumerate(segments)
            if i > 0
        ]
        offset = case(*whens, else_=segments[-1][1])
    return epoch_s(Case.reported_at, dialect) + offset + _EPSILON_S


def _int_floor(expr: Any, dialect: str) -> ColumnElement[Any]:
    from sqlalchemy import Integer, cast

    if dialect == "sqlite":  # CAST truncates, and every value here is positive
        return cast(expr, Integer)
    return cast(func.floor(expr), Integer)


def bucket_starts(period: Period, granularity: str, zone: tzinfo) -> list[datetime]:
    """The local starts (aware, in ``zone``) of the buckets that cover ``period``."""
    first_local = period.start.astimezone(zone)
    starts: list[datetime] = []
    if granularity == "hour":
        moment = period.start.replace(minute=0, second=0, microsecond=0)
        seen: set[int] = set()
        while moment < period.end:
            local = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)
            key = bucket_key(local, "hour")
            if key not in seen:  # a repeated hour (DST ends) is one bucket
                seen.add(key)
                starts.append(local)
            moment += timedelta(hours=1)
        return starts
    day = first_local.date()
    if granularity == "week":
        day = _monday(day)
    elif granularity == "month":
        day = _month_start(day)
    while local_midnight(day, zone) < period.end:
        starts.append(datetime.combine(day, time(0), tzinfo=zone))
        if granularity == "day":
            day += timedelta(days=1)
        elif granularity == "week":
            day += timedelta(days=7)
        else:
            day = _month_start(day, 1)
    return starts


def bucket_key(local_start: datetime, granularity: str) -> int:
    """The SQL bucket key of a local bucket start (its wall time, whatever the offset)."""
    wall = (local_start.replace(tzinfo=None) - _EPOCH).total_seconds()
    if granularity == "hour":
        return math.floor(wall / 3600)
    if granularity == "day":
        return math.floor(wall / 86400)
    if granularity == "week":
        return math.floor((wall / 86400 + 3) / 7)
    return local_start.year * 12 + local_start.month - 1


def bucket_expr(dialect: str, period: Period, granularity: str, zone: tzinfo) -> ColumnElement[Any]:
    """The bucket key of each case's ``reported_at``, in SQL."""
    if granularity == "month":
        starts = bucket_starts(period, "month", zone)
        whens = [
            (Case.reported_at < start.astimezone(UTC), bucket_key(starts[i - 1], "month"))
            for i, start in enumerate(starts)
            if i > 0
        ]
        last = bucket_key(starts[-1], "month")
        return case(*whens, else_=last) if whens else literal(last)
    local = _local_seconds(dialect, period, zone)
    if granularity == "hour":
        return _int_floor(local / 3600.0, dialect)
    if granularity == "day":
        return _int_floor(local / 86400.0, dialect)
    return _int_floor((local / 86400.0 + 3) / 7.0, dialect)


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
    """DESIGN.md's base (reported in P, not cancelled), narrowed by the filters."""
    parts = [
        Case.reported_at >= period.start,
        Case.reported_at < period.end,
        Case.status != "cancelled",
    ]
    extra = filter_clause(filters)
    if extra is not None:
        parts.append(extra)
    return and_(*parts)


# -- grouped percentiles ------------------------------------------------------------------------
def grouped_percentiles(
    session: Session,
    value: ColumnElement[Any],
    key: ColumnElement[Any],
    where: ColumnElement[bool],
    ps: Sequence[float] = (0.5, 0.9),
) -> dict[Any, list[float | None]]:
    """kpis.percentiles for every group of ``key`` in one query (same interpolation)."""
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            select(key, *[func.percentile_cont(p).within_group(value) for p in ps])
            .where(where)
            .group_by(key)
        ).all()
        return {
            row[0]: [None if v is None else round(float(v), 1) for v in row[1:]] for row in rows
        }
    inner = select(
        key.label("k"),
        value.label("v"),
        func.row_number().over(partition_by=key, order_by=value).label("rn"),
        func.count().over(partition_by=key).label("n"),
    ).where(where)
    sub = inner.subquery()
    wanted = []
    for p in ps:
        rank = _int_floor(p * (sub.c.n - 1), "sqlite") + 1
        wanted += [sub.c.rn == rank, sub.c.rn == rank + 1]
    rows = session.execute(select(sub.c.k, sub.c.v, sub.c.rn, sub.c.n).where(or_(*wanted))).all()
    at: dict[Any, dict[int, float]] = {}
    sizes: dict[Any, int] = {}
    for k, v, rn, n in rows:
        at.setdefault(k, {})[int(rn)] = float(v)
        sizes[k] = int(n)
    out: dict[Any, list[float | None]] = {}
    for k, ranks in at.items():
        n = sizes[k]
        values: list[float | None] = []
        for p in ps:
            pos = p * (n - 1)
            lo = math.floor(pos)
            low = ranks[lo + 1]
            high = ranks.get(lo + 2, low)
            values.append(round(low + (high - low) * (pos - lo), 1))
        out[k] = values
    return out


# -- the series -------------------------------------------------------------------------------
def check_bucket_count(period: Period, granularity: str) -> None:
    """Refuse a request for more than MAX_BUCKETS buckets (ten years by hour is 87,600)
    before building any: the page and the exports say which granularity to choose."""
    span_s = (period.end - period.start).total_seconds()
    estimate = math.floor(span_s / _BUCKET_SECONDS.get(granularity, 3600))
    if estimate > MAX_BUCKETS:
        raise TrendError(
            f"about {estimate} {granularity} buckets (at most {MAX_BUCKETS}): "
            "choose a coarser granularity"
        )


def _keys(req: TrendRequest) -> tuple[list[datetime], list[int]]:
    check_bucket_count(req.period, req.granularity)
    starts = bucket_starts(req.period, req.granularity, req.zone)
    if len(starts) > MAX_BUCKETS:
        raise TrendError(f"{len(starts)} {req.granularity} buckets: choose a coarser granularity")
    return starts, [bucket_key(s, req.granularity) for s in starts]


def kpi_series(session: Session, *, req: TrendRequest, options: KpiOptions) -> dict[str, Any]:
    """Every per-period KPI for every bucket: ``{"buckets": [iso…], name: [value…]}``."""
    dialect = session.get_bind().dialect.name
    starts, keys = _keys(req)
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
    dialect = session.get_bind().dialect.name
    starts, keys = _keys(req)
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
    dialect = session.get_bind().dialect.name
    local = _local_seconds(dialect, req.period, req.zone)
    hours = _int_floor(local / 3600.0, dialect)
    days = _int_floor(local / 86400.0 + 3, dialect)  # days since a Monday
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
    dialect = session.get_bind().dialect.name
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
    dialect = session.get_bind().dialect.name
    value, ok = (dispatch_span if span == "dispatch" else arrival_span)(dialect)
    whens = [(value < edge - _EPSILON_S, i) for i, edge in enumerate(HIST_EDGES_S)]
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
    if name.endswith("_rate"):
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
            Case.status.in_(_NOT_TERMINAL),
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


def tune_session(session: Session) -> None:
    """PostgreSQL, for this transaction: no JIT (it spent ~150 ms compiling each of the
    page's two dozen short aggregates, more than running them) and enough memory for the
    group-by sorts of a year to stay off disk."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def trends_page(
    session: Session, *, req: TrendRequest, options: KpiOptions, now: datetime
) -> dict[str, Any]:
    """Everything the /trends page shows for one request (what the benchmark times)."""
    tune_session(session)
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


# -- the URL ------------------------------------------------------------------------------------
def _code(value: str) -> bool:
    """A filter value as the database may hold it: an id (no control character, no lone
    surrogate, nothing a driver refuses), not thousands of characters."""
    return ID_RE.fullmatch(value) is not None


def _list(values: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in values.get(name, []):
        out += [v for v in raw.split(",") if v and _code(v)]
    return tuple(dict.fromkeys(out))[:MAX_FILTER_VALUES]


def _one(values: Mapping[str, Sequence[str]], name: str) -> str | None:
    got = values.get(name)
    return got[0] if got and got[0] and _code(got[0]) else None


def _day(value: str | None) -> date | None:
    """An ISO date (ASCII digits: ``date.fromisoformat`` takes others too), or None."""
    if not value or not value.isascii():
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_day(value: str | None) -> date | None:
    """A date picker's value (``2026-11-05`` or ``2026-11-05T00:00:00``), or None."""
    return _day(value[:10]) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class PageState:
    """What the URL of /trends holds (a link reproduces the view)."""

    period: str = "this_week"
    start: date | None = None
    end: date | None = None
    granularity: str | None = None  # None: chosen from the period's length
    filters: Filters = field(default_factory=Filters)
    replay_day: date | None = None
    replay_shift: str = "all"  # all, day (08-20), night (20-08 next morning)


SHIFTS: dict[str, tuple[int, int]] = {"all": (0, 24), "day": (8, 20), "night": (20, 32)}


def parse_state(values: Mapping[str, Sequence[str]]) -> PageState:
    """The page state from a parsed query string (unknown values fall back to defaults)."""
    period = _one(values, "period") or "this_week"
    if period not in PERIOD_KINDS:
        period = "this_week"
    granularity = _one(values, "g")
    if granularity not in GRANULARITIES:
        granularity = None
    shift = _one(values, "shift") or "all"
    return PageState(
        period=period,
        start=_day(_one(values, "from")),
        end=_day(_one(values, "to")),
        granularity=granularity,
        filters=Filters(
            categories=_list(values, "category"),
            sources=_list(values, "source"),
            grid_kind=_one(values, "grid_kind"),
            grids=_list(values, "grid"),
            zone=_one(values, "zone"),
            department=_one(values, "department"),
        ),
        replay_day=_replay_day(_one(values, "replay")),
        replay_shift=shift if shift in SHIFTS else "all",
    )


def _replay_day(value: str | None) -> date | None:
    day = _day(value)
    return day if day is not None and EARLIEST_DAY <= day <= LATEST_DAY else None


def state_query(state: PageState) -> dict[str, str]:
    """The query parameters of a page state (only what differs from the defaults)."""
    out: dict[str, str] = {"period": state.period}
    if state.period == "custom":
        if state.start:
            out["from"] = state.start.isoformat()
        if state.end:
            out["to"] = state.end.isoformat()
    if state.granularity:
        out["g"] = state.granularity
    f = state.filters
    for name, values in (("category", f.categories), ("source", f.sources), ("grid", f.grids)):
        if values:
            out[name] = ",".join(values)
    for name, value in (("grid_kind", f.grid_kind), ("zone", f.zone),
                        ("department", f.department)):  # fmt: skip
        if value:
            out[name] = value
    if state.replay_day:
        out["replay"] = state.replay_day.isoformat()
        out["shift"] = state.replay_shift
    return out


def request_of(state: PageState, *, now: datetime, zone: tzinfo) -> TrendRequest:
    """The query a page state asks for (raises TrendError for an impossible one)."""
    start, end = state.start, state.end
    kind = state.period
    if kind == "custom" and (start is None or end is None):
        kind = "this_week"
    period = resolve_period(kind, now=now, zone=zone, start=start, end=end)
    return TrendRequest(
        period=period,
        granularity=state.granularity or default_granularity(period),
        zone=zone,
        filters=state.filters,
    )


def with_granularity(req: TrendRequest, granularity: str) -> TrendRequest:
    return replace(req, granularity=granularity)


# -- replay -------------------------------------------------------------------------------------
REPLAY_MAX_CASES = 20_000
REPLAY_MAX_POINTS = 30_000  # unit positions sent to the browser for one replay
_STAGE_TIMES = (
    ("reported", Case.reported_at),
    ("registered", Case.registered_at),
    ("dispatched", Case.dispatched_at),
    ("on_scene", Case.on_scene_at),
    ("resolved", Case.resolved_at),
    ("closed", Case.closed_at),
    ("cancelled", Case.cancelled_at),
)


def shift_window(day: date, shift: str, zone: tzinfo) -> Period:
    """A day's shift in local time: ``all`` 00-24, ``day`` 08-20, ``night`` 20-08 next day."""
    first, last = SHIFTS.get(shift, SHIFTS["all"])

    def at(hours: int) -> datetime:
        local = datetime.combine(day + timedelta(days=hours // 24), time(hours % 24), tzinfo=zone)
        return local.astimezone(UTC)

    return Period(at(first), at(last))


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

    dialect = session.get_bind().dialect.name
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
    slot = _int_floor((epoch_s(UnitPing.ts, dialect) - start_s) / step, dialect)
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


# -- exports ------------------------------------------------------------------------------------
SERIES_COLUMNS: tuple[str, ...] = (
    "reported", "open", "disposal_rate", "closure_rate", "on_time_rate", "dispatch_p50_s",
    "dispatch_p90_s", "arrival_p50_s", "arrival_p90_s", "rework_rate", "disputes",
    "dispute_resolution_rate",
)  # fmt: skip
DEPARTMENT_COLUMNS: tuple[str, ...] = (
    "department", "reported", "resolved", "disposal_rate", "on_time_rate", "resolve_p50_s",
    "rework_rate",
)  # fmt: skip


def export_tables(data: Mapping[str, Any]) -> dict[str, list[list[Any]]]:
    """The page's data as tables (header row first), in DESIGN.md's names: what the CSV and
    Excel exports hold. Rates stay fractions 0..1, empty when undefined."""
    series = data["series"]
    tables: dict[str, list[list[Any]]] = {
        "series": [["bucket", *SERIES_COLUMNS]]
        + [
            [bucket, *[series[c][i] for c in SERIES_COLUMNS]]
            for i, bucket in enumerate(series["buckets"])
        ],
        "departments": [list(DEPARTMENT_COLUMNS)]
        + [[row[c] for c in DEPARTMENT_COLUMNS] for row in data["departments"]],
    }
    for key in ("by_category", "by_source"):
        block = data[key]
        names = list(block["series"])
        tables[key] = [["bucket", *names]] + [
            [bucket, *[block["series"][n][i] for n in names]]
            for i, bucket in enumerate(block["buckets"])
        ]
    tables["grids"] = [["grid", "reported"]] + [[g, n] for g, n in data["by_grid"].items()]
    cmp = data["compare"]
    tables["kpis"] = [["kpi", "current", "previous", "last_year"]] + [
        [
            name,
            cmp["current"].get(name),
            (cmp.get("previous") or {}).get(name),
            (cmp.get("last_year") or {}).get(name),
        ]
        for name, _ in COMPARED
    ]
    return tables


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run (OWASP's CSV injection rule): text starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return — a producer's grid id ``-7-1``,
    a department named ``=HYPERLINK(…)`` — gets a leading ``'``. Numbers are left as they
    are: a negative number is a number, not a formula; only text is escaped."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(table: Sequence[Sequence[Any]]) -> str:
    """One table as CSV (UTF-8 with a BOM so that Excel opens Chinese text correctly)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in table:
        writer.writerow(["" if v is None else safe_cell(v) for v in row])
    return "\ufeff" + out.getvalue()


def to_xlsx(tables: Mapping[str, Sequence[Sequence[Any]]]) -> bytes:
    """Every table as a sheet of one Excel workbook (text escaped as in the CSV, and
    stored as text: openpyxl would otherwise write a string starting with ``=`` as a
    formula)."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    if book.active is not None:
        book.remove(book.active)
    for name, table in tables.items():
        sheet = book.create_sheet(title=name[:31])
        for row in table:
            sheet.append([safe_cell(v) for v in row])
        for cells in sheet.iter_rows():
            for cell in cells:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


__all__ = [
    "GRANULARITIES",
    "PERIOD_KINDS",
    "Filters",
    "PageState",
    "TrendError",
    "TrendRequest",
    "trends_page",
]
