"""Scale-out with real processes: workers in one consumer group, web instances sharing
Socket.IO's Redis message queue, PostgreSQL migrated by Alembic, the documented gunicorn
command. Each test starts its own processes and stops them; none asserts a speed.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import socketio
from helpers import wait_for
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from dashboard.config import Settings
from dashboard.db import make_database
from dashboard.live.publisher import NAMESPACE
from dashboard.models import CaseEvent, UnitPing
from dashboard.redis_server import redis_client
from dashboard.services.accounts import create_token

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A child process logging to a file; SIGTERM then SIGKILL on stop."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._out.close()


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANQIN_")}
    env.update(
        {
            "REDIS_URL": str(settings.redis_url),
            "DATABASE_URL": str(settings.database_url),
            "LIANQIN_STREAM_PREFIX": settings.stream_prefix,
            "LIANQIN_DATA_DIR": str(settings.data_dir),
            "LIANQIN_SECRET_KEY": "scale-test-" + settings.stream_prefix,
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def _metric(client: redis.Redis, prefix: str, name: str) -> int:
    return int(client.hget(f"{prefix}:metrics", name) or 0)


def test_two_workers_in_one_group_share_the_load_and_apply_each_entry_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Two `lianqin worker` processes drain one backlog: both take part, none applies twice."""
    client = redis_client(str(settings.redis_url))
    prefix = settings.stream_prefix
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    n_pings, n_cases = 4000, 400
    for i in range(n_pings):
        pipe.xadd(
            f"{prefix}:pings",
            {
                "unit": f"U-{i % 200}",
                "lat": "29.03",
                "lon": "106.65",
                "ts": str(now_ms - 600_000 + i),
            },
        )
    for i in range(n_cases):
        pipe.xadd(
            f"{prefix}:incidents",
            {
                "id": f"S-{i}",
                "status": "reported",
                "ts": str(now_ms - 60_000),
                "lat": "29.03",
                "lon": "106.65",
                "category": "noise",
            },
        )
    pipe.execute()
    # Small batches, so that the backlog takes many reads and both workers get a share.
    env = _env(settings, LIANQIN_WORKER_BATCH="50")
    workers = [
        Process(
            [sys.executable, "-m", "dashboard.cli", "worker", "--name", name],
            env,
            tmp_path / f"{name}.log",
        )
        for name in ("wa", "wb")
    ]
    try:
        wait_for(
            lambda: (
                _metric(client, prefix, "ingested:pings") >= n_pings
                and _metric(client, prefix, "ingested:incidents") >= n_cases
            ),
            timeout=90,
            interval=0.2,
            message="the two workers drain the backlog",
        )
        time.sleep(1.0)  # would a second application show up? (it must not)
    finally:
        for w in workers:
            w.stop()
    assert _metric(client, prefix, "ingested:pings") == n_pings
    assert _metric(client, prefix, "ingested:incidents") == n_cases
    assert not [k for k in client.hkeys(f"{prefix}:metrics") if k.startswith(b"dead:")]
    # Each worker's share, as the workers counted it in the MULTI that acknowledged the entries.
    shares = {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:metrics:consumers").items()}
    assert set(shares) == {"wa", "wb"}, shares
    assert shares["wa"] > 0 and shares["wb"] > 0, shares
    assert shares["wa"] + shares["wb"] == n_pings + n_cases, shares  # each entry once
    database = make_database(settings)
    try:
        with database.read() as session:
            assert session.scalar(select(func.count()).select_from(UnitPing)) == n_pings
            assert session.scalar(select(func.count()).select_from(CaseEvent)) == n_cases
    finally:
        database.dispose()
    pending: Any = client.xpending(f"{prefix}:pings", settings.consumer_group)
    assert pending["pending"] == 0
    client.close()


# -- several web instances, PostgreSQL, gunicorn ------------------------------------------------
def _postgres_server() -> str | None:
    # TEST_DATABASE_URL only, like the other server tests: .ci/run's server pass runs this
    # once, instead of the embedded pass finding 127.0.0.1:5432 and running it twice.
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    try:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception:
        return None
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no schema: the test migrates it)."""
    server = _postgres_server()
    if server is None:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    admin_url = make_url(server.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"lianqin_scale_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            admin_url.set(database=name)
            .render_as_string(hide_password=False)
            .replace("postgresql+psycopg://", "postgresql://", 1)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Listener:
    """A real python-socketio client on one instance, collecting deltas."""

    def __init__(self, url: str, token: str) -> None:
        self.deltas: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("delta", self._on_delta, namespace=NAMESPACE)
        self.sio.connect(
            url,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            wait_timeout=15,
            auth={"token": token},
        )
        self.first = self.sio.call(
            "sync", {"cursor": None, "seq": None}, namespace=NAMESPACE, timeout=15
        )

    def _on_delta(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.deltas.append(data)

    def cases_seen(self) -> set[str]:
        import json

        with self.lock:
            return {c["id"] for d in self.deltas for c in json.loads(d["d"])["cases"]}

    def close(self) -> None:
        self.sio.disconnect()


def test_instances_share_live_updates_on_postgresql_under_gunicorn(
    settings: Settings, postgres_url: str, tmp_path: Path
) -> None:
    """Two gunicorn instances (the README's command) + a worker on a PostgreSQL database that
    `lianqin db upgrade` migrated: a client on instance B gets what the worker applied, a
    client on A too, and both instances serve the wall."""
    pg = settings.model_copy(update={"database_url": postgres_url})
    env = _env(pg)
    upgrade = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    database = make_database(pg)
    with database.write() as session:
        assert session.execute(text("select version_num from alembic_version")).scalar_one()
        _, token = create_token(session, name="scale-test", role="viewer")
    database.dispose()

    ports = [_free_port(), _free_port()]
    procs = [
        Process(
            [
                GUNICORN,
                "-w",
                "1",
                "--threads",
                "100",
                "-b",
                f"127.0.0.1:{port}",
                "dashboard.wsgi:app",
            ],
            env,
            tmp_path / f"web-{port}.log",
        )
        for port in ports
    ]
    procs.append(
        Process(
            [sys.executable, "-m", "dashboard.cli", "worker", "--name", "scale-w"],
            env,
            tmp_path / "worker.log",
        )
    )
    listeners: list[Listener] = []
    try:
        for port, proc in zip(ports, procs, strict=False):
            wait_for(
                lambda port=port: _healthy(port),
                timeout=45,
                interval=0.3,
                message=f"gunicorn on {port} answers\n{proc.output()}",
            )
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        for url in (a, b):
            page = requests.get(f"{url}/wall", params={"token": token}, timeout=15)
            assert page.status_code == 200 and "_dash-config" in page.text
        listeners = [Listener(b, token), Listener(a, token)]
        assert listeners[0].first["mode"] == "snapshot"
        client = redis_client(str(pg.redis_url))
        # One snapshot for both instances: built by B, handed out by A, served by either.
        first = listeners[0].first
        assert listeners[1].first["url"] == first["url"]
        assert _metric(client, pg.stream_prefix, "snapshot:builds") == 1
        for url in (a, b):
            got = requests.get(url + first["url"], timeout=15,
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert got.status_code == 200 and got.json()["seq"] == first["seq"]
        client.xadd(
            f"{pg.stream_prefix}:incidents",
            {
                "id": "MQ-1",
                "status": "reported",
                "ts": str(int(time.time() * 1000)),
                "lat": "29.03",
                "lon": "106.65",
                "category": "traffic",
            },
        )
        client.close()
        for listener in listeners:
            wait_for(
                lambda listener=listener: "MQ-1" in listener.cases_seen(),
                timeout=20,
                message="the delta reaches both instances' clients",
            )
        engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            assert conn.execute(
                text("select status from cases where id = 'MQ-1'")
            ).scalar_one() == ("reported")
        engine.dispose()
    finally:
        for listener in listeners:
            listener.close()
        for proc in procs:
            proc.stop()


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
    except requests.RequestException:
        return False
