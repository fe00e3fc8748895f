"""The lease on lq:incidents and its database fence: two Worker objects, real Redis + DB.

One worker at a time applies incidents (both share pings); the second takes over when the
first stops renewing and applies the first's pending entries, in order, before new ones;
a paused ex-holder's commit is refused by the fence and it acknowledges nothing it read;
a worker restarted under a new name loses nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import drain, wait_for
from sqlalchemy import select

from dashboard.models import Case, CaseEvent
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker.leases import lease_states, take_fence
from dashboard.worker.loop import Worker

GROUP = "lianqin"


def now_ms(offset_s: float = 0) -> int:
    return int((time.time() + offset_s) * 1000)


class Recorder:
    """Which streams a worker's batches held (wraps ``Worker.handle``)."""

    def __init__(self, worker: Worker) -> None:
        self.streams: list[set[str]] = []
        real = worker.handle

        def handle(batches: dict[str, Any], **kw: Any) -> Any:
            self.streams.append(set(batches))
            return real(batches, **kw)

        worker.handle = handle  # type: ignore[method-assign]

    def saw(self, stream: str) -> bool:
        return any(stream in s for s in self.streams)


def history(producer: Producer, case_id: str, t0: float) -> list[str]:
    """A case's messages: create, registered, dispatched, on_scene (ids in stream order)."""
    ids = [
        producer.incident(id=case_id, status="reported", ts=now_ms(t0), lat=29.37, lon=106.26,
                          category="dispute")
    ]  # fmt: skip
    for k, status in enumerate(("registered", "dispatched", "on_scene"), start=1):
        ids.append(producer.incident(id=case_id, status=status, ts=now_ms(t0 + k)))
    return ids


def statuses(rt: Runtime) -> dict[str, str]:
    with rt.db.read() as session:
        return {c.id: c.status for c in session.scalars(select(Case))}


def timeline_ids(rt: Runtime) -> list[str]:
    """Entry ids in the order they were applied (the timeline's insertion order)."""
    with rt.db.read() as session:
        return list(session.scalars(select(CaseEvent.entry_id).order_by(CaseEvent.id)))


def pending_of(rt: Runtime, consumer: str) -> int:
    summary: Any = rt.redis.xpending(rt.keys.incidents, GROUP)
    return sum(c["pending"] for c in summary["consumers"] if c["name"].decode() == consumer)


@pytest.fixture
def pair(runtime: Runtime) -> Iterator[tuple[Worker, Worker]]:
    a = Worker(runtime, None, consumer="wa")
    b = Worker(runtime, None, consumer="wb")
    a.prepare()
    b.prepare()
    yield a, b
    a.release_leases()
    b.release_leases()


def test_one_worker_applies_incidents_the_other_shares_the_pings(
    runtime: Runtime, producer: Producer, pair: tuple[Worker, Worker]
) -> None:
    a, b = pair
    seen_a, seen_b = Recorder(a), Recorder(b)
    for i in range(30):
        history(producer, f"HZ-{i}", -100 + i)
        producer.ping(unit=f"P-{i}", lat=29.37, lon=106.26, ts=now_ms(-5))
    a.settings = b.settings = runtime.settings.model_copy(update={"worker_batch": 5})
    for _ in range(60):  # the two step in turn, as two processes would interleave
        a.step()
        b.step()
        held = [w.leases[runtime.keys.incidents].held for w in (a, b)]
        assert held.count(True) <= 1
    assert a.leases[runtime.keys.incidents].held  # the first to tick took it and kept it
    assert seen_a.saw(runtime.keys.incidents) and not seen_b.saw(runtime.keys.incidents)
    assert seen_a.saw(runtime.keys.pings) and seen_b.saw(runtime.keys.pings)
    assert set(statuses(runtime).values()) == {"on_scene"}
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    (state,) = lease_states(runtime.redis, runtime.keys)
    assert state.holder == "wa" and state.epoch == 1 and state.ttl_ms is not None


def test_the_second_takes_over_and_applies_the_firsts_pending_entries_first(
    runtime: Runtime, producer: Producer, pair: tuple[Worker, Worker]
) -> None:
    a, b = pair
    first = history(producer, "HZ-A", -100)
    assert a.step() == 0 and a.leases[runtime.keys.incidents].held  # took it (nothing pending)
    # `a` reads the whole case and dies before applying it (its reply never committed).
    runtime.redis.xreadgroup(GROUP, "wa", {runtime.keys.incidents: ">"}, count=100)
    assert pending_of(runtime, "wa") == 4
    later = history(producer, "HZ-B", -50)
    b.step()
    assert not b.leases[runtime.keys.incidents].held  # `a`'s lease is still alive
    assert statuses(runtime) == {}
    # `a` stops renewing; after the TTL `b` takes over: `a`'s entries first, in order.
    wait_for(lambda: b.step() or b.leases[runtime.keys.incidents].held, timeout=10)
    drain(b)
    assert timeline_ids(runtime) == first + later
    assert statuses(runtime) == {"HZ-A": "on_scene", "HZ-B": "on_scene"}
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    assert runtime.redis.xpending(runtime.keys.incidents, GROUP)["pending"] == 0
    assert lease_states(runtime.redis, runtime.keys)[0].epoch == 2


