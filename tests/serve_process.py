"""`lianqin serve` on a data directory of its own, as a center runs it after importing its
data (not the demo): the CLI commands run first, then the server; stopped like a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from demo_process import free_port


def lianqin_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(PYTHONUNBUFFERED="1", LIANQIN_DATA_DIR=str(data_dir))
    env.setdefault("LIANQIN_SECRET_KEY", "s" * 64)
    env.update(extra)
    return env


def run_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """One `lianqin` command on ``data_dir``; its stdout (a failure raises with its stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or lianqin_env(data_dir),
    )
    if result.returncode != 0 or "Traceback" in result.stderr:
        raise RuntimeError(f"lianqin {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


class ServeProcess:
    """`lianqin serve` (web only: nothing ingests; the imported data is in the database) plus
    a viewer token for the wall's kiosk URL."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = lianqin_env(data_dir, **env)
        self.token = run_cli(data_dir, "tokens", "create", "--name", "wall", env=self.env).strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir.parent / f"serve-{self.port}.log").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> requests.Response:
        answer = requests.get(f"{self.url}{path}", headers=self.auth, timeout=10)
        answer.raise_for_status()
        return answer

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"serve not ready in {timeout} s:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        return self.proc.returncode
