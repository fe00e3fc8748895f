"""Ingest throughput: pings/s and case events/s through the whole worker path.

    .venv/bin/python -m bench.ingest                   # SQLite and PostgreSQL, 1 and 2 workers
    .venv/bin/python -m bench.ingest --db sqlite --pings 20000 --cases 1000 --workers 1

A backlog of pings (and, separately, of case messages) is written to the streams; then
1 or N `Worker` processes of one consumer group drain it through the real path —
validate, apply in one transaction (track rows, latest position, case rows and
timelines), move the latest positions in Redis, append and publish one numbered delta
per batch, acknowledge. The raw ceiling is measured in the same run over the same
entries: a bare XREAD loop with the same client (redis-py + hiredis) in the same Python.
Every figure is printed with its ratio to that ceiling. The run also checks that no entry
was applied twice (ingested == written, tracks and timelines == written).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Backend,
    backend,
    banner,
    case_fields,
    dump,
    ping_fields,
    seed_units,
    xadd_many,
)
from dashboard.config import Settings


def raw_xread(b: Backend, stream: str, count: int) -> float:
    """Entries/s of a bare XREAD loop over ``stream`` (the ceiling of any reader)."""
    client = b.redis()
    try:
        last = "0-0"
        seen = 0
        started = time.perf_counter()
        while seen < count:
            reply: Any = client.xread({stream: last}, count=1000)
            if not reply:
                break
            entries = reply[0][1]
            seen += len(entries)
            last = entries[-1][0]
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return seen / elapsed


def _worker_main(
    overrides: dict[str, Any], name: str, ready: Any, go: Any, stop: Any, profile: str | None
) -> None:
    from dashboard.live.publisher import Publisher
    from dashboard.runtime import Runtime
    from dashboard.worker.loop import Worker

    settings = Settings(**overrides)
    rt = Runtime.open(settings)
    worker = Worker(rt, Publisher(rt.redis_url, rt.keys), consumer=name)
    worker.prepare()
    ready.set()
    go.wait()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    while not stop.is_set():
        worker.step()
    worker.release_leases()  # stopped gracefully, as on SIGTERM: the next phase need not wait
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(f"{profile}.{name}")
    rt.close()


def drain(b: Backend, *, workers: int, expected: int, metric: str, profile: str | None) -> float:
    """Start ``workers`` processes, release them together, time until ``expected`` are acked."""
    ctx = mp.get_context("spawn")
    overrides = {
        "data_dir": b.data_dir,
        "redis_url": b.redis_url,
        "database_url": b.database_url,
        "stream_prefix": b.prefix,
        "worker_block_ms": 20,
    }
    go, stop = ctx.Event(), ctx.Event()
    procs = []
    readies = []
    for i in range(workers):
        ready = ctx.Event()
        p = ctx.Process(
            target=_worker_main, args=(overrides, f"bench-{i}", ready, go, stop, profile)
        )
        p.start()
        procs.append(p)
        readies.append(ready)
    for r in readies:
        if not r.wait(60):
            raise RuntimeError("a worker did not start")
    client = b.redis()
    metrics = f"{b.prefix}:metrics"
    try:
        started = time.perf_counter()
        go.set()
        short = metric.split(":", 1)[1]
        deadline = time.monotonic() + 600
        while True:
            values = client.hgetall(metrics)
            done = sum(
                int(v)
                for k, v in values.items()
                if k.decode() == metric or k.decode().startswith(f"dead:{short}:")
            )
            if done >= expected:
                break
            if not all(p.is_alive() for p in procs):
                raise RuntimeError("a worker died")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {expected} handled in 600 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        for p in procs:
            p.join(30)
        client.close()
    return elapsed


def counts(b: Backend) -> dict[str, int]:
    from dashboard.db import make_database
    from dashboard.models import CaseEvent, UnitPing

    database = make_database(b.settings())
    try:
        with database.read() as session:
            return {
                "tracks": session.scalar(select(func.count()).select_from(UnitPing)) or 0,
                "events": session.scalar(select(func.count()).select_from(CaseEvent)) or 0,
            }
    finally:
        database.dispose()


def run_one(kind: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    with backend(kind, redis_url=args.redis_url, pg_url=args.pg_url) as b:
        client = b.redis()
        units = seed_units(b, args.units)
        base = int(time.time() * 1000) - 600_000
        pings = [
            ping_fields(units[i % len(units)], i, base + i // len(units) * 1000 + 1)
            for i in range(args.pings)
        ]
        xadd_many(client, f"{b.prefix}:pings", pings)
        raw_pings = raw_xread(b, f"{b.prefix}:pings", len(pings))
        prof = f"{args.profile}.{kind}.{workers}w" if args.profile else None
        t_pings = drain(
            b, workers=workers, expected=len(pings), metric="ingested:pings", profile=prof
        )
        # Cases: every case is created first (phase 1), then moved through its lifecycle
        # (phase 2). With several workers a case's messages may be applied out of order;
        # progress messages cope (a late one is kept as late), but an update applied
        # before its create would be dead-lettered, so creates are drained first — as in
        # real life, where a case's messages are seconds to minutes apart.
        n_cases = max(1, args.cases // 6)
        creates = [case_fields(f"BC-{i:06d}", i, 0, base) for i in range(n_cases)]
        progress = []
        for block in range(0, n_cases, 500):
            ids = range(block, min(n_cases, block + 500))
            for step in range(1, 6):
                for i in ids:
                    progress.append(case_fields(f"BC-{i:06d}", i, step, base + step * 60_000))
        entries = creates + progress
        xadd_many(client, f"{b.prefix}:incidents", creates)
        raw_cases = raw_xread(b, f"{b.prefix}:incidents", len(creates))
        t_creates = drain(
            b,
            workers=workers,
            expected=len(creates),
            metric="ingested:incidents",
            profile=prof + ".creates" if prof else None,
        )
        xadd_many(client, f"{b.prefix}:incidents", progress)
        client.close()
        t_progress = drain(
            b,
            workers=workers,
            expected=len(entries),
            metric="ingested:incidents",
            profile=prof + ".progress" if prof else None,
        )
        t_cases = t_creates + t_progress
        c = counts(b)
        rc = b.redis()
        metrics = {k.decode(): int(v) for k, v in rc.hgetall(f"{b.prefix}:metrics").items()}
        seq = int(rc.get(f"{b.prefix}:deltas:seq") or 0)
        rc.close()
        return {
            "db": kind,
            "workers": workers,
            "pings": len(pings),
            "cases_events": len(entries),
            "raw_xread_pings_per_s": raw_pings,
            "raw_xread_cases_per_s": raw_cases,
            "pings_per_s": len(pings) / t_pings,
            "case_events_per_s": len(entries) / t_cases,
            "ingested": metrics,
            "tracks": c["tracks"],
            "timeline_events": c["events"],
            "deltas": seq,
            "exactly_once": (
                metrics.get("ingested:pings") == len(pings) == c["tracks"]
                and metrics.get("ingested:incidents") == len(entries) == c["events"]
                and not any(k.startswith("dead:") for k in metrics)
            ),
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--pings", type=int, default=200_000)
    parser.add_argument("--cases", type=int, default=30_000, help="case messages (6 per case)")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--profile", help="write cProfile stats to PREFIX.<db>.<n>w.bench-<i>")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    worker_counts = [int(w) for w in args.workers.split(",")]
    banner(
        "ingest: whole worker path vs a bare XREAD loop (same run, same entries)",
        pings=args.pings,
        case_events=args.cases,
        units=args.units,
        redis=args.redis_url,
        batch="1000 entries per stream per read (LIANQIN_WORKER_BATCH)",
    )
    rows = []
    for kind in kinds:
        for n in worker_counts:
            row = run_one(kind, args, n)
            rows.append(row)
            print(
                f"-- {kind:10s} {n} worker(s): "
                f"{row['pings_per_s']:>9,.0f} pings/s "
                f"({row['pings_per_s'] / row['raw_xread_pings_per_s']:.1%} of bare XREAD "
                f"{row['raw_xread_pings_per_s']:,.0f}/s, target 20,000: "
                f"{row['pings_per_s'] / 20_000:.2f}x) | "
                f"{row['case_events_per_s']:>7,.0f} case events/s "
                f"({row['case_events_per_s'] / row['raw_xread_cases_per_s']:.1%} of bare XREAD "
                f"{row['raw_xread_cases_per_s']:,.0f}/s, target 2,000: "
                f"{row['case_events_per_s'] / 2_000:.2f}x) | "
                f"deltas {row['deltas']} | exactly once: {row['exactly_once']}",
                flush=True,
            )
    by = {(r["db"], r["workers"]): r for r in rows}
    for kind in kinds:
        if (kind, 1) in by and (kind, 2) in by:
            one, two = by[(kind, 1)], by[(kind, 2)]
            print(
                f"-- {kind}: 2 workers / 1 worker = "
                f"{two['pings_per_s'] / one['pings_per_s']:.2f}x pings, "
                f"{two['case_events_per_s'] / one['case_events_per_s']:.2f}x case events"
            )
    result = {"rows": rows}
    dump(args.json, result)
    return result


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
