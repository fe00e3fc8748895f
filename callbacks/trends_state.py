"""The URL state of the briefing view (/trends): the query string parsed into a page state,
a page state written back as query parameters, and the service request it asks for.

A link reproduces the view: the controls write the state into the URL's query, and the
charts are computed from it (callbacks/trends.py). Unknown or malformed values fall back to
the defaults; filter values are ids as the database may hold them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from dashboard.contract.entries import ID_RE
from dashboard.services.trends import (
    EARLIEST_DAY,
    GRANULARITIES,
    LATEST_DAY,
    PERIOD_KINDS,
    SHIFTS,
    Filters,
    TrendRequest,
    default_granularity,
    resolve_period,
)

MAX_FILTER_VALUES = 500  # values per list filter in a URL (the district has ~100 grids)


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
