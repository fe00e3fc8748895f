"""Early warning, measured: recall, detection delay and false alarms on simulated history.

Builds weeks of case history for the demo district (the live simulator's grids, kinds,
categories, hourly profile, market mornings and quiet campus nights, quieter weekends and
a slow seasonal drift: a Poisson process per grid, category and hour), then

- **quiet**: runs the detector every minute, as the worker would, over days with nothing
  injected, and counts the alerts (episodes, after deduplication) per district-day;
- **spikes**: injects, one trial at a time, a spike of ``--multiplier`` × the baseline
  (the true intensity of the simulated process) at a place (a grid, a zone or the whole
  district), for one category or all, from a random start for 1–2 h, runs the detector
  every minute from the start, and records the first minute at which a signal that
  counts injected cases fires (so a chance alarm elsewhere never counts as a detection);

and prints, per method and sensitivity, recall, the delay's median and P90 and the false
alarms per district-day, with the time of one run and per new case. No database, no
Redis: the detector is pure (dashboard/services/warning), as it runs in the worker.

    .venv/bin/python -m bench.warning               # 8 weeks of baseline, 7 quiet days, 120 spikes
    .venv/bin/python -m bench.warning --small       # a smoke test (seconds)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from dashboard.demo.district import District, generate_district
from dashboard.demo.simulator import CATEGORY_WEIGHTS, HOURLY_FACTOR, KIND_WEIGHTS
from dashboard.services.warning import (
    ALL,
    DISTRICT,
    AlertBook,
    CaseTable,
    GridInfo,
    PlaceIndex,
    WarningSettings,
    detect,
)
from dashboard.services.warning.scan import ScanSettings, scan

TZ = ZoneInfo("Asia/Shanghai")
DAY = 86400.0
WEEK = 7 * DAY


# -- the simulated district ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class History:
    places: PlaceIndex
    start: float  # epoch s of the first hour
    intensity: np.ndarray  # (hours, grids, categories): expected cases per hour
    table: CaseTable
    times: np.ndarray
    grids: np.ndarray  # grid index per case
    cats: np.ndarray


def district_places(district: District) -> PlaceIndex:
    categories = sorted({c for table in CATEGORY_WEIGHTS.values() for c in table})
    grids = [
        GridInfo(g.code, g.name, g.zone_code, g.centroid_lat, g.centroid_lon)
        for g in district.grids
    ]
    zones = {z.code: z.name for z in district.zones}
    return PlaceIndex.build(grids, zones, categories, district.name)


def intensity(district: District, places: PlaceIndex, start: float, hours: int, rate: float):
    """Expected cases per hour, grid and category: the live simulator's structure."""
    kinds = [g.kind for g in district.grids]
    cats = places.categories
    cat_p = np.zeros((len(kinds), len(cats)))
    for i, kind in enumerate(kinds):
        table = CATEGORY_WEIGHTS.get(kind, CATEGORY_WEIGHTS["residential"])
        for j, c in enumerate(cats):
            cat_p[i, j] = table.get(c, 0.0)
        cat_p[i] /= cat_p[i].sum()
    base_w = np.array([KIND_WEIGHTS.get(k, 1.0) for k in kinds])
    out = np.empty((hours, len(kinds), len(cats)))
    for h in range(hours):
        local = datetime.fromtimestamp(start + h * 3600, TZ)
        w = base_w.copy()
        hour = local.hour
        w[[k == "market" for k in kinds]] *= 1.8 if 6 <= hour < 11 else 1.0
        w[[k == "campus" for k in kinds]] *= 1.0 if 7 <= hour < 22 else 0.3
        w /= w.sum()
        day_f = (0.8 if local.weekday() >= 5 else 1.0) * (
            1 + 0.15 * math.sin(2 * math.pi * (start + h * 3600) / (365 * DAY))
        )
        total = rate * 60 * HOURLY_FACTOR[hour] * day_f
        out[h] = total * w[:, None] * cat_p
    return out


def simulate(district: District, *, days: int, rate: float, seed: int, end: float) -> History:
    places = district_places(district)
    hours = days * 24
    start = end - hours * 3600
    lam = intensity(district, places, start, hours, rate)
    rng = np.random.default_rng(seed)
    counts = rng.poisson(lam)
    h, g, c = np.nonzero(counts)
    reps = counts[h, g, c]
    h, g, c = np.repeat(h, reps), np.repeat(g, reps), np.repeat(c, reps)
    times = start + h * 3600 + rng.uniform(0, 3600, len(h))
    table = _table(places, times, g, c)
    return History(places, start, lam, table, times, g, c)


def _table(
    places: PlaceIndex, times: np.ndarray, g: np.ndarray, c: np.ndarray, tag: str = "H"
) -> CaseTable:
    order = np.argsort(times, kind="stable")
    times, g, c = times[order], g[order], c[order]
    ids = np.array([f"{tag}{i}" for i in range(len(times))], dtype=object)
    return CaseTable(times, ids, g, c, places.case_series(g, c), places.n_series)


