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


def test_a_second_demo_on_the_same_data_dir_says_where_the_first_runs_and_stops(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = DemoProcess(data, "--no-simulator")
    try:
        first.wait_ready()
        second = DemoProcess(data, "--no-simulator")
        code = second.proc.wait(timeout=60)
        out = second.output()
        second.stop()
        assert code != 0
        assert "already running" in out and f"pid {first.proc.pid}" in out, out
        assert f"127.0.0.1:{first.port}" in out  # where the first one is
        assert "Traceback" not in out
        assert requests.get(f"{first.url}/healthz", timeout=5).ok  # the first is untouched
    finally:
        assert first.stop() == 0


def test_the_printed_kiosk_link_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = DemoProcess(data, "--no-simulator")
    try:
        first.wait_ready()
        token = first.wall_token
    finally:
        assert first.stop() == 0
    second = DemoProcess(data, "--no-simulator")
    try:
        second.wait_ready()
        assert second.wall_token == token  # the same link is printed again …
        response = requests.get(
            f"{second.url}/api/v1/cases", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert response.status_code == 200  # … and it still opens the wall
        assert (data / "kiosk_token").stat().st_mode & 0o077 == 0  # readable by its owner only
    finally:
        assert second.stop() == 0


def _cli(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LIANQIN_TZ": "Asia/Shanghai"},
    )


GRIDS = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(
    "args",
    [
        ("import", "cases", str(GRIDS / "nyc311-sample.csv"), "--format", "nyc311"),
        ("import", "grids", str(GRIDS / "district" / "grids.geojson")),
        ("simulate", "--history", "20", "--history-days", "2", "--ping-hours", "0"),
        ("users", "list"),
        ("tokens", "list"),
        ("users", "add", "lead", "--role", "lead", "--password-stdin"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_commands_that_need_the_schema_create_it_on_a_fresh_data_dir(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Issue 15: `lianqin import cases` into a fresh data dir crashed with "no such table:
    grids"; every command that needs the schema creates it (Alembic head) first."""
    result = _cli(tmp_path, *args, stdin="a-long-password-1\na-long-password-1\n")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert "schema created" in result.stderr
    again = _cli(tmp_path, "users", "list")  # at head now: nothing more to say
    assert again.returncode == 0 and "schema" not in again.stderr, again.stderr


def test_a_schema_that_cannot_be_created_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "lianqin.sqlite3").write_text("not a database")
    result = _cli(tmp_path, "users", "list")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "lianqin db upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_worker_creates_the_schema_before_starting(tmp_path: Path) -> None:
    """`worker` (like `serve`, which calls the same check) on a fresh data dir: the schema
    exists before it runs; it is stopped once the schema is there."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LIANQIN_SECRET_KEY": "x" * 32,
    }
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--data-dir", str(data), "worker"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: (data / "lianqin.sqlite3").exists() and _has_grids(data),
            timeout=60,
            message="the worker created the schema",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err


def _has_grids(data: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(data / "lianqin.sqlite3") as db:
            row = db.execute("select count(*) from sqlite_master where name='grids'").fetchone()
            return bool(row[0])
    except sqlite3.Error:
        return False
