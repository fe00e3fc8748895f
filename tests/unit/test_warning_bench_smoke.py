"""The early-warning and duplicate benchmarks run end to end at a tiny size (no timing
asserted), so that neither rots. They need no Redis and no database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(module: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANQIN_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def test_warning_benchmark_runs() -> None:
    out = run("bench.warning", "--small", "--scan")
    assert "-- history:" in out
    assert "nb_baseline@2/day: recall" in out and "false alarms" in out, out
    assert "+stp_scan" in out and "ms per new case" in out, out


def test_duplicates_benchmark_runs() -> None:
    out = run("bench.duplicates", "--small")
    assert "reports of" in out and "precision" in out and "<- default" in out, out
