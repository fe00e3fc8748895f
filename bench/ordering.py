"""Per-case order under scale-out: N `lianqin worker` processes catch up a backlog of full
case histories; entries/s and how many cases end in the wrong state (must be 0).

    .venv/bin/python -m bench.ordering                    # SQLite and PostgreSQL; 1, 2, 4 workers
    .venv/bin/python -m bench.ordering --db sqlite --cases 5000 --workers 1,2,4 --kill

The backlog (bench/histories.py) is what a center's stream holds after an outage: every
message of ``--cases`` cases (create → … → closed, with rework and cancellations),
interleaved across cases, each case's messages in order. ``--workers`` real worker
processes (the operator's command) are started on an empty stream and, once all are up,
the backlog is written; the clock runs from the first XADD until the consumer group has
delivered and acknowledged every entry. Then every case is compared with what its ordered
history says (status, rework count, unit, the time of each stage) — a case in another
state is a lost update — and the dead letters are counted (every message is valid: there
must be none). With ``--kill`` a random worker is SIGKILLed every 1–3 s and restarted,
half the time without ``--name`` (a new consumer, as after a host restart).

The ceiling is a bare XREAD loop over the same entries in the same Python (redis-py +
hiredis); figures are printed with their ratio to it, because the machine is shared.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Backend,
    Proc,
    backend,
    banner,
    dump,
    xadd_many,
)
from bench.histories import History, stream_of
from bench.ingest import raw_xread

COLUMNS = (
    "status", "rework_count", "unit_id", "reported_at", "registered_at", "dispatched_at",
    "on_scene_at", "resolved_at", "closed_at", "cancelled_at",
)  # fmt: skip


def worker_args(name: str | None) -> list[str]:
    args = [sys.executable, "-m", "dashboard.cli", "--log-level", "INFO", "worker"]
    return [*args, "--name", name] if name else args


class Workers:
    """N worker processes; with ``kill``, a thread SIGKILLs and restarts one at random."""

    def __init__(self, b: Backend, n: int, log_dir: Path, batch: int) -> None:
        self.b, self.log_dir = b, log_dir
        self.env = b.env(LIANQIN_WORKER_BATCH=str(batch), LIANQIN_WORKER_BLOCK_MS="20")
        self.starts = 0
        self.kills = 0
        self.procs: dict[int, Proc] = {}
        for slot in range(n):
            self.spawn(slot, named=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def spawn(self, slot: int, *, named: bool) -> Proc:
        self.starts += 1
        name = f"o{slot}" if named else None
        proc = Proc(f"o{slot}-{self.starts}", worker_args(name), self.env, self.log_dir)
        self.procs[slot] = proc
        return proc

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            while "grid index" not in proc.output():
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not start")
                time.sleep(0.05)

    def chaos(self, seed: int) -> None:
        rng = random.Random(seed)

        def loop() -> None:
            while not self._stop.wait(rng.uniform(1.0, 3.0)):
                slot = rng.choice(sorted(self.procs))
                victim = self.procs[slot]
                victim.popen.send_signal(signal.SIGKILL)
                victim.popen.wait()
                self.kills += 1
                self.spawn(slot, named=rng.random() < 0.5)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for proc in self.procs.values():
            proc.stop()


def drained(b: Backend, stream: str, group: str = "lianqin") -> bool:
    """Every entry of ``stream`` delivered to the group and acknowledged."""
    client = b.redis()
    try:
        groups: Any = client.xinfo_groups(stream)
        last: Any = client.xinfo_stream(stream)["last-generated-id"]
    finally:
        client.close()
    g = next((g for g in groups if g["name"] in (group, group.encode())), None)
    return g is not None and g["pending"] == 0 and g["last-delivered-id"] == last


def check(b: Backend, histories: list[History], total: int) -> dict[str, Any]:
    from dashboard.db import make_database
    from dashboard.models import Case, CaseEvent

    database = make_database(b.settings())
    try:
        with database.read() as session:
            rows = {c.id: c for c in session.scalars(select(Case))}
            events = session.scalar(select(func.count()).select_from(CaseEvent)) or 0
            late = session.scalar(select(func.count()).where(CaseEvent.effect == "late")) or 0
            distinct = session.scalar(select(func.count(func.distinct(CaseEvent.entry_id)))) or 0
    finally:
        database.dispose()
    lost = []
    stuck_reported = 0
    for h in histories:
        case = rows.get(h.case_id)
        want = h.expected()
        if case is None or any(getattr(case, k) != want[k] for k in COLUMNS):
            lost.append(h.case_id)
            if case is not None and case.status == "reported" and want["status"] != "reported":
                stuck_reported += 1
    client = b.redis()
    dead = client.xlen(f"{b.prefix}:dead")
    counters = client.hgetall(f"{b.prefix}:metrics")
    client.close()
    reasons = {
        k.decode().split(":", 2)[2]: int(v)
        for k, v in counters.items()
        if k.decode().startswith("dead:incidents:")
    }
    return {
        "lost_cases": len(lost),
        "stuck_at_reported": stuck_reported,
        "dead_letters": dead,
        "dead_by_reason": reasons,
        "late": late,  # applied after a newer message of its case: kept, never applied
        "timeline_events": events,
        "exactly_once": events == distinct == total,
        "lost_examples": lost[:5],
    }


def run_one(kind: str, args: argparse.Namespace, n: int) -> dict[str, Any]:
    with backend(kind, redis_url=args.redis_url, pg_url=args.pg_url) as b:
        rng = random.Random(args.seed)
        histories, messages = stream_of(
            rng, args.cases, now_ms=int(time.time() * 1000), prefix="BO"
        )
        stream = f"{b.prefix}:incidents"
        client = b.redis()
        workers = Workers(b, n, b.data_dir.parent / "logs", args.batch)
        try:
            workers.wait_ready()
            started = time.perf_counter()
            if args.kill:
                workers.chaos(args.seed)
            xadd_many(client, stream, messages)
            deadline = time.monotonic() + 1800
            while not drained(b, stream):
                if time.monotonic() > deadline:
                    raise RuntimeError("not drained in 30 minutes")
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            workers.stop()
        raw = raw_xread(b, stream, len(messages))
        client.close()
        outcome = check(b, histories, len(messages))
        return {
            "db": kind,
            "workers": n,
            "kill": args.kill,
            "kills": workers.kills,
            "cases": len(histories),
            "entries": len(messages),
            "entries_per_s": len(messages) / elapsed,
            "raw_xread_per_s": raw,
            **outcome,
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000, help="LIANQIN_WORKER_BATCH")
    parser.add_argument("--kill", action="store_true", help="SIGKILL a random worker every 1-3 s")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    banner(
        "ordering: N worker processes catch up a backlog of interleaved case histories",
        cases=args.cases,
        batch=args.batch,
        kill=args.kill,
        seed=args.seed,
        redis=args.redis_url,
    )
    rows = []
    for kind in kinds:
        for n in (int(w) for w in args.workers.split(",")):
            row = run_one(kind, args, n)
            rows.append(row)
            print(
                f"-- {kind:10s} {n} worker(s){' killed' if args.kill else ''}: "
                f"{row['entries_per_s']:>7,.0f} entries/s "
                f"({row['entries_per_s'] / row['raw_xread_per_s']:.2%} of bare XREAD "
                f"{row['raw_xread_per_s']:,.0f}/s) | {row['entries']} entries, "
                f"{row['cases']} cases: lost {row['lost_cases']} "
                f"(stuck at reported {row['stuck_at_reported']}), "
                f"dead letters {row['dead_letters']} {row['dead_by_reason'] or ''}, "
                f"late {row['late']}, exactly once: {row['exactly_once']}"
                + (f" | kills {row['kills']}" if args.kill else ""),
                flush=True,
            )
    result = {"rows": rows}
    dump(args.json, result)
    return result


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
