"""Historical cases for the briefing view and its benchmark: `lianqin simulate --history N`.

Generates N past cases of the demo district straight into the database (not through the
streams: a year of history would take hours there), vectorised with numpy (shapely's own
dependency) and written with the databases' bulk paths (dashboard/dialect.py
``bulk_load``: ``executemany`` of plain tuples on SQLite, ``COPY`` on PostgreSQL). The
cases look like the live simulator's: the same channels, grid kinds, categories per kind,
departments and hourly profile, with weekly and seasonal swings, stage times drawn from
skewed distributions (some late, some reworked, a few cancelled), and the last day still
partly open. They carry their stage times but no timeline rows (``case_events``). Unit
tracks (a ping a minute) are written for the last ``ping_hours`` so that the replay has
units to move.

Ids are ``H<seed>-<n>``: generating again with the same seed adds nothing.

``generate_demo_history`` is the demo's first start (`lianqin demo`, dashboard/cli/demo.py):
N days up to where the live simulator takes over, at the live simulator's own rate and
stage times, so that 环比/同比 and the wall's "yesterday at this time" compare like with like.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.demo.district import District
from dashboard.demo.simulator import (
    ACCEPT_MIN,
    CATEGORY_WEIGHTS,
    CO_HANDLERS,
    DEPARTMENT_FOR,
    HANDLING_MIN,
    HOURLY_FACTOR,
    KIND_WEIGHTS,
    SOURCE_WEIGHTS,
    TEMPLATES,
    URGENT_CATEGORIES,
)
from dashboard.dialect import NAT, bulk_load, timestamp_texts
from dashboard.dialect import name as dialect_name
from dashboard.models import Case
from dashboard.services.kpis import local_midnight
from dashboard.sla import SlaPolicy

log = logging.getLogger(__name__)
CHUNK = 50_000
CASE_COLUMNS: tuple[str, ...] = (
    "id", "status", "category", "priority", "source", "title", "description", "address",
    "grid_code", "lat", "lon", "unit_id", "department_id", "reported_at", "registered_at",
    "dispatched_at", "on_scene_at", "resolved_at", "closed_at", "cancelled_at", "status_since",
    "status_ts", "rework_count", "deadline_at", "overdue", "version", "created_at", "updated_at",
    "callback_result",
)  # fmt: skip
ASSIGNMENT_COLUMNS: tuple[str, ...] = (
    "case_id", "assignee_id", "kind", "role", "required", "status", "dispatched_at",
    "accepted_at", "on_scene_at", "done_at", "returned_at", "accept_due_at", "escalation",
    "urge_count", "status_ts", "version", "created_at", "updated_at",
)  # fmt: skip
# 回访 results of resolved cases: most are called back, and most are satisfied (the seeds:
# 96-98.7 % for disputes).
CALLBACK_P = {"none": 0.12, "unreachable": 0.05, "satisfied": 0.70, "basically_satisfied": 0.115,
              "unsatisfied": 0.015}  # fmt: skip
PING_COLUMNS: tuple[str, ...] = ("unit_id", "ts", "lat", "lon", "speed", "heading", "status")


def _weights(mapping: dict[str, float], keys: Sequence[str]) -> np.ndarray:
    w = np.array([mapping.get(k, 0.0) for k in keys], dtype=float)
    return w / w.sum()


@dataclass(frozen=True)
class _Setting:
    """What every chunk of cases draws from: the district's grids, units and catalogues."""

    grids: list[Any]
    kinds: list[str]
    grid_p: np.ndarray
    corners: np.ndarray  # (G, 4, 2)
    categories: list[str]
    sources: list[str]
    source_p: np.ndarray
    units: list[str]

    @classmethod
    def of(cls, district: District) -> _Setting:
        grids = list(district.grids)
        kinds = [g.kind for g in grids]
        grid_p = np.array([KIND_WEIGHTS.get(k, 1.0) for k in kinds])
        sources = list(SOURCE_WEIGHTS)
        return cls(
            grids=grids,
            kinds=kinds,
            grid_p=grid_p / grid_p.sum(),
            corners=np.array([[(lat, lon) for lat, lon in g.corners] for g in grids]),
            categories=sorted({c for table in CATEGORY_WEIGHTS.values() for c in table}),
            sources=sources,
            source_p=_weights(SOURCE_WEIGHTS, sources),
            units=[u.id for u in district.units if u.kind != "volunteer"],
        )