def with_extra(history: History, extra: list[tuple[float, int, int]]) -> CaseTable:
    """The history plus injected cases (ids ``X…``), as one table."""
    places = history.places
    t = np.concatenate([history.times, [e[0] for e in extra]])
    g = np.concatenate([history.grids, np.array([e[1] for e in extra], np.int64)])
    c = np.concatenate([history.cats, np.array([e[2] for e in extra], np.int64)])
    ids = np.concatenate(
        [
            np.array([f"H{i}" for i in range(len(history.times))], dtype=object),
            np.array([f"X{i}" for i in range(len(extra))], dtype=object),
        ]
    )
    order = np.argsort(t, kind="stable")
    t, g, c, ids = t[order], g[order], c[order], ids[order]
    return CaseTable(t, ids, g, c, places.case_series(g, c), places.n_series)


# -- spikes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spike:
    level: str  # grid | zone | district
    place: str
    category: str  # a category or "*"
    start: float
    duration_s: float
    baseline_per_h: float  # the place's true expected cases per hour over the spike
    burst: int = 0  # a burst: this many extra cases of the category in the grid instead


def inject(
    history: History, spike: Spike, multiplier: float, rng: np.random.Generator
) -> list[tuple[float, int, int]]:
    """Extra cases so that the place's rate is ``multiplier`` × its true rate throughout
    (or, for a burst, ``burst`` cases spread evenly over the duration)."""
    places = history.places
    if spike.burst:
        g, c = places.grid_pos[spike.place], places.cat_pos[spike.category]
        step = spike.duration_s / spike.burst
        return [(spike.start + (i + 0.5) * step, g, c) for i in range(spike.burst)]
    lam = history.intensity
    if spike.level == "grid":
        grid_mask = np.array([g.code == spike.place for g in places.grids])
    elif spike.level == "zone":
        grid_mask = np.array([g.zone == spike.place for g in places.grids])
    else:
        grid_mask = np.ones(places.n_grids, bool)
    cat_mask = np.ones(len(places.categories), bool)
    if spike.category != ALL:
        cat_mask = np.array([c == spike.category for c in places.categories])
    extra: list[tuple[float, int, int]] = []
    t = spike.start
    end = spike.start + spike.duration_s
    while t < end:  # hour by hour: the intensity is hourly
        h = int((t - history.start) // 3600)
        slice_end = min(end, history.start + (h + 1) * 3600)
        rates = lam[h] * grid_mask[:, None] * cat_mask[None, :] * (multiplier - 1)
        n = rng.poisson(rates * (slice_end - t) / 3600)
        gi, ci = np.nonzero(n)
        for g, c in zip(np.repeat(gi, n[gi, ci]), np.repeat(ci, n[gi, ci]), strict=True):
            extra.append((float(rng.uniform(t, slice_end)), int(g), int(c)))
        t = slice_end
    return extra


def place_rate(history: History, level: str, place: str, category: str, t0: float, t1: float):
    places = history.places
    h0, h1 = int((t0 - history.start) // 3600), math.ceil((t1 - history.start) / 3600)
    lam = history.intensity[h0:h1]
    if level == "grid":
        lam = lam[:, [g.code == place for g in places.grids]]
    elif level == "zone":
        lam = lam[:, [g.zone == place for g in places.grids]]
    if category != ALL:
        lam = lam[:, :, [c == category for c in places.categories]]
    return float(lam.sum() / max(1, h1 - h0))


def draw_spikes(
    history: History, n: int, t0: float, t1: float, rng: np.random.Generator
) -> list[Spike]:
    """Trials spread over levels: district (all / a busy category), zones, busy grids."""
    places = history.places
    zones = sorted({g.zone for g in places.grids if g.zone})
    kinds_busy = [g.code for g in places.grids]
    lam_grid = history.intensity.sum(axis=(0, 2))
    busy = [kinds_busy[i] for i in np.argsort(-lam_grid)[:20]]
    top_cats = [places.categories[i] for i in np.argsort(-history.intensity.sum(axis=(0, 1)))[:4]]
    out = []
    for i in range(n):
        kind = i % 4
        start = float(rng.uniform(t0, t1 - 3 * 3600))
        duration = float(rng.choice([3600.0, 5400.0, 7200.0]))
        if kind == 0:
            level, place, cat = "district", DISTRICT, ALL
        elif kind == 1:
            level, place, cat = "district", DISTRICT, str(rng.choice(top_cats))
        elif kind == 2:
            level, place, cat = "zone", str(rng.choice(zones)), ALL
        else:
            level, place, cat = "grid", str(rng.choice(busy)), ALL
        rate = place_rate(history, level, place, cat, start, start + duration)
        out.append(Spike(level, place, cat, start, duration, rate))
    return out


# -- runs --------------------------------------------------------------------------------


@dataclass
class Method:
    name: str
    settings: WarningSettings
    scan: ScanSettings | None = None  # the space-time scan alongside, or alone

    def run(self, table: CaseTable, places: PlaceIndex, now: float, since: float) -> list[Any]:
        out: list[Any] = []
        if self.settings is not None:
            out += detect(table, places, now, self.settings, zone=TZ, since=since)
        if self.scan is not None:
            out += scan(table, places, now, self.scan)
        return out


def quiet_alarms(
    history: History, method: Method, t0: float, days: float, step_s: int
) -> tuple[int, list[float], list[str]]:
    book = AlertBook(history.places, quiet_s=method.settings.quiet_s)
    raised = 0
    timings: list[float] = []
    examples: list[str] = []
    by_kind: dict[str, int] = {}
    now = t0
    while now < t0 + days * DAY:
        began = time.perf_counter()
        signals = method.run(history.table, history.places, now, history.start)
        timings.append(time.perf_counter() - began)
        for ev in book.update(now, signals):
            if ev.kind == "raised":
                raised += 1
                key = f"{ev.alert.place_level}/{ev.alert.window_s // 60}min"
                by_kind[key] = by_kind.get(key, 0) + 1
                if len(examples) < 5:
                    examples.append(
                        f"{datetime.fromtimestamp(now, TZ):%a %H:%M} {ev.alert.message}"
                    )
        now += step_s
    if by_kind:
        examples.insert(
            0, "by place and window " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items()))
        )
    return raised, timings, examples


