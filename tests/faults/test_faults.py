"""Faults injected into real processes: a worker SIGKILLed mid-batch, Redis killed and
restarted under load, the database locked for a while, SIGTERM for every process.

Each test starts `lianqin worker` / `lianqin serve` as child processes (the same
command an operator runs), injects the fault, and checks the end state: N sent, N
applied, nothing acknowledged lost, no duplicates. None asserts a speed.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import socketio
from fault_procs import Proc, env_for, free_port, start
from helpers import make_token, wait_for
from sqlalchemy import func, select

from dashboard.config import Settings
from dashboard.live.publisher import NAMESPACE
from dashboard.models import Case, CaseEvent
from dashboard.redis_server import EmbeddedRedis, redis_client
from dashboard.runtime import Runtime
from dashboard.streams import Producer


def counts(rt: Runtime) -> tuple[int, int]:
    with rt.db.read() as session:
        cases = session.scalar(select(func.count()).select_from(Case)) or 0
        events = session.scalar(select(func.count()).select_from(CaseEvent)) or 0
    return int(cases), int(events)


def new_case(producer: Producer, case_id: str) -> str:
    return producer.incident(
        id=case_id, status="reported", ts=int(time.time() * 1000) - 1000,
        lat=29.37, lon=106.26, category="dispute",
    )  # fmt: skip


def pending(client: redis.Redis, stream: str, group: str = "lianqin") -> int:
    try:
        return int(client.xpending(stream, group)["pending"])
    except redis.ResponseError:
        return 0


# -- a worker killed mid-batch --------------------------------------------------------------------
def test_a_worker_killed_mid_batch_is_reclaimed_and_every_entry_applied_once(
    runtime: Runtime, producer: Producer, procs: list[Proc], tmp_path: Path
) -> None:
    n = 3000
    env = env_for(runtime.settings, LIANQIN_WORKER_BATCH="100")
    pipe = runtime.redis.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(runtime.keys.incidents, Producer.fields({
            "id": f"HZ-K{i:05d}", "status": "reported", "ts": int(time.time() * 1000) - 1000,
            "lat": 29.37, "lon": 106.26, "category": "dispute"}))  # fmt: skip
    pipe.execute()
    victim = start(procs, tmp_path, "victim", ["worker", "--name", "victim"], env)
    # Kill it while it holds entries it has read but not acknowledged.
    wait_for(
        lambda: counts(runtime)[0] >= 200 and pending(runtime.redis, runtime.keys.incidents) > 0,
        timeout=60, interval=0.005, message="the victim is mid-way",
    )  # fmt: skip
    victim.signal(signal.SIGKILL)
    victim.wait()
    left = pending(runtime.redis, runtime.keys.incidents)
    assert counts(runtime)[0] < n
    start(procs, tmp_path, "rescuer", ["worker", "--name", "rescuer"], env)
    wait_for(lambda: counts(runtime) == (n, n), timeout=120, message=f"{n} cases, {n} events")
    wait_for(lambda: pending(runtime.redis, runtime.keys.incidents) == 0, timeout=30)
    assert counts(runtime) == (n, n)  # no duplicates
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    if left:
        assert "claimed" in procs[-1].output()


# -- Redis killed and restarted under load ---------------------------------------------------------
def test_redis_restarted_under_load_loses_nothing_acknowledged(
    settings: Settings, procs: list[Proc], tmp_path: Path
) -> None:
    embedded = EmbeddedRedis(tmp_path / "own-redis")
    url = embedded.start()
    rt = Runtime.open(settings, redis_url=url)
    port = free_port()
    env = env_for(settings, redis_url=url, LIANQIN_PORT=str(port))
    try:
        start(procs, tmp_path, "worker", ["worker", "--name", "w1"], env)
        web = start(procs, tmp_path, "web", ["serve"], env)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(f"{base}/readyz"), timeout=60, message="web ready")

        acked: list[str] = []
        stop = threading.Event()

        def produce() -> None:
            client = redis_client(url, timeout=2.0)
            producer = Producer(client, settings)
            i = 0
            while not stop.is_set():
                case_id = f"HZ-R{i:05d}"
                try:
                    new_case(producer, case_id)
                    acked.append(case_id)  # Redis acknowledged the XADD
                    i += 1
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    time.sleep(0.1)  # a producer retries; the id is sent again
                time.sleep(0.005)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        wait_for(lambda: len(acked) > 100, timeout=30)
        # Kill Redis outright (no SHUTDOWN), then start it again on the same data dir.
        assert embedded.process is not None
        embedded.process.kill()
        embedded.process.wait()
        wait_for(lambda: not _ok(f"{base}/readyz"), timeout=30, message="readyz sees the outage")
        time.sleep(1.0)
        embedded = EmbeddedRedis(tmp_path / "own-redis")
        assert embedded.start() == url
        wait_for(lambda: len(acked) > 300, timeout=60, message="producing again")
        stop.set()
        thread.join(timeout=10)
        sent = set(acked)
        wait_for(lambda: counts(rt)[0] >= len(sent), timeout=120, message="all applied")
        with rt.db.read() as session:
            ids = set(session.scalars(select(Case.id)))
        assert sent <= ids  # nothing acknowledged by Redis is lost
        wait_for(lambda: _ok(f"{base}/readyz"), timeout=60, message="web ready again")

        # The web process's Socket.IO queue listener is back: a new entry reaches a browser.
        token = make_token(rt)
        client = socketio.Client(reconnection=False)
        deltas: list[Any] = []
        client.on("delta", deltas.append, namespace=NAMESPACE)
        client.connect(base, namespaces=[NAMESPACE], transports=["websocket"],
                       auth={"token": token}, wait_timeout=10)  # fmt: skip
        try:
            producer = Producer(rt.redis, settings)

            def arrived() -> bool:
                new_case(producer, "HZ-AFTER")
                return any("HZ-AFTER" in x["d"] for x in deltas)

            wait_for(arrived, timeout=30, interval=0.5, message="a delta after the restart")
        finally:
            client.disconnect()
        assert web.proc.poll() is None
    finally:
        for p in procs:
            p.stop()
        procs.clear()
        rt.close()
        embedded.stop()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


# -- the database unavailable for a while ----------------------------------------------------
def test_a_locked_database_pauses_acks_flags_degraded_then_catches_up(
    runtime: Runtime, producer: Producer, procs: list[Proc], tmp_path: Path
) -> None:
    url = runtime.settings.effective_database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("locks the SQLite file (the PostgreSQL outage is the server variant)")
    from werkzeug.serving import make_server

    from dashboard.web.app import create_app, runtime_of

    app = create_app(runtime.settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    ticks: list[dict[str, Any]] = []
    client = socketio.Client(reconnection=False)
    client.on("tick", ticks.append, namespace=NAMESPACE)
    client.connect(f"http://127.0.0.1:{server.server_port}", namespaces=[NAMESPACE],
                   transports=["websocket"], auth={"token": make_token(runtime)},
                   wait_timeout=10)  # fmt: skip
    env = env_for(runtime.settings, LIANQIN_SQLITE_BUSY_S="0.3", LIANQIN_SWEEP_INTERVAL_S="0.5")
    lock = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
    try:
        start(procs, tmp_path, "worker", ["worker", "--name", "dbw"], env)
        for i in range(10):
            new_case(producer, f"HZ-D{i}")
        wait_for(lambda: counts(runtime)[0] == 10, timeout=60)
        lock.execute("BEGIN EXCLUSIVE")  # no writer gets in: the database is "down"
        for i in range(10, 60):
            new_case(producer, f"HZ-D{i}")
        wait_for(lambda: any(t.get("degraded") == "database" for t in ticks), timeout=90,
                 message="a degraded tick")  # fmt: skip
        # Read but not acknowledged while the database refuses writes.
        wait_for(lambda: pending(runtime.redis, runtime.keys.incidents) > 0, timeout=90)
        assert counts(runtime)[0] == 10
        lock.execute("ROLLBACK")
        wait_for(lambda: counts(runtime) == (60, 60), timeout=90, message="caught up")
        wait_for(lambda: pending(runtime.redis, runtime.keys.incidents) == 0, timeout=90)
        n = len(ticks)
        wait_for(lambda: len(ticks) > n + 1 and "degraded" not in ticks[-1], timeout=90,
                 message="healthy ticks again")  # fmt: skip
        assert runtime.redis.xlen(runtime.keys.dead) == 0
    finally:
        lock.close()
        client.disconnect()
        server.shutdown()
        serving.join(timeout=5)
        runtime_of(app).close()


# -- graceful SIGTERM ----------------------------------------------------------------------------
def test_sigterm_finishes_the_batch_acks_and_exits(
    runtime: Runtime, producer: Producer, procs: list[Proc], tmp_path: Path
) -> None:
    n = 3000
    pipe = runtime.redis.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(runtime.keys.incidents, Producer.fields({
            "id": f"HZ-T{i:05d}", "status": "reported", "ts": int(time.time() * 1000) - 1000,
            "lat": 29.37, "lon": 106.26, "category": "dispute"}))  # fmt: skip
    pipe.execute()
    port = free_port()
    env = env_for(runtime.settings, LIANQIN_WORKER_BATCH="200", LIANQIN_PORT=str(port),
                  LIANQIN_CLAIM_IDLE_MS="600000")  # fmt: skip
    worker = start(procs, tmp_path, "worker", ["worker", "--name", "term"], env)
    web = start(procs, tmp_path, "web", ["serve"], env)
    sim = start(procs, tmp_path, "sim", ["simulate", "--speed", "5", "--rate", "0"], env)
    wait_for(lambda: counts(runtime)[0] >= 200, timeout=60)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    # Whatever it read, it applied and acknowledged: nothing left pending on its name.
    assert pending(runtime.redis, runtime.keys.incidents) == 0
    applied = counts(runtime)[0]
    metric = int(runtime.redis.hget(runtime.keys.metrics, "ingested:incidents") or 0)
    assert applied == metric  # every applied entry was acknowledged and counted
    assert "stopped" in worker.output()
    wait_for(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), timeout=60)
    web.signal(signal.SIGTERM)
    assert web.wait(timeout=30) == 0
    sim.signal(signal.SIGTERM)
    assert sim.wait(timeout=30) == 0
    # A fresh worker picks up exactly the rest.
    start(procs, tmp_path, "worker2", ["worker", "--name", "term2"], env)
    wait_for(lambda: counts(runtime)[0] >= n, timeout=120)
    assert counts(runtime)[0] - counts(runtime)[1] <= 0
