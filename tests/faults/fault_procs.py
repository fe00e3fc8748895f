"""Real `lianqin` child processes for the fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from dashboard.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """`python -m dashboard.cli …` as a child, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", *args],
            env=env, stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._out.close()


def env_for(settings: Settings, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANQIN_")}
    env.update(
        {
            "REDIS_URL": redis_url or str(settings.redis_url),
            "DATABASE_URL": settings.effective_database_url,
            "LIANQIN_STREAM_PREFIX": settings.stream_prefix,
            "LIANQIN_DATA_DIR": str(settings.data_dir),
            "LIANQIN_SECRET_KEY": "faults-" + settings.stream_prefix,
            "LIANQIN_CLAIM_IDLE_MS": "1000",
            "LIANQIN_WORKER_BLOCK_MS": "100",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def start(
    procs: list[Proc], tmp_path: Path, name: str, args: list[str], env: dict[str, str]
) -> Proc:
    p = Proc(args, env, tmp_path / f"{name}.log")
    procs.append(p)
    return p
