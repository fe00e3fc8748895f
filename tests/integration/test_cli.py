"""`lianqin demo` as a user runs it: one command starts everything, Ctrl-C stops all of it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from demo_process import DemoProcess, processes_mentioning
from helpers import wait_for


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_starts_everything_and_stops_leaving_nothing(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "data"
    demo = DemoProcess(data, "--warm", "20", "--speed", "30")
    try:
        demo.wait_ready()
        assert f"{demo.url}/wall" in demo.output()  # it prints the URL
        assert (data / "lianqin.sqlite3").exists()
        assert (data / "redis" / "appendonly.aof").exists()  # the embedded Redis persists
        assert processes_mentioning(str(data))  # redis-server, worker and simulator run
        # The simulator feeds the streams and the worker applies them.
        auth = {"Authorization": f"Bearer {demo.wall_token}"}

        def case_count() -> int:
            return len(requests.get(f"{demo.url}/api/v1/cases", headers=auth, timeout=5).json())

        wait_for(lambda: case_count() >= 10, timeout=30, message="the warm start's cases")
        units = requests.get(f"{demo.url}/api/v1/units", headers=auth, timeout=5).json()
        assert len(units) >= 150  # the demo district's units
        wait_for(
            lambda: any(
                u["online"] for u in requests.get(f"{demo.url}/api/v1/units", headers=auth).json()
            )
        )
    finally:
        code = demo.stop(sig)
    assert code == 0, demo.output()[-2000:]
    wait_for(
        lambda: not processes_mentioning(str(data)), timeout=15, message="no process left behind"
    )


def test_serve_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dashboard.cli",
            "--data-dir",
            str(tmp_path),
            "serve",
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "LIANQIN_SECRET_KEY" in result.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--data-dir", str(tmp_path), "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lianqin.sqlite3").exists()


def test_ctrl_c_stops_the_demo_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell that runs a program in the background leaves SIGINT ignored, and Python then
    never raises KeyboardInterrupt: the demo sets its own handler, so SIGINT still stops it."""
    demo = DemoProcess(tmp_path / "data", "--no-simulator", sigint_ignored=True)
    try:
        demo.wait_ready()
    finally:
        code = demo.stop(signal.SIGINT, timeout=20)
    assert code == 0, demo.output()[-2000:]
