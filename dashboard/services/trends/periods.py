"""Periods and bucketing for the briefing view: named periods, 环比 / 同比, day-shift windows,
the buckets that cover a period and their keys, in Python and in SQL.

The local wall time of a row is its UTC epoch plus the zone's UTC offset at that instant.
The offsets a period can see are few (one for Asia/Shanghai, two or three for a zone with
daylight saving time), so they are a small ``CASE`` over the period's transitions, worked
out here with zoneinfo. hour = ``floor(local / 3600)``, day = ``floor(local / 86400)``,
week (Monday first, ISO) = ``floor((local / 86400 + 3) / 7)`` (1970-01-01 was a Thursday),
month = a ``CASE`` over the period's local month starts (at most a few dozen). The same keys
are computed in Python for every bucket's local start, so empty buckets show as zeros and
every series has the same x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, case, literal

from dashboard.dialect import EPSILON_S, epoch_s, floor_int
from dashboard.models import Case
from dashboard.services.kpis import Period, local_midnight

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
MAX_BUCKETS = 2000  # hour granularity over three months is 2,200: ask for days instead
# The days a period may cover: the bucket keys assume times after 1970 (SQLite truncates
# toward zero), and year 1 or 9999 cannot be shifted by a zone's offset at all.
EARLIEST_DAY = date(1971, 1, 1)
LATEST_DAY = date(2999, 12, 31)
_BUCKET_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}
_EPOCH = datetime(1970, 1, 1)


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


def local_seconds(dialect: str, period: Period, zone: tzinfo) -> ColumnElement[Any]:
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
    return epoch_s(Case.reported_at, dialect) + offset + EPSILON_S


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
    local = local_seconds(dialect, period, zone)
    if granularity == "hour":
        return floor_int(local / 3600.0, dialect)
    if granularity == "day":
        return floor_int(local / 86400.0, dialect)
    return floor_int((local / 86400.0 + 3) / 7.0, dialect)


# -- bucket counts ---------------------------------------------------------------------------
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


def bucket_keys(req: TrendRequest) -> tuple[list[datetime], list[int]]:
    check_bucket_count(req.period, req.granularity)
    starts = bucket_starts(req.period, req.granularity, req.zone)
    if len(starts) > MAX_BUCKETS:
        raise TrendError(f"{len(starts)} {req.granularity} buckets: choose a coarser granularity")
    return starts, [bucket_key(s, req.granularity) for s in starts]


def with_granularity(req: TrendRequest, granularity: str) -> TrendRequest:
    return replace(req, granularity=granularity)


# -- shifts (the replay) ----------------------------------------------------------------------
SHIFTS: dict[str, tuple[int, int]] = {"all": (0, 24), "day": (8, 20), "night": (20, 32)}


def shift_window(day: date, shift: str, zone: tzinfo) -> Period:
    """A day's shift in local time: ``all`` 00-24, ``day`` 08-20, ``night`` 20-08 next day."""
    first, last = SHIFTS.get(shift, SHIFTS["all"])

    def at(hours: int) -> datetime:
        local = datetime.combine(day + timedelta(days=hours // 24), time(hours % 24), tzinfo=zone)
        return local.astimezone(UTC)

    return Period(at(first), at(last))
