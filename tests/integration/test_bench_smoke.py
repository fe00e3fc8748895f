"""Each benchmark runs end to end at a tiny size, so that none of them rots.

Only that they run and report is checked (and the checks they make themselves, such as
exactly-once and no dropped delta); their timings are never asserted here. Each runs on the
run's database: SQLite, or with TEST_DATABASE_URL a private database on that PostgreSQL
server (created and dropped by the benchmark).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def database_args() -> list[str]:
    server = os.environ.get("TEST_DATABASE_URL")
    return ["--db", "postgresql", "--pg-url", server] if server else ["--db", "sqlite"]


def run_bench(module: str, redis_url: str, *args: str, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANQIN_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", module, "--redis-url", redis_url, *database_args(), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def test_ingest_benchmark_runs(redis_url: str) -> None:
    out = run_bench(
        "bench.ingest", redis_url, "--workers", "1,2",
        "--pings", "600", "--cases", "120", "--units", "50",
    )  # fmt: skip
    assert "of bare XREAD" in out
    assert out.count("exactly once: True") == 2, out


def test_ordering_benchmark_runs(redis_url: str) -> None:
    out = run_bench(
        "bench.ordering", redis_url, "--workers", "2", "--cases", "40",
        "--batch", "10",
    )  # fmt: skip
    assert "lost 0 (stuck at reported 0), dead letters 0 , late 0, exactly once: True" in out, out


@needs_chromium
def test_e2e_benchmark_runs_with_the_peer(redis_url: str) -> None:
    out = run_bench(
        "bench.e2e", redis_url, "--duration", "3", "--units", "50", "--cases", "100",
        "--ping-rate", "50", "--case-rate", "2", "--peers", "1000",
    )  # fmt: skip
    assert "in order with no gap: True" in out, out
    assert "units not at their last ping: 0" in out, out
    assert "-- peer_1000ms" in out, out


@needs_chromium
def test_load_benchmark_runs(redis_url: str) -> None:
    out = run_bench(
        "bench.load", redis_url, "--units", "50", "--cases", "200", "--opens", "1",
        "--duration", "2", "--ping-rate", "50", "--case-rate", "2",
    )  # fmt: skip
    assert "open → painted wall" in out and "one delta" in out, out


@needs_chromium
def test_soak_benchmark_runs(redis_url: str) -> None:
    out = run_bench(
        "bench.soak", redis_url, "--duration", "4", "--interval", "2", "--units", "50",
        "--cases", "100", "--ping-rate", "50", "--maxlen", "1000",
    )  # fmt: skip
    assert "-- soak over" in out and "worker_rss" in out, out


def test_screens_benchmark_runs(redis_url: str) -> None:
    out = run_bench(
        "bench.screens", redis_url, "--screens", "4", "--procs", "2", "--units", "50",
        "--cases", "200", "--duration", "3", "--ping-rate", "50", "--case-rate", "2",
    )  # fmt: skip
    assert "live: 4 of 4" in out and "nothing lost: True" in out, out
    # Shared per cursor: one build when the four open together; a loaded machine may spread
    # their openings over a few deltas (one build each), never one build per screen and more.
    built = re.search(r"snapshots: (\d+) built", out)
    assert built is not None and 1 <= int(built.group(1)) <= 4, out


def test_assignments_benchmark_runs(redis_url: str) -> None:
    out = run_bench(
        "bench.assignments", redis_url, "--db", "sqlite", "--workers", "1,2", "--cases", "30",
    )  # fmt: skip
    assert "of bare XREAD" in out
    assert out.count("exactly once: True") == 2, out
