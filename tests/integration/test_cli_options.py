"""The command line's shared options (--data-dir, --log-level) go before the command or after
it: `lianqin demo --data-dir X` used to fail with "No such option"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from demo_process import DemoProcess, free_port
from helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def lianqin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )


def test_demo_takes_the_data_dir_after_the_command(tmp_path: Path) -> None:
    data = tmp_path / "after"
    demo = DemoProcess(data, "--no-simulator", data_dir_after=True)
    try:
        demo.wait_ready()
        assert (data / "lianqin.sqlite3").exists()
        assert str(data) in demo.output()
    finally:
        assert demo.stop() == 0, demo.output()[-2000:]


def test_serve_takes_the_data_dir_after_the_command(tmp_path: Path) -> None:
    data = tmp_path / "served"
    assert lianqin("db", "upgrade", "--data-dir", str(data)).returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["LIANQIN_SECRET_KEY"] = "x" * 64
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port),
         "--data-dir", str(data), "--log-level", "WARNING"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def healthy() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=60, message="serve --data-dir X answers")
        assert (data / "redis" / "redis.sock").exists()  # its embedded Redis lives in X
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_import_takes_the_options_after_the_command_and_both_places_work(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    sample = str(ROOT / "tests" / "data" / "boston311-100.csv")
    assert lianqin("--data-dir", str(before), "db", "upgrade").returncode == 0
    assert lianqin("db", "upgrade", "--data-dir", str(after)).returncode == 0
    first = lianqin("--data-dir", str(before), "import", "cases", sample, "--format", "boston311")
    assert first.returncode == 0, first.stderr
    second = lianqin(
        "import", "cases", sample, "--format", "boston311", "--data-dir", str(after),
        "--log-level", "WARNING",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "100 cases loaded" in first.stdout and "100 cases loaded" in second.stdout
    # Given in both places, the one after the command wins.
    again = lianqin(
        "--data-dir", str(tmp_path / "nowhere"), "import", "cases", sample, "--format",
        "boston311", "--data-dir", str(after),
    )  # fmt: skip
    assert again.returncode == 0 and "0 cases loaded" in again.stdout, again.stdout
    assert not (tmp_path / "nowhere").exists()
