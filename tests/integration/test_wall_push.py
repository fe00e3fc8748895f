"""Deadlines driven by a clock; the wall's KPIs pushed by the worker (Redis copy + Socket.IO)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import socketio
from flask import Flask
from helpers import drain, make_token, wait_for

from dashboard.live.publisher import NAMESPACE, Publisher
from dashboard.models import Case
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.web.app import runtime_of
from dashboard.worker.loop import Worker


class Clock:
    """The worker's clock, moved by the test (the runtime's ``now``)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def last_pushed(rt: Runtime) -> dict[str, Any]:
    return json.loads(rt.redis.xrevrange(rt.keys.deltas, count=1)[0][1][b"d"])


def overdue_in_kpis(worker: Worker) -> int:
    summary = worker.push_kpis(force=True)
    assert summary is not None
    return int(summary["today"]["overdue"])


def test_each_stage_deadline_passes_by_the_clock_alone(
    runtime: Runtime, producer: Producer
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    clock = Clock(t0)
    runtime.now = clock  # type: ignore[method-assign]
    worker = Worker(runtime, None, consumer="clock")
    worker.prepare()

    def row() -> Case:
        with runtime.db.read() as session:
            case = session.get(Case, "SLA-1")
            assert case is not None
            return case

    def step(status: str, **extra: Any) -> None:
        producer.incident(id="SLA-1", status=status, ts=ms(clock.now), **extra)
        drain(worker)

    # Registered: dispatch within 60 s.
    step("registered", lat=29.37, lon=106.26, category="traffic", priority=3)
    assert row().deadline_at == t0 + timedelta(seconds=60)
    clock.advance(59)
    worker.sweep()
    assert not row().overdue and overdue_in_kpis(worker) == 0
    clock.advance(2)  # 61 s: no message, only the clock
    worker.sweep()
    assert row().overdue and overdue_in_kpis(worker) == 1
    assert [(c["id"], c["overdue"]) for c in last_pushed(runtime)["cases"]] == [("SLA-1", True)]
    # Dispatched (late): a new stage, a new deadline of 5 minutes; no longer overdue.
    step("dispatched", unit="P-1")
    assert not row().overdue and row().deadline_at == clock.now + timedelta(minutes=5)
    assert overdue_in_kpis(worker) == 0
    clock.advance(301)
    worker.sweep()
    assert row().overdue
    # On scene: the resolution deadline, 2 h after the report for traffic.
    step("on_scene")
    assert row().deadline_at == t0 + timedelta(hours=2) and not row().overdue
    clock.advance(2 * 3600)
    worker.sweep()
    assert row().overdue and overdue_in_kpis(worker) == 1
    # Resolved: verification within 24 h.
    step("resolved")
    assert row().deadline_at == clock.now + timedelta(hours=24) and not row().overdue
    # Closed: no deadline, never overdue however long we wait.
    step("closed")
    clock.advance(7 * 86400)
    worker.sweep()
    assert row().deadline_at is None and not row().overdue
    assert overdue_in_kpis(worker) == 0


def test_an_explicit_due_overrides_the_resolution_deadline(
    runtime: Runtime, producer: Producer
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    clock = Clock(t0)
    runtime.now = clock  # type: ignore[method-assign]
    worker = Worker(runtime, None, consumer="clock")
    worker.prepare()
    due = t0 + timedelta(minutes=20)
    producer.incident(id="SLA-2", status="on_scene", ts=ms(t0), lat=29.37, lon=106.26,
                      category="illegal_construction", due=ms(due))  # fmt: skip
    drain(worker)
    clock.advance(19 * 60)
    worker.sweep()
    assert overdue_in_kpis(worker) == 0
    clock.advance(61)
    worker.sweep()
    assert overdue_in_kpis(worker) == 1


# -- the KPIs' live path ------------------------------------------------------------------------
def test_the_worker_pushes_kpis_after_a_change_and_snapshots_carry_them(
    app: Flask, server_url: str
) -> None:
    rt = runtime_of(app)
    received: list[dict[str, Any]] = []
    client = socketio.Client(reconnection=False)
    client.on("kpis", received.append, namespace=NAMESPACE)
    client.connect(server_url, namespaces=[NAMESPACE], transports=["websocket"],
                   wait_timeout=10, auth={"token": make_token(rt)})  # fmt: skip
    try:
        worker = Worker(rt, Publisher(rt.redis_url, rt.keys), consumer="kpi-push")
        worker.prepare()
        producer = Producer(rt.redis, rt.settings)
        now = ms(datetime.now(UTC)) - 5000
        producer.incident(id="KP-1", status="reported", ts=now, lat=29.37, lon=106.26,
                          category="dispute")  # fmt: skip
        drain(worker)
        worker.housekeeping()  # the change marks the KPIs dirty: recomputed and pushed
        wait_for(lambda: received, message="a kpis event")
        summary = json.loads(received[-1]["k"])
        assert summary["today"]["reported"] == 1 and summary["by_category"] == {"dispute": 1}
        assert summary["yesterday"]["reported"] == 0
        assert len(summary["hourly"]["today"]) == 24
        # Nothing changed: no new push before the interval (and the next sweep tick).
        count = len(received)
        for name in ("grids", "sweep", "outbox", "clock"):
            worker.job(name).last = float("inf")  # keep the sweep tick out of this check
        worker.housekeeping()
        assert len(received) == count
        # A second worker within the interval leaves it to the first (one computation).
        other = Worker(rt, None, consumer="kpi-push-2")
        assert other.push_kpis() is None
        # The Redis copy is what a snapshot carries.
        snap = client.call("sync", {}, namespace=NAMESPACE, timeout=10)
        assert json.loads(snap["kpis"])["today"]["reported"] == 1
    finally:
        client.disconnect()
