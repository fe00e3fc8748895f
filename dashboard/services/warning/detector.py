"""Count surveillance: a negative-binomial upper prediction bound on the seasonal baseline.

For every series (place × category) and window (30 min, 2 h, 24 h by default) the count of
new cases in the window ending now, ``x``, is compared with the same window at the same
time of the week over the last N weeks (``Y`` cases over ``n`` such windows). With a
Gamma(a, 0) prior on the series' Poisson rate (a = 0.5, Jeffreys), the rate's posterior
is Gamma(Y + a, n) and the predictive distribution of the window's count is negative
binomial, ``NB(r = Y + a, p = n / (n + 1))``: Poisson when the history is long, wider when
it is thin, so a series with little history needs more cases to alarm. The alarm is the
upper tail ``P(X ≥ x)`` below a threshold α (the predictive upper bound exceeded).

α comes from a false-alarm budget (``false_alarms_per_day``): split evenly over the place
levels (grid, zone, district) and windows, then over a level's series and a day's
independent windows (Bonferroni). A district's 13 series thus get far more sensitivity
than 1,700 grid series, with the same expected number of false alarms for each level.
The level (蓝/黄/橙/红) is how many ``level_step`` decades ``p`` lies below α.

References: the posterior-predictive bound is the Bayesian form of the Poisson prediction
bounds of Nelson (1970) and the conditional test of Przyborowski & Wilenski (1940) that
public-health surveillance uses to compare a count with its history (cf. Farrington et al.
1996, Noufaily et al. 2013, whose negative-binomial thresholds differ in modelling trend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import tzinfo

import numpy as np
from scipy.stats import nbinom

from dashboard.services.warning.baseline import CaseTable, baseline_counts
from dashboard.services.warning.places import Place, PlaceIndex
from dashboard.services.warning.settings import LEVELS, WarningSettings

METHOD = "nb_baseline"


@dataclass(frozen=True, slots=True)
class Signal:
    """One series over its threshold in one window, at one run."""

    series: int
    place: Place
    category: str
    window_s: int
    observed: int
    expected: float
    p_value: float
    threshold: float
    level: str
    ts: float
    cases: tuple[str, ...] = ()
    method: str = METHOD
    grids: tuple[str, ...] = ()  # a scan cluster's grids (the place is its centre)

    @property
    def margin(self) -> float:
        """Decades of p-value below the threshold (≥ 0 for a signal)."""
        return math.log10(self.threshold / max(self.p_value, 1e-300))


def predictive_sf(
    observed: np.ndarray, history: np.ndarray, n_windows: float, prior_shape: float
) -> np.ndarray:
    """P(X ≥ observed) under the negative-binomial posterior predictive."""
    r = np.asarray(history, dtype=np.float64) + prior_shape
    p = n_windows / (n_windows + 1.0)
    return np.asarray(nbinom.sf(np.asarray(observed) - 1, r, p), dtype=np.float64)


def thresholds(places: PlaceIndex, settings: WarningSettings, window_s: float) -> np.ndarray:
    """α for every series in this window: the false-alarm budget, Bonferroni-split."""
    levels = places.level_of_series()
    n_levels = 3
    per_level = settings.false_alarms_per_day / (n_levels * len(settings.windows_s))
    windows_per_day = max(1.0, 86400.0 / window_s)
    size = np.bincount(levels, minlength=n_levels).astype(np.float64)
    return per_level / (size[levels] * windows_per_day)


def level_of(margin: float, step: float) -> str:
    return LEVELS[min(len(LEVELS) - 1, max(0, int(margin // step)))]


def detect(
    table: CaseTable,
    places: PlaceIndex,
    now: float,
    settings: WarningSettings | None = None,
    *,
    zone: tzinfo | None = None,
    since: float | None = None,
    with_cases: bool = True,
) -> list[Signal]:
    """Every series over its threshold in any window ending at ``now``, most significant first."""
    settings = settings or WarningSettings()
    out: list[Signal] = []
    for window in settings.windows_s:
        observed = table.counts(now - window, now)
        candidates = np.flatnonzero(observed >= settings.min_cases)
        if len(candidates) == 0:
            continue
        history, n = baseline_counts(
            table, now, window, weeks=settings.weeks, half_width_s=settings.half_width_s,
            zone=zone, since=since,
        )  # fmt: skip
        if n <= 0:
            continue  # no history yet: nothing to compare with
        x, y = observed[candidates], history[candidates]
        expected = y / n
        above = x > expected
        candidates, x, y, expected = candidates[above], x[above], y[above], expected[above]
        if len(candidates) == 0:
            continue
        p = predictive_sf(x, y, n, settings.prior_shape)
        alpha = thresholds(places, settings, window)[candidates]
        for i in np.flatnonzero(p <= alpha):
            sid = int(candidates[i])
            place, category = places.series_key(sid)
            margin = math.log10(alpha[i] / max(float(p[i]), 1e-300))
            out.append(
                Signal(
                    series=sid, place=place, category=category, window_s=int(window),
                    observed=int(x[i]), expected=float(expected[i]), p_value=float(p[i]),
                    threshold=float(alpha[i]), level=level_of(margin, settings.level_step),
                    ts=now,
                    cases=tuple(table.cases_in(sid, now - window, now)) if with_cases else (),
                )
            )  # fmt: skip
    out.sort(key=lambda s: -s.margin)
    return out