def spike_delay(
    history: History,
    spike: Spike,
    method: Method,
    multiplier: float,
    rng,
    step_s: int,
    tail_s: float,
) -> float | None:
    extra = inject(history, spike, multiplier, rng)
    table = with_extra(history, extra)
    now = spike.start + step_s
    while now <= spike.start + spike.duration_s + tail_s:
        for s in method.run(table, history.places, now, history.start):
            if any(c.startswith("X") for c in s.cases):
                return now - spike.start
        now += step_s
    return None


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.array(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=8, help="baseline weeks of history")
    parser.add_argument("--quiet-days", type=float, default=7)
    parser.add_argument("--spikes", type=int, default=120)
    parser.add_argument("--multiplier", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=1.0, help="cases per minute (demo: 1)")
    parser.add_argument("--sensitivity", default="1,2,4", help="false-alarm budgets per day")
    parser.add_argument("--step", type=int, default=60, help="seconds between runs")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--scan", action="store_true", help="also the space-time scan")
    parser.add_argument("--half-width", type=int, default=None, help="baseline ± seconds")
    parser.add_argument("--weeks-used", type=int, default=None, help="baseline weeks")
    parser.add_argument("--windows", default=None, help="seconds, comma-separated")
    parser.add_argument("--weights", default=None, help="the windows' budget shares")
    parser.add_argument("--bursts", type=int, default=0, help="grid bursts besides spikes")
    parser.add_argument("--burst-size", type=int, default=6, help="cases in a burst (1 h)")
    parser.add_argument("--min-rate", type=float, default=5.0, help="cases/h: detectable")
    parser.add_argument("--small", action="store_true", help="a smoke test")
    args = parser.parse_args(argv)
    if args.small:
        args.weeks, args.quiet_days, args.spikes, args.sensitivity = 2, 0.1, 4, "2"
        args.step = 300
    district = generate_district()
    eval_days = max(2, math.ceil(args.quiet_days) + 1)
    end = math.floor(datetime(2026, 11, 30, tzinfo=TZ).timestamp())
    began = time.perf_counter()
    history = simulate(
        district, days=args.weeks * 7 + eval_days, rate=args.rate, seed=args.seed, end=end
    )
    t_eval = end - eval_days * DAY
    print(
        f"-- history: {len(history.times):,} cases over {args.weeks} weeks + {eval_days} days, "
        f"{history.places.n_grids} grids, {history.places.n_series} series "
        f"({time.perf_counter() - began:.1f} s)"
    )
    rng = np.random.default_rng(args.seed + 1)
    spikes = draw_spikes(history, args.spikes, t_eval, end, rng)
    for _ in range(args.bursts):  # a grid's own event: a few cases of one category in an hour
        g = history.places.grids[int(rng.integers(history.places.n_grids))].code
        cat = str(rng.choice(history.places.categories))
        start = float(rng.uniform(t_eval, end - 3 * 3600))
        rate = place_rate(history, "grid", g, cat, start, start + 3600)
        spikes.append(Spike("grid", g, cat, start, 3600.0, rate, burst=args.burst_size))
    methods = []
    tuned: dict[str, Any] = {}
    if args.half_width is not None:
        tuned["half_width_s"] = args.half_width
    if args.weeks_used is not None:
        tuned["weeks"] = args.weeks_used
    if args.windows:
        tuned["windows_s"] = tuple(int(x) for x in args.windows.split(","))
        tuned["window_weights"] = tuple(
            float(x) for x in (args.weights or ",".join("1" * len(tuned["windows_s"]))).split(",")
        )
    for budget in (float(x) for x in args.sensitivity.split(",")):
        settings = WarningSettings(false_alarms_per_day=budget, **tuned)
        methods.append(Method(f"nb_baseline@{budget:g}/day", settings))
    if args.scan:
        settings = WarningSettings(**tuned)
        name = f"nb_baseline@{settings.false_alarms_per_day:g}/day+stp_scan"
        methods.append(Method(name, settings, ScanSettings()))
    for method in methods:
        fa, timings, examples = quiet_alarms(history, method, t_eval, args.quiet_days, args.step)
        per_day = fa / args.quiet_days
        delays: dict[str, list[float]] = {}
        found = {lvl: 0 for lvl in ("district", "zone", "grid")}
        total = {lvl: 0 for lvl in ("district", "zone", "grid")}
        trial_rng = np.random.default_rng(args.seed + 2)
        outcome: list[float | None] = []
        for spike in spikes:
            if spike.burst:
                d = spike_delay(history, spike, method, args.multiplier, trial_rng, args.step, 1800)
                outcome.append(None if d is None else d / 60)
                continue
            d = spike_delay(history, spike, method, args.multiplier, trial_rng, args.step, 1800)
            outcome.append(None if d is None else d / 60)
            total[spike.level] += 1
            if d is not None:
                found[spike.level] += 1
                delays.setdefault(spike.level, []).append(d / 60)
        all_delays = [d for v in delays.values() for d in v]
        big = [
            d for s, d in zip(spikes, outcome, strict=True)
            if s.baseline_per_h >= args.min_rate and not s.burst
        ]  # fmt: skip
        big_delays = [d for d in big if d is not None]
        n_found, n_total = sum(found.values()), sum(total.values())
        run_ms = statistics.median(timings) * 1000 if timings else float("nan")
        cases_per_min = len(history.times) / (len(history.intensity) * 60)
        print(
            f"-- {method.name}: recall {n_found}/{n_total} = {n_found / max(1, n_total):.0%}, "
            f"delay median {pct(all_delays, 50):.0f} min, P90 {pct(all_delays, 90):.0f} min, "
            f"false alarms {per_day:.2f} per district-day "
            f"({fa} in {args.quiet_days:g} quiet days); one run {run_ms:.1f} ms "
            f"(P90 {pct(timings, 90) * 1000:.1f} ms), {run_ms / max(cases_per_min, 1e-9):.2f} "
            f"ms per new case at {cases_per_min:.2f} cases/min"
        )
        print(
            f"   places with a baseline ≥ {args.min_rate:g} cases/h: recall "
            f"{len(big_delays)}/{len(big)} = {len(big_delays) / max(1, len(big)):.0%}, "
            f"delay median {pct(big_delays, 50):.0f} min, P90 {pct(big_delays, 90):.0f} min"
        )
        district_all = [
            d for s, d in zip(spikes, outcome, strict=True) if s.level == "district"
            and s.category == ALL
        ]  # fmt: skip
        got_all = [d for d in district_all if d is not None]
        print(
            f"   district, all categories: {len(got_all)}/{len(district_all)} detected, "
            f"delay median {pct(got_all, 50):.0f} min, P90 {pct(got_all, 90):.0f} min"
        )
        bursts = [d for s, d in zip(spikes, outcome, strict=True) if s.burst]
        if bursts:
            got_b = [d for d in bursts if d is not None]
            print(
                f"   grid bursts (+{args.burst_size} cases of one category in 1 h): "
                f"{len(got_b)}/{len(bursts)} detected, delay median {pct(got_b, 50):.0f} min, "
                f"P90 {pct(got_b, 90):.0f} min"
            )
        for level in ("district", "zone", "grid"):
            rates = [s.baseline_per_h for s in spikes if s.level == level and not s.burst]
            got = delays.get(level, [])
            print(
                f"   {level:8} {found[level]}/{total[level]} detected, delay median "
                f"{pct(got, 50):.0f} min, P90 {pct(got, 90):.0f} min "
                f"(baseline {min(rates, default=0):.1f}–{max(rates, default=0):.1f} cases/h)"
            )
        for line in examples:
            print(f"   false alarm: {line}")
    print(
        f"-- targets at the default sensitivity ({WarningSettings().false_alarms_per_day:g}"
        "/day): recall ≥ 90 %, median delay ≤ 15 min, ≤ 1 false alarm per district-day"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