def test_a_paused_holders_commit_is_refused_and_it_acknowledges_nothing(
    runtime: Runtime, producer: Producer, pair: tuple[Worker, Worker]
) -> None:
    a, b = pair
    ids = history(producer, "HZ-P", -100)
    paused, resume = threading.Event(), threading.Event()
    real_fence = a._fence

    def slow_fence(session: Any, stream: str) -> None:
        paused.set()  # read, parsed, about to commit: now a GC pause / SIGSTOP / lock wait
        resume.wait(30)
        real_fence(session, stream)

    a._fence = slow_fence  # type: ignore[method-assign]
    result: list[int] = []
    stepping = threading.Thread(target=lambda: result.append(a.step() + a.step()))
    stepping.start()
    assert paused.wait(10)
    assert pending_of(runtime, "wa") == 4
    # A successor fences the database (its first transaction on taking over) …
    with runtime.db.write() as session:
        take_fence(session, stream=runtime.keys.incidents, holder="successor", now=runtime.now())
    resume.set()  # … and the ex-holder wakes up and tries to commit.
    stepping.join(10)
    assert result == [0]
    assert statuses(runtime) == {} and timeline_ids(runtime) == []  # refused: no commit
    assert pending_of(runtime, "wa") == 4  # not acknowledged
    assert runtime.redis.xlen(runtime.keys.dead) == 0  # not dead-lettered
    assert runtime.redis.hget(runtime.keys.metrics, "ingested:incidents") is None
    assert not a.leases[runtime.keys.incidents].held  # it stopped applying incidents
    # It freed the lease on the way: the next worker takes over at once, in order.
    drain(b)
    assert timeline_ids(runtime) == ids
    assert statuses(runtime) == {"HZ-P": "on_scene"}
    assert pending_of(runtime, "wa") == 0
    a._fence = real_fence  # type: ignore[method-assign]
    a.step()  # `a` is now a follower: it reads no incidents
    assert not a.leases[runtime.keys.incidents].held


def test_a_worker_restarted_under_a_new_name_loses_nothing(
    runtime: Runtime, producer: Producer
) -> None:
    """The default name is host-pid: after a crash the new process is another consumer, and
    the dead one's pending entries used to wait for ``claim_idle_ms`` while the new one
    applied later entries first (their case did not exist yet: dead-lettered)."""
    slow = runtime.settings.model_copy(update={"claim_idle_ms": 600_000})
    before = Worker(runtime, None, consumer="host-100")
    before.settings = slow
    before.prepare()
    first = history(producer, "HZ-R", -100)
    before.step()
    runtime.redis.xreadgroup(GROUP, "host-100", {runtime.keys.incidents: ">"}, count=2)
    # SIGKILL: no release, two entries pending on the dead consumer, two never delivered.
    after = Worker(runtime, None, consumer="host-200")
    after.settings = slow
    producer.incident(id="HZ-R", status="resolved", ts=now_ms(-90))
    drain(after)
    assert timeline_ids(runtime)[:4] == first
    assert statuses(runtime) == {"HZ-R": "resolved"}
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    assert runtime.redis.xpending(runtime.keys.incidents, GROUP)["pending"] == 0
    after.release_leases()


def test_a_graceful_stop_hands_the_lease_over_at_once(runtime: Runtime, producer: Producer) -> None:
    slow = runtime.settings.model_copy(update={"lease_ms": 600_000})
    a = Worker(runtime, None, consumer="wa")
    a.settings = slow
    a.leases[runtime.keys.incidents].ttl_ms = slow.lease_ms
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop,), daemon=True)
    thread.start()
    history(producer, "HZ-G", -100)
    wait_for(lambda: statuses(runtime).get("HZ-G") == "on_scene", timeout=20)
    stop.set()
    thread.join(10)
    assert lease_states(runtime.redis, runtime.keys)[0].holder is None  # released (SIGTERM)
    b = Worker(runtime, None, consumer="wb")
    b.prepare()
    producer.incident(id="HZ-G", status="resolved", ts=now_ms(-10))
    assert drain(b) == 1  # no 10-minute wait for the TTL
    assert statuses(runtime) == {"HZ-G": "resolved"}
    b.release_leases()
