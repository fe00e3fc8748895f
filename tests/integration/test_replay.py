"""`lianqin replay boston311 FILE` through the streams and the worker: the KPIs equal an
independent computation over the CSV (counts and closure rate, per day and for the month)."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from helpers import dataset, drain

from dashboard.cli import main
from dashboard.runtime import Runtime
from dashboard.services.kpis import KpiOptions, Period, compute_kpis, day_period
from dashboard.worker.loop import Worker

BOSTON = ZoneInfo("America/New_York")
# shared/ sits beside the repository (a module-level path: `conftest` is ambiguous here).
CSV_FILE = dataset("boston311-100.csv")


def csv_truth() -> tuple[Counter[str], Counter[str]]:
    """Reported and closed per local day, straight from the file (no importer code)."""
    reported: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    with CSV_FILE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            day = row["open_dt"][:10]
            reported[day] += 1
            if row["case_status"] == "Closed":
                closed[day] += 1
    return reported, closed


def test_replay_gives_the_kpis_of_the_csv(runtime: Runtime, tmp_path: Path) -> None:
    s = runtime.settings
    env = {
        "REDIS_URL": runtime.redis_url,
        "DATABASE_URL": s.effective_database_url,
        "LIANQIN_STREAM_PREFIX": s.stream_prefix,
        "LIANQIN_DATA_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["replay", "boston311", str(CSV_FILE)], env=env)
    assert result.exit_code == 0, result.output
    assert "100 cases (185 entries)" in result.output
    worker = Worker(runtime, None, consumer="replay")
    worker.prepare()
    drain(worker)
    assert runtime.redis.xlen(runtime.keys.dead) == 0  # every entry met the contract
    reported, closed = csv_truth()
    options = KpiOptions(policy=runtime.policy, categories=s.categories)
    with runtime.db.read() as session:
        month = compute_kpis(
            session,
            period=Period(
                day_period(date(2022, 1, 1), BOSTON).start,
                day_period(date(2022, 1, 31), BOSTON).end,
            ),
            now=runtime.now(),
            options=options,
            live=False,
        )
        assert month["reported"] == sum(reported.values()) == 100
        assert month["closure_rate"] == sum(closed.values()) / 100 == 0.85
        assert month["open"] == 100 - sum(closed.values())
        assert month["disposal_rate"] == month["closure_rate"]  # Boston has no resolved stage
        for day, n in reported.items():
            kpis = compute_kpis(
                session,
                period=day_period(date.fromisoformat(day), BOSTON),
                now=runtime.now(),
                options=options,
                live=False,
            )
            assert kpis["reported"] == n, day
            assert kpis["closure_rate"] == closed[day] / n, day
    # Replaying again changes nothing in effect (new entries, same cases and states).
    again = CliRunner().invoke(main, ["replay", "boston311", str(CSV_FILE)], env=env)
    assert again.exit_code == 0, again.output
    drain(worker)
    with runtime.db.read() as session:
        total = compute_kpis(
            session,
            period=day_period(date(2022, 1, 3), BOSTON),
            now=runtime.now(),
            options=options,
            live=False,
        )
    assert total["reported"] == reported["2022-01-03"]
