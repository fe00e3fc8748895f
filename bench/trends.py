"""Benchmark: the briefing view's data (/trends) for a month and a year of history.

For each database (a private SQLite file and a private PostgreSQL database, dropped at
the end) it writes ``--cases`` historical cases over ``--days`` days with the same code
as ``lianqin simulate --history`` (dashboard/demo/history.py), then times
``dashboard.services.trends.trends_page`` — everything the page shows: the KPI series,
volume by category and source, the heatmap, grids, the department league, histograms,
环比/同比 and the top cases — for last month (by day) and for the last 365 days (by month),
and prints the year/month ratio.

    .venv/bin/python -m bench.trends --cases 1000000
    .venv/bin/python -m bench.trends --cases 100000 --db sqlite --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import DEFAULT_PG, backend, banner, dump, machine
from dashboard import dialect
from dashboard.db import make_database
from dashboard.demo.district import generate_district, seed_district
from dashboard.demo.history import generate_history
from dashboard.services import trends
from dashboard.services.kpis import options_for
from dashboard.sla import SlaPolicy

ZONE = ZoneInfo("Asia/Shanghai")
PARTS: dict[str, Callable[..., Any]] = {
    "series": lambda s, req, opts, now: trends.kpi_series(s, req=req, options=opts),
    "by_category": lambda s, req, opts, now: trends.volume_by(s, req=req, dimension="category"),
    "by_source": lambda s, req, opts, now: trends.volume_by(s, req=req, dimension="source"),
    "hour_of_week": lambda s, req, opts, now: trends.hour_of_week(s, req=req),
    "by_grid": lambda s, req, opts, now: trends.by_grid(s, req=req),
    "departments": lambda s, req, opts, now: trends.departments(s, req=req, options=opts),
    "histograms": lambda s, req, opts, now: (
        trends.histogram(s, req=req, span="dispatch"),
        trends.histogram(s, req=req, span="arrival"),
    ),
    "compare": lambda s, req, opts, now: trends.compare(s, req=req, options=opts),
    "top_cases": lambda s, req, opts, now: trends.top_cases(s, req=req, now=now),
}


def requests(now: datetime) -> dict[str, trends.TrendRequest]:
    month = trends.resolve_period("last_month", now=now, zone=ZONE)
    today = now.astimezone(ZONE).date()
    year = trends.resolve_period(
        "custom", now=now, zone=ZONE, start=today - timedelta(days=365), end=today
    )
    return {
        "month": trends.TrendRequest(period=month, granularity="day", zone=ZONE),
        "year": trends.TrendRequest(period=year, granularity="month", zone=ZONE),
    }


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC)
    out: dict[str, Any] = {"db": kind}
    with backend(kind, pg_url=args.pg_url) as b:
        settings = b.settings()
        database = make_database(settings)
        try:
            started = time.perf_counter()
            with database.write() as session:
                seed_district(session, generate_district())
                counts = generate_history(
                    session, generate_district(), n=args.cases, now=now, zone=ZONE,
                    policy=SlaPolicy(), days=args.days, seed=1, ping_hours=0,
                )  # fmt: skip
            out["load_s"] = round(time.perf_counter() - started, 1)
            out["cases"] = counts["cases"]
            dialect.analyze(database.engine)  # what autovacuum does after a bulk load
            options = options_for(settings, SlaPolicy())
            for name, req in requests(now).items():
                with database.read() as session:
                    trends.trends_page(session, req=req, options=options, now=now)  # warm
                    times = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        data = trends.trends_page(session, req=req, options=options, now=now)
                        times.append(time.perf_counter() - t0)
                    parts = {}
                    for part, fn in PARTS.items():
                        t0 = time.perf_counter()
                        fn(session, req, options, now)
                        parts[part] = round(time.perf_counter() - t0, 3)
                out[name] = {
                    "cases_in_period": sum(data["series"]["reported"]),
                    "buckets": len(data["series"]["buckets"]),
                    "median_s": round(statistics.median(times), 3),
                    "min_s": round(min(times), 3),
                    "parts_s": parts,
                }
                print(
                    f"  {kind:<10} {name:<5} {out[name]['cases_in_period']:>9,} cases "
                    f"{out[name]['buckets']:>3} buckets  median {out[name]['median_s']:.3f} s "
                    f"(min {out[name]['min_s']:.3f})  {parts}",
                    flush=True,
                )
            out["year_over_month"] = round(out["year"]["median_s"] / out["month"]["median_s"], 2)
            out["bytes"] = b.db_bytes()
        finally:
            database.dispose()
    print(
        f"  {kind}: {out['cases']:,} cases loaded in {out['load_s']} s; "
        f"year / month = {out['year_over_month']}×",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    banner("trends", cases=args.cases, days=args.days, db=args.db, repeat=args.repeat)
    results = {"machine": machine(), "runs": [run(k, args) for k in args.db.split(",")]}
    dump(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
