"""Count surveillance: a negative-binomial upper prediction bound on the seasonal baseline.

For every series (place × category) and window (30 min, 2 h, 24 h by default) the count of
new cases in the window ending now, ``x``, is compared with the same window at the same
time of the week over the last N weeks (``Y`` cases over ``n`` such windows). With a
Gamma(a, 0) prior on the series' Poisson rate (a = 0.5, Jeffreys), the rate's posterior
is Gamma(Y + a, n) and the predictive distribution of the window's count is negative
binomial, ``NB(r = Y + a, p = n / (n + 1))``: Poisson when the history is long, wider when
it is thin, so a series with little history needs more cases to alarm. The alarm is the
upper tail ``P(X ≥ x)`` below a threshold α (the predictive upper bound exceeded).

α comes from a false-alarm budget (``false_alarms_per_day``): split over the windows (by
``window_weights``) and evenly over the place levels (grid, zone, district), then over a
level's series and a day's disjoint windows (Bonferroni), then divided by how much more
often a window slid every minute crosses a level than one fixed window does. A district's
13 series thus get far more sensitivity than 1,700 grid series, with the same expected
number of false alarms for each level.
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
from scipy.special import betainc

from dashboard.services.warning.baseline import (
    CaseTable,
    baseline_weeks,
    dispersion,
    level_ratio,
)
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
    observed: np.ndarray,
    history: np.ndarray,
    n_windows: float,
    prior_shape: float,
    phi: np.ndarray | float = 1.0,
    ratio: float = 1.0,
) -> np.ndarray:
    """P(X ≥ observed) under the negative-binomial posterior predictive.

    ``NB(r, p)``'s upper tail is the regularised incomplete beta ``I_{1-p}(x, r)``, which
    is continuous in ``x``; so overdispersion ``phi`` (quasi-Poisson) is applied by
    scaling both counts, ``x / phi`` and ``Y / phi``, as Farrington's method does; a
    level ``ratio`` (see :func:`~dashboard.services.warning.baseline.level_ratio`)
    scales the predictive mean."""
    phi = np.asarray(phi, dtype=np.float64)
    x = np.asarray(observed, dtype=np.float64) / phi
    r = np.asarray(history, dtype=np.float64) / phi + prior_shape
    p = n_windows / (n_windows + ratio)  # the predictive mean is ratio · (Y / phi + a) / n
    return np.asarray(np.where(x <= 0, 1.0, betainc(np.maximum(x, 1e-12), r, 1.0 - p)))


def thresholds(places: PlaceIndex, settings: WarningSettings, window_s: float) -> np.ndarray:
    """α for every series in this window if it were tested once per window length: the
    false-alarm budget, split over the windows by their weights and evenly over the place
    levels, then over a level's series and a day's disjoint windows (Bonferroni)."""
    levels = places.level_of_series()
    n_levels = 3
    weights = dict(zip(settings.windows_s, settings.window_weights, strict=True))
    share = weights.get(int(window_s), 1.0) / sum(settings.window_weights)
    per_level = settings.false_alarms_per_day * share / n_levels
    windows_per_day = max(1.0, 86400.0 / window_s)
    size = np.bincount(levels, minlength=n_levels).astype(np.float64)
    return per_level / (size[levels] * windows_per_day)


def sliding_factor(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """How much more often a window slid every minute crosses ``observed`` than a fixed one.

    A sliding count of a Poisson process crosses up to x at rate λ · P(X = x − 1) =
    (x / L) · P(X = x), while a fixed window exceeds it once per L with P(X ≥ x) ≈
    P(X = x) · x / (x − μ); so the sliding window's exceedances are about ``x − μ`` times
    as many (Naus 1982; Alm 1983). A district's 24-hour count, 110 where 82 are usual,
    crosses its threshold some 28 times as often as one daily test would."""
    return np.maximum(1.0, np.asarray(observed, dtype=np.float64) - expected)


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
    ratio = 1.0
    if settings.level_adjust:
        ratio = level_ratio(table, now, weeks=settings.weeks, zone=zone, since=since)
    for window in settings.windows_s:
        observed = table.counts(now - window, now)
        candidates = np.flatnonzero(observed >= settings.min_cases)
        if len(candidates) == 0:
            continue
        per_week, exposure = baseline_weeks(
            table, now, window, weeks=settings.weeks, half_width_s=settings.half_width_s,
            zone=zone, since=since,
        )  # fmt: skip
        if len(per_week) == 0:
            continue  # no history yet: nothing to compare with
        n = exposure * len(per_week)
        x, weekly = observed[candidates], per_week[:, candidates]
        y = weekly.sum(axis=0)
        expected = ratio * y / n
        above = x > expected
        candidates, x, y, expected = candidates[above], x[above], y[above], expected[above]
        if len(candidates) == 0:
            continue
        phi = dispersion(weekly[:, above], settings.dispersion_min_mean, settings.dispersion_cap)
        p = predictive_sf(x, y, n, settings.prior_shape, phi, ratio)
        alpha = thresholds(places, settings, window)[candidates] / sliding_factor(x, expected)
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