def _realistic_stages(
    rng: np.random.Generator, m: int, reported: np.ndarray, category: np.ndarray,
    urgent: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Stage times of a real center (the benchmark's): dispatch in about a minute, closure
    hours later."""
    priority = np.where(urgent, np.where(rng.random(m) < 0.25, 1, 2), 3)
    priority = np.where(rng.random(m) < 0.1, 4, priority)
    dispatch = rng.lognormal(math.log(50), 0.7, m)
    registered = reported + dispatch * rng.uniform(0.2, 0.6, m)
    dispatched = reported + dispatch
    on_scene = dispatched + rng.lognormal(math.log(280), 0.5, m)
    slow = rng.random(m) < 0.06  # the odd case that drags on
    resolved = on_scene + rng.lognormal(math.log(1500), 0.6, m) * np.where(slow, 12, 1)
    closed = resolved + rng.lognormal(math.log(4 * 3600), 0.8, m)
    rework = rng.random(m) < 0.04
    cancelled = rng.random(m) < 0.02
    cancel_at = reported + rng.uniform(60, 1800, m)
    return {
        "priority": priority, "registered": registered, "dispatched": dispatched,
        "on_scene": on_scene, "resolved": resolved, "closed": closed, "rework": rework,
        "cancelled": cancelled, "cancel_at": cancel_at,
    }  # fmt: skip


def _simulator_stages(
    rng: np.random.Generator, m: int, reported: np.ndarray, category: np.ndarray,
    urgent: np.ndarray, speed: float,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Stage times as the live simulator (dashboard/demo/simulator.py) draws them at ``speed``:
    its delays in simulated minutes, divided by the speed, so that the demo's history has the
    rates and durations of the cases it creates live (3 % cancelled at registration, dispatch
    0.3-1.5 minutes after it, faster for priority 1, the category's handling time, 5 %
    reworked, closed 2-10 minutes after the resolution)."""
    k = 60.0 / speed  # a simulated minute in wall seconds
    p_urgent = np.array([0.15, 0.35, 0.45, 0.05])
    p_other = np.array([0.03, 0.17, 0.70, 0.10])
    priority = np.where(
        urgent, rng.choice(4, size=m, p=p_urgent) + 1, rng.choice(4, size=m, p=p_other) + 1
    )
    registered = reported + rng.uniform(0.5, 2.0, m) * k
    wait = rng.triangular(0.3, 0.5, 1.5, m) * np.where(priority == 1, 0.6, 1.0)
    dispatched = registered + wait * k
    depart = np.where(rng.random(m) < 0.04, rng.uniform(3.0, 8.0, m), rng.uniform(0.1, 1.0, m))
    travel = rng.lognormal(math.log(600), 0.6, m) / rng.uniform(4.0, 6.0, m) / 60.0
    on_scene = dispatched + (depart + travel) * k
    bounds = np.array([HANDLING_MIN.get(str(c), (5, 25)) for c in category], dtype=float)
    handling = rng.uniform(bounds[:, 0], bounds[:, 1])
    resolved = on_scene + handling * k
    rework = rng.random(m) < 0.05
    back = np.where(rework, rng.uniform(2.0, 8.0, m) + travel + 0.5 * handling, 0.0)
    closed = resolved + (back + rng.uniform(2.0, 10.0, m)) * k
    cancelled = rng.random(m) < 0.03
    cancel_at = reported + rng.uniform(0.5, 2.0, m) * k
    return {
        "priority": priority, "registered": registered, "dispatched": dispatched,
        "on_scene": on_scene, "resolved": resolved, "closed": closed, "rework": rework,
        "cancelled": cancelled, "cancel_at": cancel_at,
    }  # fmt: skip


def generate_history(
    session: Session,
    district: District,
    *,
    n: int,
    now: datetime,
    zone: tzinfo,
    policy: SlaPolicy,
    days: int = 400,
    seed: int = 1,
    ping_hours: int = 24,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write ``n`` cases reported over the ``days`` before ``now`` (and unit tracks)."""
    rng = np.random.default_rng(seed)
    today = now.astimezone(zone).date()
    # Local midnights of the days, as epoch seconds (DST-safe), and how busy each day is:
    # weekends are quieter, and a seasonal swing of ±15 %.
    midnights = np.array(
        [local_midnight(today - timedelta(days=d), zone).timestamp() for d in range(days, -1, -1)]
    )
    day_index = np.arange(len(midnights))
    weekday = np.array([(today - timedelta(days=d)).weekday() for d in range(days, -1, -1)])
    day_p = (1 + 0.15 * np.sin(2 * math.pi * day_index / 365.0)) * np.where(weekday >= 5, 0.8, 1)
    day_p /= day_p.sum()
    hour_p = np.array(HOURLY_FACTOR) / sum(HOURLY_FACTOR)
    now_s = now.timestamp()

    def times(m: int) -> np.ndarray:
        day = rng.choice(len(midnights), size=m, p=day_p)
        reported = (
            midnights[day] + rng.choice(24, size=m, p=hour_p) * 3600 + rng.uniform(0, 3600, m)
        )
        return np.minimum(reported, now_s - rng.uniform(1, 3600, m))

    counts = _write_cases(
        session, _Setting.of(district), rng, n=n, times=times, now=now, policy=policy,
        id_prefix=f"H{seed}-", stages=_realistic_stages, chunk=CHUNK, progress=progress,
    )  # fmt: skip
    dialect = dialect_name(session)
    pings = _pings(session, district, rng, now=now, hours=ping_hours, dialect=dialect)
    return {**counts, "pings": pings}


DEMO_ID_PREFIX = "HD-"
DEMO_CHUNK = 20_000  # smaller chunks: a smoother progress bar on the demo's console


def demo_arrivals(
    rng: np.random.Generator,
    *,
    now: datetime,
    until: datetime,
    zone: tzinfo,
    days: int,
    per_minute: float,
    day_sigma: float = 0.05,
) -> np.ndarray:
    """Report times (epoch seconds, sorted) from the local midnight ``days`` days before
    ``now``'s day up to ``until``, at the live simulator's rate: ``per_minute`` wall cases a
    minute times its hourly profile (HOURLY_FACTOR), Poisson per hour, each day busier or
    quieter by a few percent (log-normal, ``day_sigma``) so that the trends are not flat."""
    today = now.astimezone(zone).date()
    hourly = per_minute * 60.0 * np.array(HOURLY_FACTOR, dtype=float)
    parts = []
    for d in range(days, -1, -1):
        start = local_midnight(today - timedelta(days=d), zone).timestamp()
        counts = rng.poisson(hourly * rng.lognormal(0.0, day_sigma))
        starts = np.repeat(start + np.arange(24) * 3600.0, counts)
        parts.append(starts + rng.uniform(0.0, 3600.0, int(counts.sum())))
    reported = np.sort(np.concatenate(parts)) if parts else np.zeros(0)
    return reported[reported < until.timestamp()]


def generate_demo_history(
    session: Session,
    district: District,
    *,
    now: datetime,
    until: datetime,
    zone: tzinfo,
    policy: SlaPolicy,
    days: int,
    per_minute: float,
    speed: float,
    seed: int = 1,
    ping_hours: int = 24,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """The demo's past: cases from ``days`` days ago up to ``until`` (where the live
    simulator's warm start takes over) at the live simulator's own rate (``per_minute`` at
    an hourly factor of 1: its ``rate × speed``) and stage times (at ``speed``), so that
    yesterday, last week and today compare like with like. ``total`` is told the number of
    cases before any is written (a progress bar's length). Ids ``HD-<n>``."""
    rng = np.random.default_rng(seed)
    reported = demo_arrivals(rng, now=now, until=until, zone=zone, days=days, per_minute=per_minute)
    if total is not None:
        total(len(reported))
    done = 0

    def times(m: int) -> np.ndarray:
        nonlocal done
        chunk = reported[done : done + m]
        done += m
        return chunk

    def stages(
        rng: np.random.Generator, m: int, at: np.ndarray, category: np.ndarray, urgent: np.ndarray
    ) -> dict[str, np.ndarray]:
        out = _simulator_stages(rng, m, at, category, urgent, speed)
        # Nothing after ``until``'s own cases could reach: a case the live simulator does not
        # know would stay open for ever (its last stages are pulled in before ``now``).
        limit = now.timestamp() - 1.0
        for name in ("registered", "dispatched", "on_scene", "resolved", "closed", "cancel_at"):
            out[name] = np.minimum(out[name], limit)
        return out

    counts = _write_cases(
        session, _Setting.of(district), rng, n=len(reported), times=times, now=now,
        policy=policy, id_prefix=DEMO_ID_PREFIX, stages=stages, chunk=DEMO_CHUNK,
        progress=progress,
    )  # fmt: skip
    dialect = dialect_name(session)
    pings = _pings(session, district, rng, now=now, hours=ping_hours, dialect=dialect)
    return {**counts, "pings": pings}


def _write_cases(
    session: Session,
    setting: _Setting,
    rng: np.random.Generator,
    *,
    n: int,
    times: Callable[[int], np.ndarray],
    now: datetime,
    policy: SlaPolicy,
    id_prefix: str,
    stages: Callable[..., dict[str, np.ndarray]],
    chunk: int,
    progress: Callable[[int], None] | None,
) -> dict[str, int]:
    """``n`` cases in chunks: report times from ``times(m)``, stage times from ``stages``."""
    dialect = dialect_name(session)
    grids, kinds, corners, categories = (
        setting.grids, setting.kinds, setting.corners, setting.categories,
    )  # fmt: skip
    units = setting.units
    now_s = now.timestamp()
    written = 0
    assignments = 0
    statuses: dict[str, int] = {}
    for offset in range(0, n, chunk):
        m = min(chunk, n - offset)
        g = rng.choice(len(grids), size=m, p=setting.grid_p)
        u, v = rng.uniform(0.12, 0.88, m), rng.uniform(0.12, 0.88, m)
        c = corners[g]
        w = np.stack([(1 - u) * (1 - v), u * (1 - v), u * v, (1 - u) * v], axis=1)[:, :, None]
        points = (c * w).sum(axis=1)
        category = np.empty(m, dtype=object)
        for kind in set(kinds):
            mask = np.isin(g, [i for i, k in enumerate(kinds) if k == kind])
            table = CATEGORY_WEIGHTS.get(kind, CATEGORY_WEIGHTS["residential"])
            category[mask] = rng.choice(
                categories, size=int(mask.sum()), p=_weights(table, categories)
            )
        sources = np.array(setting.sources, dtype=object)
        source = sources[rng.choice(len(sources), size=m, p=setting.source_p)]
        urgent = np.isin(category, list(URGENT_CATEGORIES))
        reported = times(m)
        st = stages(rng, m, reported, category, urgent)
        priority = st["priority"]
        registered, dispatched, on_scene = st["registered"], st["dispatched"], st["on_scene"]
        resolved, closed, rework = st["resolved"], st["closed"], st["rework"]
        cancelled, cancel_at = st["cancelled"], st["cancel_at"]
        # What has happened by now: later stages stay empty.
        reached = {
            "registered": registered <= now_s,
            "dispatched": dispatched <= now_s,
            "on_scene": on_scene <= now_s,
            "resolved": resolved <= now_s,
            "closed": closed <= now_s,
        }
        status = np.full(m, "reported", dtype=object)
        for stage in ("registered", "dispatched", "on_scene", "resolved", "closed"):
            status[reached[stage]] = stage
        status[cancelled] = "cancelled"

        def us(values: np.ndarray, present: np.ndarray) -> np.ndarray:
            return np.where(present, (values * 1e6).astype(np.int64), NAT)

        live = ~cancelled
        since = np.select(
            [cancelled, status == "closed", status == "resolved", status == "on_scene",
             status == "dispatched", status == "registered"],
            [cancel_at, closed, resolved, on_scene, dispatched, registered],
            default=reported,
        )  # fmt: skip
        cols: dict[str, list[Any]] = {
            "id": [f"{id_prefix}{offset + i:07d}" for i in range(m)],
            "status": status.tolist(),
            "category": category.tolist(),
            "priority": priority.tolist(),
            "source": source.tolist(),
            "title": [TEMPLATES.get(cat, (("", ""),))[0][0] for cat in category],
            "description": [""] * m,
            "address": [""] * m,
            "grid_code": [grids[i].code for i in g],
            "lat": np.round(points[:, 0], 6).tolist(),
            "lon": np.round(points[:, 1], 6).tolist(),
            "unit_id": [
                units[k] if ok else None
                for k, ok in zip(
                    rng.integers(0, len(units), m), reached["dispatched"] & live, strict=True
                )
            ],
            "department_id": [DEPARTMENT_FOR.get(cat, "grid_office") for cat in category],
            "reported_at": timestamp_texts(us(reported, np.ones(m, bool)), dialect),
            "registered_at": timestamp_texts(us(registered, reached["registered"] & live), dialect),
            "dispatched_at": timestamp_texts(us(dispatched, reached["dispatched"] & live), dialect),
            "on_scene_at": timestamp_texts(us(on_scene, reached["on_scene"] & live), dialect),
            "resolved_at": timestamp_texts(us(resolved, reached["resolved"] & live), dialect),
            "closed_at": timestamp_texts(us(closed, reached["closed"] & live), dialect),
            "cancelled_at": timestamp_texts(us(cancel_at, cancelled), dialect),
            "status_since": timestamp_texts(us(since, np.ones(m, bool)), dialect),
            "status_ts": timestamp_texts(us(since, np.ones(m, bool)), dialect),
            "rework_count": np.where(rework & reached["resolved"] & live, 1, 0).tolist(),
            "deadline_at": [None] * m,
            "overdue": [False] * m,
            "version": [1] * m,
        }
        stamp = timestamp_texts(us(np.full(m, now_s), np.ones(m, bool)), dialect)
        cols["created_at"] = stamp
        cols["updated_at"] = stamp
        # Open cases get their stage deadline (the map's and the overdue count's).
        for i in np.flatnonzero(live & ~reached["resolved"]):
            since_dt = datetime.fromtimestamp(float(since[i]), UTC)
            deadline = policy.stage_deadline(
                status=str(status[i]), status_since=since_dt, category=str(category[i]),
                priority=int(priority[i]),
                reported_at=datetime.fromtimestamp(float(reported[i]), UTC), due=None,
            )  # fmt: skip
            if deadline is not None:
                cols["deadline_at"][i] = timestamp_texts(
                    np.array([int(deadline.timestamp() * 1e6)]), dialect
                )[0]
                cols["overdue"][i] = deadline < now
        resolved_ever = (reached["resolved"] | reached["closed"]) & live
        names = list(CALLBACK_P)
        calls = np.array(names, dtype=object)[
            rng.choice(len(names), size=m, p=np.array(list(CALLBACK_P.values())))
        ]
        cols["callback_result"] = [
            str(r) if ok and r != "none" else None
            for r, ok in zip(calls, resolved_ever, strict=True)
        ]
        for value in status.tolist():
            statuses[value] = statuses.get(value, 0) + 1
        ids = cols["id"]
        existing = set(
            session.scalars(select(Case.id).where(Case.id >= ids[0], Case.id <= ids[-1]))
        )
        bulk_load(
            session, "cases", CASE_COLUMNS, zip(*(cols[k] for k in CASE_COLUMNS), strict=True)
        )
        rows = _assignment_rows(
            rng, ids, category, cols["unit_id"], dispatched, on_scene, resolved, reached, live,
            existing, now_s, dialect,
        )  # fmt: skip
        bulk_load(session, "assignments", ASSIGNMENT_COLUMNS, rows)
        assignments += len(rows)
        written += m
        if progress:
            progress(m)
    return {
        "cases": written,
        "assignments": assignments,
        **{f"status_{k}": v for k, v in statuses.items()},
    }


def _assignment_rows(
    rng: np.random.Generator,
    ids: list[str],
    category: np.ndarray,
    unit_ids: list[str | None],
    dispatched: np.ndarray,
    on_scene: np.ndarray,
    resolved: np.ndarray,
    reached: dict[str, np.ndarray],
    live: np.ndarray,
    existing: set[str],
    now_s: float,
    dialect: str,
) -> list[tuple[Any, ...]]:
    """The responders of the dispatched cases (as the live simulator makes them): the lead
    department, its co-handlers (some return it), the unit; acceptance per department."""
    out: list[tuple[Any, ...]] = []
    raw: list[list[Any]] = []
    for i in np.flatnonzero(reached["dispatched"] & live):
        if ids[i] in existing:
            continue
        cat = str(category[i])
        lead = DEPARTMENT_FOR.get(cat, "grid_office")
        depts = [(lead, "lead")] + [
            (d, "assist") for d, p in CO_HANDLERS.get(cat, ()) if d != lead and rng.random() < p
        ]
        t0 = float(dispatched[i])
        done = float(resolved[i]) if reached["resolved"][i] else None
        for dept, role in depts:
            low, mode, high = ACCEPT_MIN.get(dept, (0.5, 2.5, 8.0))
            accepted = t0 + 60 * rng.triangular(low, mode, high)
            returned = role == "assist" and rng.random() < 0.05
            acc = accepted if accepted <= now_s and not returned else None
            ret = accepted if accepted <= now_s and returned else None
            fin = done if done is not None and not returned else None
            status = "returned" if ret else "done" if fin else "accepted" if acc else "dispatched"
            raw.append([ids[i], dept, "department", role, role == "lead", status, t0, acc, None,
                        fin, ret, t0 + 300])  # fmt: skip
        unit = unit_ids[i]
        if unit is not None:
            scene = float(on_scene[i]) if reached["on_scene"][i] else None
            status = "done" if done else "on_scene" if scene else "dispatched"
            raw.append([ids[i], unit, "unit", "responder", False, status, t0, t0 if scene else None,
                        scene, done, None, t0 + 60])  # fmt: skip
    if not raw:
        return out
    times = [6, 7, 8, 9, 10, 11]
    columns = {
        k: timestamp_texts(
            np.array([NAT if r[k] is None else int(r[k] * 1e6) for r in raw], dtype=np.int64),
            dialect,
        )
        for k in times
    }
    for n, r in enumerate(raw):
        stamps = [columns[k][n] for k in times]
        out.append((*r[:6], *stamps, 0, 0, stamps[0], 1, stamps[0], stamps[0]))
    return out


def _pings(
    session: Session,
    district: District,
    rng: np.random.Generator,
    *,
    now: datetime,
    hours: int,
    dialect: str,
) -> int:
    """A ping a minute for every unit over the last ``hours``: a walk around its home grid."""
    if hours <= 0:
        return 0
    steps = hours * 60
    end_s = math.floor(now.timestamp() / 60) * 60
    ts = end_s - (steps - np.arange(steps)) * 60
    total = 0
    for unit in district.units:
        drift = rng.normal(0, 0.0004, (steps, 2))
        walk = np.zeros((steps, 2))
        for i in range(1, steps):  # mean-reverting: units stay near their beat
            walk[i] = walk[i - 1] * 0.97 + drift[i]
        lat = np.round(unit.home_lat + walk[:, 0], 6)
        lon = np.round(unit.home_lon + walk[:, 1], 6)
        stamps = timestamp_texts((ts * 1e6).astype(np.int64), dialect)
        rows = zip(
            [unit.id] * steps, stamps, lat.tolist(), lon.tolist(),
            np.round(rng.uniform(0, 3, steps), 2).tolist(), [None] * steps,
            ["available"] * steps, strict=True,
        )  # fmt: skip
        bulk_load(session, "unit_pings", PING_COLUMNS, rows)
        total += steps
    return total
