"""The simulator through the real producer, a real Redis and the real worker."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from helpers import drain
from sqlalchemy import func, select

from dashboard.demo.district import generate_district, seed_district
from dashboard.demo.simulator import Simulator
from dashboard.models import Case, Unit
from dashboard.worker.loop import Worker

SHANGHAI = ZoneInfo("Asia/Shanghai")


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_end_to_end_through_redis_and_the_worker(runtime, producer) -> None:
    district = generate_district(7)
    """Real producer, real Redis, real worker: nothing is dead-lettered, cases and units land."""
    with runtime.db.write() as session:
        seed_district(session, district)
    # Yesterday at 10:00 in Shanghai: in the past (the worker refuses future times), and a
    # busy hour whatever time the test runs.
    yesterday = datetime.now(UTC).astimezone(SHANGHAI).date() - timedelta(days=1)
    clock = FakeClock(datetime.combine(yesterday, time(10), tzinfo=SHANGHAI))
    sim = Simulator(producer, district, speed=30, seed=8, now=clock)
    sim.warm_start(40)
    for _ in range(120):  # one wall minute in half-second steps
        clock.now += timedelta(seconds=0.5)
        sim.step()
    worker = Worker(runtime, None, consumer="test-sim")
    worker.prepare()
    drain(worker, rounds=200)
    assert runtime.redis.xlen(runtime.keys.dead) == 0
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == sim.stats["cases"]
        kinds = Counter(session.scalars(select(Unit.kind)))
        assert "unknown" not in kinds and kinds["grid_worker"] == 133
        closed = session.scalar(
            select(func.count()).select_from(Case).where(Case.status == "closed")
        )
        assert closed and closed > 10
        positioned = session.scalar(
            select(func.count()).select_from(Unit).where(Unit.last_lat.is_not(None))
        )
        assert positioned and positioned > 150
        gridded = session.scalar(
            select(func.count()).select_from(Case).where(Case.grid_code.is_not(None))
        )
        assert gridded == sim.stats["cases"]


def test_the_simulator_dispatches_joint_responders(runtime, producer) -> None:
    """Issue 13's realism: departments with co-handlers, each accepting on its own."""
    from dashboard.models import Assignment

    district = generate_district(7)
    with runtime.db.write() as session:
        seed_district(session, district)
    yesterday = datetime.now(UTC).astimezone(SHANGHAI).date() - timedelta(days=1)
    clock = FakeClock(datetime.combine(yesterday, time(10), tzinfo=SHANGHAI))
    sim = Simulator(producer, district, speed=30, seed=8, now=clock, rate_per_min=6)
    for _ in range(240):  # two wall minutes (an hour simulated)
        clock.now += timedelta(seconds=0.5)
        sim.step()
    worker = Worker(runtime, None, consumer="test-sim-joint")
    worker.prepare()
    drain(worker, rounds=300)
    assert sim.stats["assignments"] > 0
    dead = [f[b"code"] for _, f in runtime.redis.xrange(runtime.keys.dead)]
    assert dead == []
    with runtime.db.read() as session:
        rows = session.scalars(select(Assignment)).all()
    kinds = Counter(a.kind for a in rows)
    assert kinds["unit"] > 0 and kinds["department"] > 0
    offices: dict[str, set[str]] = {}
    for a in rows:
        if a.kind == "department" and a.status not in ("returned", "transferred"):
            offices.setdefault(a.case_id, set()).add(a.assignee_id)
    assert any(len(v) >= 2 for v in offices.values())  # joint cases
    assert any(a.accepted_at is not None for a in rows)
