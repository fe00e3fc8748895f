"""Trends for the briefing view (/trends): the KPI engine's figures by time bucket and more.

* ``periods``: named periods (today … last month, custom), 环比 / 同比, shift windows, the
  buckets that cover a period and their keys (in Python and in SQL), the request.
* ``queries``: the page's aggregates (series, breakdowns, league table, comparisons,
  top cases, replay) and ``trends_page``, everything the page shows for one request.
* ``export``: the page's data as tables, CSV and Excel.

The page's URL state (the query string of /trends) is the callbacks' business:
callbacks/trends_state.py. The names below are this package's public interface.
"""

from __future__ import annotations

from dashboard.services.trends.export import (
    DEPARTMENT_COLUMNS,
    SERIES_COLUMNS,
    export_tables,
    safe_cell,
    to_csv,
    to_xlsx,
)
from dashboard.services.trends.periods import (
    EARLIEST_DAY,
    GRANULARITIES,
    LATEST_DAY,
    MAX_BUCKETS,
    PERIOD_KINDS,
    SHIFTS,
    Filters,
    TrendError,
    TrendRequest,
    bucket_expr,
    bucket_key,
    bucket_starts,
    check_bucket_count,
    default_granularity,
    last_year_period,
    offset_segments,
    previous_period,
    resolve_period,
    shift_window,
    with_granularity,
)
from dashboard.services.trends.queries import (
    COMPARED,
    HIST_EDGES_S,
    REPLAY_MAX_CASES,
    REPLAY_MAX_POINTS,
    base_clause,
    by_grid,
    change,
    compare,
    departments,
    filter_clause,
    filter_options,
    grouped_percentiles,
    histogram,
    hour_of_week,
    kpi_series,
    replay,
    top_cases,
    trends_page,
    volume_by,
)

__all__ = [
    "COMPARED",
    "DEPARTMENT_COLUMNS",
    "EARLIEST_DAY",
    "GRANULARITIES",
    "HIST_EDGES_S",
    "LATEST_DAY",
    "MAX_BUCKETS",
    "PERIOD_KINDS",
    "REPLAY_MAX_CASES",
    "REPLAY_MAX_POINTS",
    "SERIES_COLUMNS",
    "SHIFTS",
    "Filters",
    "TrendError",
    "TrendRequest",
    "base_clause",
    "bucket_expr",
    "bucket_key",
    "bucket_starts",
    "by_grid",
    "change",
    "check_bucket_count",
    "compare",
    "default_granularity",
    "departments",
    "export_tables",
    "filter_clause",
    "filter_options",
    "grouped_percentiles",
    "histogram",
    "hour_of_week",
    "kpi_series",
    "last_year_period",
    "offset_segments",
    "previous_period",
    "replay",
    "resolve_period",
    "safe_cell",
    "shift_window",
    "to_csv",
    "to_xlsx",
    "top_cases",
    "trends_page",
    "volume_by",
    "with_granularity",
]
