"""The early warning's parameters and their defaults (documented in docs/warning.md)."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
LEVEL_ZH: dict[str, str] = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}


@dataclass(frozen=True, slots=True)
class WarningSettings:
    # Sliding windows ending at the time of the run (seconds).
    windows_s: tuple[int, ...] = (1800, 7200, 86400)
    # The share of the false-alarm budget each window gets (same order; normalised).
    # The 24-hour window is for slow build-ups and gets less: spikes of an hour or two
    # are caught by the short windows, and a day's count crosses its threshold often.
    window_weights: tuple[float, ...] = (0.4, 0.4, 0.2)
    # The baseline: the same hour of the week in each of the last `weeks` weeks, each
    # week's window widened by `half_width_s` on both sides (Farrington's ±w weeks, in
    # minutes): a 30-min window reads 90 min of each week, three times the history.
    weeks: int = 8
    half_width_s: int = 1800
    # Scale every baseline by the district's last week against the baseline weeks' (a
    # trend common to all places: a season, a growing hotline).
    level_adjust: bool = True
    # Sensitivity: the expected number of false alarms per district-day the thresholds
    # are set for (split evenly over place levels and windows, then over the series of a
    # level and the independent windows of a day: a Bonferroni budget).
    false_alarms_per_day: float = 2.0
    # Fewer cases than this in a window never raise an alert, however rare.
    min_cases: int = 3
    # Shape of the Gamma prior on a series' rate (Jeffreys: 0.5): a series never seen
    # before needs more cases than one seen often at the same rate.
    prior_shape: float = 0.5
    # Overdispersion (quasi-Poisson, Farrington): each series' variance / mean over its
    # weeks, used where a week holds this many cases on average, capped.
    dispersion_min_mean: float = 10.0
    dispersion_cap: float = 5.0
    # Levels: 蓝 at the threshold, then one level per `level_step` decades of p-value.
    level_step: float = 2.0
    # An episode ends when no signal of its alert was seen for this long.
    quiet_s: int = 3600

    def __post_init__(self) -> None:
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError("windows_s must be positive")
        if len(self.window_weights) != len(self.windows_s) or any(
            w <= 0 for w in self.window_weights
        ):
            raise ValueError("window_weights: one positive weight per window")
        if self.weeks < 1:
            raise ValueError("weeks must be ≥ 1")
        if self.half_width_s < 0:
            raise ValueError("half_width_s must be ≥ 0")
        if self.false_alarms_per_day <= 0:
            raise ValueError("false_alarms_per_day must be > 0")
        if self.min_cases < 1:
            raise ValueError("min_cases must be ≥ 1")
