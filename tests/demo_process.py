"""Run `lianqin demo` as a real process group for the CLI and browser tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line mentions ``text`` (a data dir): to prove nothing is left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DemoProcess:
    """`lianqin --data-dir D demo --port P … --no-history` (or `demo … --data-dir D` with
    ``data_dir_after``; with the demo's history when ``history`` or ``--history-days`` is
    given), started and stopped like a user would."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        sigint_ignored: bool = False,
        data_dir_after: bool = False,
        history: bool = False,
    ) -> None:
        # The tests count cases exactly: no history unless asked for (or --history-days given).
        if not history and "--history-days" not in args:
            args = (*args, "--no-history")
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env["PYTHONUNBUFFERED"] = "1"
        self.log = (data_dir.parent / f"demo-{self.port}.log").open("w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dashboard.cli",
                *([] if data_dir_after else ["--data-dir", str(data_dir)]),
                "demo",
                "--port",
                str(self.port),
                *args,
                *(["--data-dir", str(data_dir)] if data_dir_after else []),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            # As a script's background job starts it (nohup, `&`): SIGINT ignored.
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )

    @property
    def wall_token(self) -> str:
        """The kiosk token in the wall URL the demo prints."""
        found = re.search(r"/wall\?token=(\S+)", self.output())
        if not found:
            raise RuntimeError(f"no kiosk URL in the demo's output:\n{self.output()}")
        return found.group(1)

    def password(self, username: str) -> str:
        """A demo user's password, from the table the demo prints when it creates them."""
        found = re.search(rf"^\s+{re.escape(username)}\s+\w+\s+(\S+)\s*$", self.output(), re.M)
        if not found:
            raise RuntimeError(f"no password for {username} in the demo's output")
        return found.group(1)

    @property
    def redis_url(self) -> str:
        return f"unix://{self.data_dir / 'redis' / 'redis.sock'}"

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if (
                    requests.get(f"{self.url}/healthz", timeout=1).ok
                    and "running:" in self.output()
                ):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"demo not ready in {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise
        self.log.close()
        return self.proc.returncode
