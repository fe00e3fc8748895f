"""Counts per series in sliding windows, and the seasonal baseline of the same windows.

Everything works on a :class:`CaseTable`: the cases' report times (epoch seconds, sorted)
and the six series each case counts in (grid / zone / district × its category / all).
A count over a time range is one ``searchsorted`` and one ``bincount`` of a slice, so a
run over ~2,000 series and three windows costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import numpy as np

from dashboard.services.warning.places import PlaceIndex


@dataclass(frozen=True, eq=False)
class CaseTable:
    """Cases in report-time order: times, ids, grid and category indexes, series ids."""

    times: np.ndarray  # float64 epoch seconds, ascending
    ids: np.ndarray  # object array of case ids
    grid_idx: np.ndarray  # int64, -1 outside every grid
    cat_idx: np.ndarray  # int64
    series: np.ndarray  # (n, 6) int64, -1 where a case does not count
    n_series: int

    @classmethod
    def build(
        cls,
        places: PlaceIndex,
        times: Sequence[float] | np.ndarray,
        grids: Sequence[str | None],
        categories: Sequence[str],
        ids: Sequence[str] | None = None,
    ) -> CaseTable:
        t = np.asarray(times, dtype=np.float64)
        g = np.array([places.grid_pos.get(code, -1) if code else -1 for code in grids], np.int64)
        c = np.array([places.cat_pos.get(cat, -1) for cat in categories], np.int64)
        keep = c >= 0  # unknown categories are left out (the catalogue is a setting)
        order = np.argsort(t[keep], kind="stable")
        t, g, c = t[keep][order], g[keep][order], c[keep][order]
        id_arr = np.array(list(ids) if ids is not None else [""] * len(keep), dtype=object)
        id_arr = id_arr[keep][order]
        return cls(t, id_arr, g, c, places.case_series(g, c), places.n_series)

    def __len__(self) -> int:
        return len(self.times)

    def span(self, start: float, end: float) -> tuple[int, int]:
        """Index range of the cases reported in [start, end)."""
        i0, i1 = np.searchsorted(self.times, (start, end), side="left")
        return int(i0), int(i1)

    def counts(self, start: float, end: float) -> np.ndarray:
        """Cases per series reported in [start, end)."""
        i0, i1 = self.span(start, end)
        ids = self.series[i0:i1].ravel()
        return np.bincount(ids[ids >= 0], minlength=self.n_series)

    def cases_in(self, sid: int, start: float, end: float) -> list[str]:
        i0, i1 = self.span(start, end)
        hit = (self.series[i0:i1] == sid).any(axis=1)
        return [str(x) for x in self.ids[i0:i1][hit]]


def week_anchors(now: float, weeks: int, zone: tzinfo | None = None) -> list[float]:
    """The same local wall time 1 … ``weeks`` weeks before ``now`` (DST-safe with a zone)."""
    if zone is None:
        return [now - k * 7 * 86400.0 for k in range(1, weeks + 1)]
    local = datetime.fromtimestamp(now, zone)
    return [(local - timedelta(weeks=k)).timestamp() for k in range(1, weeks + 1)]


def baseline_weeks(
    table: CaseTable,
    now: float,
    window_s: float,
    *,
    weeks: int,
    half_width_s: float = 0.0,
    zone: tzinfo | None = None,
    since: float | None = None,
) -> tuple[np.ndarray, float]:
    """Each series' cases in the window ending at the same time of the week in each of the
    last ``weeks`` weeks, widened by ``half_width_s`` on both sides: a (weeks held,
    series) array; and one week's exposure in windows, ``(window + 2 · half_width) /
    window``.

    Each case counts once, so a 24-hour window widened by an hour is 1.08 windows of
    history, not three. Weeks whose widened window begins before ``since`` (the start of
    the history held) are left out, so a young installation's baseline is the weeks it
    has, not zeros."""
    rows = []
    for anchor in week_anchors(now, weeks, zone):
        start, end = anchor - window_s - half_width_s, anchor + half_width_s
        if since is not None and start < since:
            continue
        rows.append(table.counts(start, end))
    per_week = np.stack(rows) if rows else np.zeros((0, table.n_series), dtype=np.int64)
    return per_week, (window_s + 2 * half_width_s) / window_s


def baseline_counts(
    table: CaseTable,
    now: float,
    window_s: float,
    *,
    weeks: int,
    half_width_s: float = 0.0,
    zone: tzinfo | None = None,
    since: float | None = None,
) -> tuple[np.ndarray, float]:
    """The weeks of :func:`baseline_weeks` summed: cases per series, and the exposure."""
    per_week, exposure = baseline_weeks(
        table, now, window_s, weeks=weeks, half_width_s=half_width_s, zone=zone, since=since
    )
    return per_week.sum(axis=0), exposure * len(per_week)


def dispersion(per_week: np.ndarray, min_mean: float, cap: float) -> np.ndarray:
    """Each series' Pearson dispersion over its weeks (variance / mean, in [1, cap]).

    Only where a week holds ``min_mean`` cases or more on average (below that the
    estimate is noise and Poisson variation dominates anyway); 1 elsewhere."""
    k = len(per_week)
    if k < 3:
        return np.ones(per_week.shape[1])
    mean = per_week.mean(axis=0)
    var = per_week.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(mean >= min_mean, var / mean, 1.0)
    return np.clip(np.nan_to_num(phi, nan=1.0), 1.0, cap)


def level_ratio(
    table: CaseTable,
    now: float,
    *,
    weeks: int,
    zone: tzinfo | None = None,
    since: float | None = None,
    span_s: float = 7 * 86400.0,
    bounds: tuple[float, float] = (0.5, 2.0),
) -> float:
    """The district's activity over the last week against the same week in the baseline
    weeks: all cases, so ~10,000 of them for a busy district and a ratio known to ~1 %.

    Multiplying every baseline by it takes out a trend common to every place (a season, a
    growing hotline) that would otherwise sit between the baseline weeks' average and
    now — 5 % of a district's 2-hour count is half a standard deviation, which multiplies
    the false alarms."""
    recent_start = now - span_s
    if since is not None and recent_start < since:
        return 1.0
    i0, i1 = table.span(recent_start, now)
    recent = i1 - i0
    past = []
    for anchor in week_anchors(now, weeks, zone):
        if since is not None and anchor - span_s < since:
            continue
        j0, j1 = table.span(anchor - span_s, anchor)
        past.append(j1 - j0)
    if not past or sum(past) == 0:
        return 1.0
    ratio = recent / (sum(past) / len(past))
    return float(min(max(ratio, bounds[0]), bounds[1]))
