"""Per-case order with several `lianqin worker` processes killed at random (issue 11).

A backlog of full case histories (create → … → closed, with rework and cancellations),
interleaved across cases as a center's stream interleaves them, is drained by 2 and
then 4 real worker processes while more is produced; workers are SIGKILLed at random
moments and restarted, some under their old name and some with none (a new default
name, as after a host restart). At the end every case must be in the state its ordered
history says, with nothing dead-lettered, nothing pending, and every entry exactly once
in the timeline. Runs on the session's database: SQLite by default, PostgreSQL with
TEST_DATABASE_URL (.ci/run runs this file on the servers too). None asserts a speed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import redis
from fault_procs import Proc, env_for, start
from helpers import wait_for
from sqlalchemy import func, select

from bench.histories import History, stream_of
from dashboard.models import Case, CaseEvent, UnitPing
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.web.ops import group_states
from dashboard.worker.leases import lease_states

NODE = socket.gethostname()
SEED = int(os.environ.get("LIANQIN_TEST_SEED", "0")) or random.randrange(1, 10**6)


def _xadd(client: redis.Redis, stream: str, entries: list[dict[str, str]]) -> None:
    pipe = client.pipeline(transaction=False)
    for fields in entries:
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    pipe.execute()


def _settled(rt: Runtime, n_events: int, n_pings: int) -> bool:
    """Everything delivered, nothing pending, and every entry has an outcome."""
    states = group_states(rt, cap=1_000_000)
    if any(g.lag or g.pending for g in states) or not all(g.exists for g in states):
        return False
    with rt.db.read() as session:
        events = session.scalar(select(func.count()).select_from(CaseEvent)) or 0
        tracks = session.scalar(select(func.count()).select_from(UnitPing)) or 0
    dead = rt.redis.xlen(rt.keys.dead)
    return events + dead >= n_events and tracks + dead >= n_pings


def _differences(rt: Runtime, histories: list[History]) -> list[str]:
    columns = [
        "status", "rework_count", "unit_id", "reported_at", "registered_at", "dispatched_at",
        "on_scene_at", "resolved_at", "closed_at", "cancelled_at",
    ]  # fmt: skip
    with rt.db.read() as session:
        rows = {c.id: c for c in session.scalars(select(Case))}
        out = []
        for h in histories:
            case = rows.get(h.case_id)
            if case is None:
                out.append(f"{h.case_id}: missing")
                continue
            want = h.expected()
            got = {name: getattr(case, name) for name in columns}
            diff = {k: (got[k], want[k]) for k in columns if got[k] != want[k]}
            if diff:
                out.append(f"{h.case_id} {h.statuses}: {diff}")
    return out


def _holder(rt: Runtime) -> str | None:
    return lease_states(rt.redis, rt.keys)[0].holder


def _pending(rt: Runtime) -> int:
    try:
        return int(rt.redis.xpending(rt.keys.incidents, rt.settings.consumer_group)["pending"])
    except redis.ResponseError:  # no group yet: no worker has started
        return 0


def _name(p: Proc) -> str:
    """The consumer name of a worker process: its --name, or the default host-pid."""
    args = p.proc.args
    assert isinstance(args, list)
    return str(args[args.index("--name") + 1]) if "--name" in args else f"{NODE}-{p.proc.pid}"


class Chaos:
    """Worker processes in slots; kills a random one with SIGKILL and restarts it."""

    def __init__(
        self, procs: list[Proc], tmp_path: Path, env: dict[str, str], rng: random.Random
    ) -> None:
        self.procs, self.tmp_path, self.env, self.rng = procs, tmp_path, env, rng
        self.slots: dict[int, Proc] = {}
        self.starts = 0
        self.kills = 0
        self.unnamed = 0

    def spawn(self, slot: int) -> None:
        self.starts += 1
        args = ["worker"]
        if self.rng.random() < 0.5:
            args += ["--name", f"w{slot}"]  # restarted under its old name …
        else:
            self.unnamed += 1  # … or under a new default name (host-pid)
        self.slots[slot] = start(
            self.procs, self.tmp_path, f"w{slot}-{self.starts}", args, self.env
        )

    def kill_one(self, rt: Runtime) -> None:
        """SIGKILL a random worker, or every other time the lease holder while it has
        incidents read but not acknowledged (its successor must apply them first)."""
        slot = self.rng.choice(sorted(self.slots))
        if self.kills % 2 == 0:
            with contextlib.suppress(AssertionError):  # idle: kill the holder all the same
                wait_for(lambda: _pending(rt) > 0, timeout=3, interval=0.002)
            holder = _holder(rt)
            slot = next((k for k, p in self.slots.items() if _name(p) == holder), slot)
        victim = self.slots[slot]
        victim.signal(signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.spawn(slot)


def test_two_then_four_workers_killed_at_random_keep_every_case_in_order(
    runtime: Runtime, procs: list[Proc], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    now_ms = int(time.time() * 1000)
    histories, messages = stream_of(rng, 240, now_ms=now_ms)
    pings = [
        {"unit": f"P-{i % 60:03d}", "lat": "29.03", "lon": "106.65", "ts": str(now_ms - 90_000 + i)}
        for i in range(1200)
    ]
    backlog = len(messages) * 2 // 3
    _xadd(runtime.redis, runtime.keys.incidents, messages[:backlog])
    _xadd(runtime.redis, runtime.keys.pings, pings[:600])
    # Small batches: many reads, so that workers interleave and kills land mid-batch.
    env = env_for(
        runtime.settings, LIANQIN_WORKER_BATCH="20", LIANQIN_LEASE_MS="1000",
        LIANQIN_CLAIM_IDLE_MS="1000",
    )  # fmt: skip
    chaos = Chaos(procs, tmp_path, env, rng)

    done = threading.Event()

    def produce() -> None:
        client = Producer(runtime.redis, runtime.settings).client
        rest, more = messages[backlog:], pings[600:]
        while rest or more:
            _xadd(client, runtime.keys.incidents, rest[:15])
            _xadd(client, runtime.keys.pings, more[:40])
            rest, more = rest[15:], more[40:]
            time.sleep(0.05)
        done.set()

    producer = threading.Thread(target=produce, daemon=True)
    try:
        for slot in range(2):
            chaos.spawn(slot)
        producer.start()
        for workers, kills in ((2, 4), (4, 6)):
            for slot in range(len(chaos.slots), workers):
                chaos.spawn(slot)
            for _ in range(kills):
                time.sleep(rng.uniform(0.3, 1.5))
                chaos.kill_one(runtime)
        wait_for(done.is_set, timeout=120, message="the producer finished")
        wait_for(
            lambda: _settled(runtime, len(messages), len(pings)), timeout=180, interval=0.5,
            message=f"every entry handled (seed {SEED})",
        )  # fmt: skip
    finally:
        for p in procs:
            p.stop()
    report: dict[str, Any] = {
        "seed": SEED, "kills": chaos.kills, "unnamed starts": chaos.unnamed,
        "dead letters": runtime.redis.xlen(runtime.keys.dead),
    }  # fmt: skip
    dead = runtime.redis.xrange(runtime.keys.dead, count=5)
    assert report["dead letters"] == 0, (report, dead)
    wrong = _differences(runtime, histories)
    assert not wrong, (report, len(wrong), wrong[:5])
    with runtime.db.read() as session:
        events = list(session.execute(select(CaseEvent.entry_id, CaseEvent.effect)))
        tracks = session.scalar(select(func.count()).select_from(UnitPing))
    sent = [e.decode() for e, _ in runtime.redis.xrange(runtime.keys.incidents)]
    assert sorted(e for e, _ in events) == sorted(sent)  # every entry once in the timeline
    assert not [e for e in events if e[1] in ("late", "impossible")], report
    assert tracks == len(pings)
    assert all(g.pending == 0 and g.lag == 0 for g in group_states(runtime, cap=10**6))


def test_a_paused_holder_cannot_commit_after_its_successor(
    runtime: Runtime, procs: list[Proc], tmp_path: Path
) -> None:
    """SIGSTOP the lease holder with a batch in hand (a GC pause, a frozen VM); a second
    worker takes the lease; then SIGCONT. Whichever commits first, the other cannot undo
    the order: the fence refuses the paused worker's batch once its successor has taken
    over, and the paused worker stops applying incidents. No case is moved backwards,
    nothing is dead-lettered, every entry is applied once."""
    rng = random.Random(SEED)
    histories, messages = stream_of(rng, 120, now_ms=int(time.time() * 1000), prefix="ST")
    _xadd(runtime.redis, runtime.keys.incidents, messages)
    env = env_for(
        runtime.settings, LIANQIN_WORKER_BATCH="20", LIANQIN_LEASE_MS="1000",
        LIANQIN_WORKER_IDLE_IN_TRANSACTION_S="2",
    )  # fmt: skip
    paused = start(procs, tmp_path, "paused", ["worker", "--name", "pa"], env)
    try:
        wait_for(lambda: _holder(runtime) == "pa", timeout=60, message="pa holds the lease")
        wait_for(lambda: _pending(runtime) > 0, timeout=60, interval=0.002)
        paused.signal(signal.SIGSTOP)
        successor = start(procs, tmp_path, "successor", ["worker", "--name", "pb"], env)
        if runtime.settings.effective_database_url.startswith("sqlite"):
            # Stopped inside its transaction, pa holds SQLite's single write lock: nobody
            # writes until it resumes (pb waits in its first write). Stopped outside one, it
            # lets pb take over. Either way, keep it stopped a moment.
            with contextlib.suppress(AssertionError):
                wait_for(lambda: "took over" in successor.output(), timeout=5)
        else:
            # PostgreSQL ends pa's session if it stopped inside a transaction
            # (LIANQIN_WORKER_IDLE_IN_TRANSACTION_S): pb fences, catches up and moves on.
            wait_for(lambda: "took over" in successor.output(), timeout=60, message="pb")
            at_takeover = _events(runtime)
            wait_for(lambda: _events(runtime) > at_takeover + 40, timeout=60, message="pb moves on")
        paused.signal(signal.SIGCONT)
        wait_for(
            lambda: "refused" in paused.output() or "lapsed" in paused.output(),
            timeout=60, message="the paused worker learns it lost the lease",
        )  # fmt: skip
        wait_for(lambda: _settled(runtime, len(messages), 0), timeout=120, interval=0.5)
    finally:
        for p in procs:
            p.stop()
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    wrong = _differences(runtime, histories)
    assert not wrong, (SEED, len(wrong), wrong[:5])
    assert _events(runtime) == len(messages)


def _events(rt: Runtime) -> int:
    with rt.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(CaseEvent)) or 0)


def test_a_worker_without_a_name_restarted_after_sigkill_loses_nothing(
    runtime: Runtime, procs: list[Proc], tmp_path: Path
) -> None:
    """`lianqin worker` with no --name is host-pid: killed and started again it is a new
    consumer. Its predecessor's pending incidents must go first, without waiting for
    LIANQIN_CLAIM_IDLE_MS (30 s here, the default), while new entries keep coming."""
    rng = random.Random(SEED)
    histories, messages = stream_of(rng, 150, now_ms=int(time.time() * 1000), prefix="NN")
    half = len(messages) // 2
    _xadd(runtime.redis, runtime.keys.incidents, messages[:half])
    env = env_for(
        runtime.settings, LIANQIN_WORKER_BATCH="25", LIANQIN_LEASE_MS="1000",
        LIANQIN_CLAIM_IDLE_MS="30000",
    )  # fmt: skip
    first = start(procs, tmp_path, "first", ["worker"], env)
    try:
        wait_for(lambda: _holder(runtime) == _name(first), timeout=60, message="first holds")
        wait_for(lambda: _pending(runtime) > 0, timeout=60, interval=0.002)
        first.signal(signal.SIGKILL)
        first.wait()
        left = _pending(runtime)
        _xadd(runtime.redis, runtime.keys.incidents, messages[half:])
        second = start(procs, tmp_path, "second", ["worker"], env)
        wait_for(lambda: _settled(runtime, len(messages), 0), timeout=120, interval=0.5)
        assert _name(second) != _name(first)
    finally:
        for p in procs:
            p.stop()
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    wrong = _differences(runtime, histories)
    assert not wrong, (SEED, left, len(wrong), wrong[:5])
    assert _events(runtime) == len(messages)
