"""Ingest throughput of `lq:assignments` (contract v1.1): responders' progress through the
whole worker path, with the same exactly-once check as bench/ingest.py.

    .venv/bin/python -m bench.assignments         # SQLite and PostgreSQL, 1 and 2 workers
    .venv/bin/python -m bench.assignments --db sqlite --cases 500 --workers 1

N cases are created on lq:incidents and drained; then each gets a joint response on
lq:assignments — a lead department, a co-handler and a unit, dispatched, accepted, the unit
en route and on scene, everyone done (10 entries per case) — written step by step across
the cases, and 1 or N `Worker` processes drain it: validate, apply under the lq:incidents
lease (assignment rows, the case following them, timelines), push one delta per batch,
acknowledge. The bare XREAD ceiling is measured in the same run over the same entries. The
run checks that every entry was applied once (ingested == written == timeline lines of kind
``assignment``), none was dead-lettered, and every case ended ``resolved`` by its responders.
"""

from __future__ import annotations

import argparse
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
    seed_units,
    xadd_many,
)
from bench.ingest import drain, raw_xread

DEPARTMENTS = 20
# (assignee index offset, kind, status, role) per step; the unit is the case's own.
STEPS: tuple[tuple[str, str, str | None], ...] = (
    ("lead", "dispatched", "lead"),
    ("assist", "dispatched", "assist"),
    ("unit", "dispatched", None),
    ("lead", "accepted", None),
    ("assist", "accepted", None),
    ("unit", "en_route", None),
    ("unit", "on_scene", None),
    ("assist", "done", None),
    ("unit", "done", None),
    ("lead", "done", None),
)


def seed_departments(b: Backend) -> list[str]:
    from dashboard.db import make_database
    from dashboard.models import Department

    ids = [f"dept-{i:02d}" for i in range(DEPARTMENTS)]
    database = make_database(b.settings())
    try:
        with database.write() as session:
            session.add_all(Department(id=d, name=d) for d in ids)
    finally:
        database.dispose()
    return ids


def entry(
    case_id: str, i: int, step: int, ts_ms: int, units: list[str], depts: list[str]
) -> dict[str, str]:
    who, status, role = STEPS[step]
    if who == "unit":
        out = {"assignee": units[i % len(units)], "kind": "unit"}
    else:
        offset = 0 if who == "lead" else 1
        out = {"assignee": depts[(i + offset) % len(depts)], "kind": "department"}
    out |= {"case": case_id, "status": status, "ts": str(ts_ms)}
    if role:
        out["role"] = role
    if status == "done":
        out["note"] = "办结"
    return out


def counts(b: Backend) -> dict[str, int]:
    from dashboard.db import make_database
    from dashboard.models import Assignment, Case, CaseEvent

    database = make_database(b.settings())
    try:
        with database.read() as session:
            return {
                "events": session.scalar(
                    select(func.count()).where(CaseEvent.kind == "assignment")
                ) or 0,
                "assignments": session.scalar(select(func.count()).select_from(Assignment)) or 0,
                "resolved": session.scalar(
                    select(func.count()).where(Case.status == "resolved")
                ) or 0,
            }  # fmt: skip
    finally:
        database.dispose()


def run_one(kind: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    with backend(kind, redis_url=args.redis_url, pg_url=args.pg_url) as b:
        client = b.redis()
        units = seed_units(b, max(1, args.cases))
        depts = seed_departments(b)
        base = int(time.time() * 1000) - 3_600_000
        creates = [case_fields(f"BA-{i:06d}", i, 0, base) for i in range(args.cases)]
        xadd_many(client, f"{b.prefix}:incidents", creates)
        drain(b, workers=1, expected=len(creates), metric="ingested:incidents", profile=None)
        entries = [
            entry(f"BA-{i:06d}", i, step, base + (step + 1) * 60_000, units, depts)
            for step in range(len(STEPS))
            for i in range(args.cases)
        ]
        xadd_many(client, f"{b.prefix}:assignments", entries)
        raw = raw_xread(b, f"{b.prefix}:assignments", len(entries))
        client.close()
        elapsed = drain(
            b, workers=workers, expected=len(entries), metric="ingested:assignments",
            profile=f"{args.profile}.{kind}.{workers}w" if args.profile else None,
        )  # fmt: skip
        c = counts(b)
        rc = b.redis()
        metrics = {k.decode(): int(v) for k, v in rc.hgetall(f"{b.prefix}:metrics").items()}
        rc.close()
        return {
            "db": kind,
            "workers": workers,
            "entries": len(entries),
            "raw_xread_per_s": raw,
            "events_per_s": len(entries) / elapsed,
            "assignments": c["assignments"],
            "resolved": c["resolved"],
            "exactly_once": (
                metrics.get("ingested:assignments") == len(entries) == c["events"]
                and c["assignments"] == 3 * args.cases
                and c["resolved"] == args.cases
                and not any(k.startswith("dead:") for k in metrics)
            ),
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--cases", type=int, default=2000, help="cases (10 entries each)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--profile", help="write cProfile stats to PREFIX.<db>.<n>w.bench-<i>")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    banner(
        "assignments: lq:assignments through the whole worker path vs a bare XREAD loop",
        cases=args.cases, entries=args.cases * len(STEPS), redis=args.redis_url,
    )  # fmt: skip
    rows = []
    for kind in kinds:
        for n in (int(w) for w in args.workers.split(",")):
            row = run_one(kind, args, n)
            rows.append(row)
            print(
                f"-- {kind:10s} {n} worker(s): {row['events_per_s']:>7,.0f} assignment events/s "
                f"({row['events_per_s'] / row['raw_xread_per_s']:.1%} of bare XREAD "
                f"{row['raw_xread_per_s']:,.0f}/s) | cases resolved {row['resolved']} | "
                f"exactly once: {row['exactly_once']}",
                flush=True,
            )
    result = {"rows": rows}
    dump(args.json, result)
    return result


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
