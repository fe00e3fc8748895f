"""XADD → worker → database, Redis GEO; dead letters, idempotency, reclaiming (real Redis + DB)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import drain, wait_for
from sqlalchemy import func, select

from dashboard.geo import wgs84_to_gcj02
from dashboard.models import Case, CaseEvent, Unit, UnitPing
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker.loop import Worker


def now_ms(offset_s: float = 0) -> int:
    return int((time.time() + offset_s) * 1000)


@pytest.fixture
def worker(runtime: Runtime) -> Worker:
    w = Worker(runtime, None, consumer="test-worker")
    w.prepare()
    return w


def case_row(runtime: Runtime, case_id: str) -> Case | None:
    with runtime.db.read() as session:
        return session.get(Case, case_id)


def timeline(runtime: Runtime, case_id: str) -> list[CaseEvent]:
    with runtime.db.read() as session:
        return list(
            session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
            )
        )


def dead_letters(runtime: Runtime) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in runtime.redis.xrange(runtime.keys.dead)]


def new_case(producer: Producer, case_id: str = "HZ-1", **extra: object) -> str:
    fields: dict[str, object] = {
        "id": case_id,
        "status": "reported",
        "ts": now_ms(-60),
        "lat": 29.3702,
        "lon": 106.2610,
        "category": "dispute",
        "title": "邻里噪音纠纷",
    }
    fields.update(extra)
    return producer.incident(**fields)


def test_xadd_to_row_with_timeline(runtime: Runtime, producer: Producer, worker: Worker) -> None:
    new_case(producer, priority=2, source="grid_app", description="17栋住户夜间施工")
    producer.incident(id="HZ-1", status="registered", ts=now_ms(-50))
    producer.incident(
        id="HZ-1", status="dispatched", ts=now_ms(-40), unit="P-017", department="police"
    )
    assert drain(worker) == 3
    case = case_row(runtime, "HZ-1")
    assert case is not None
    assert (case.status, case.category, case.priority, case.source) == (
        "dispatched",
        "dispute",
        2,
        "grid_app",
    )
    assert (case.unit_id, case.department_id, case.title) == ("P-017", "police", "邻里噪音纠纷")
    assert case.version == 3
    assert case.registered_at is not None and case.dispatched_at is not None
    events = timeline(runtime, "HZ-1")
    assert [(e.status, e.effect, e.applied) for e in events] == [
        ("reported", "created", True),
        ("registered", "advanced", True),
        ("dispatched", "advanced", True),
    ]
    assert events[0].fields["title"] == "邻里噪音纠纷"  # the message as sent
    assert runtime.redis.xpending(runtime.keys.incidents, "lianqin")["pending"] == 0


def test_late_message_is_kept_in_the_timeline_but_never_moves_back(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(producer)
    producer.incident(id="HZ-1", status="on_scene", ts=now_ms(-10))
    producer.incident(id="HZ-1", status="dispatched", ts=now_ms(-30), unit="P-009")  # late
    drain(worker)
    case = case_row(runtime, "HZ-1")
    assert case is not None and case.status == "on_scene"
    assert case.unit_id is None  # a late message's fields are not applied
    assert case.dispatched_at is not None  # ... but it says when dispatch happened
    late = timeline(runtime, "HZ-1")[-1]
    assert (late.status, late.effect, late.applied) == ("dispatched", "late", False)
    assert dead_letters(runtime) == []


def test_rework_and_impossible_transition(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(producer)
    producer.incident(id="HZ-1", status="resolved", ts=now_ms(-30))
    producer.incident(id="HZ-1", status="dispatched", ts=now_ms(-20), unit="P-1")  # rework
    producer.incident(id="HZ-1", status="closed", ts=now_ms(-10))
    producer.incident(id="HZ-1", status="on_scene", ts=now_ms(-5))  # out of closed: lead only
    drain(worker)
    case = case_row(runtime, "HZ-1")
    assert case is not None and case.status == "closed" and case.rework_count == 1
    (dead,) = dead_letters(runtime)
    assert dead[b"code"] == b"impossible_transition"
    assert b"closed" in dead[b"reason"] and dead[b"f:status"] == b"on_scene"


def test_bad_entry_goes_to_dead_letters_and_the_worker_goes_on(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(producer, "HZ-A")
    bad_id = runtime.redis.xadd(
        runtime.keys.incidents,
        {
            "id": "HZ-B",
            "status": "reported",
            "ts": now_ms(),
            "lat": "95",
            "lon": "106",
            "category": "dispute",
        },
    )
    runtime.redis.xadd(
        runtime.keys.pings, {"unit": "P-1", "lat": "nan", "lon": "106", "ts": now_ms()}
    )
    runtime.redis.xadd(
        runtime.keys.incidents, {"id": "HZ-C", "status": "dispatched", "ts": now_ms()}
    )  # no create fields
    new_case(producer, "HZ-D")
    drain(worker)
    assert case_row(runtime, "HZ-A") and case_row(runtime, "HZ-D")
    assert case_row(runtime, "HZ-B") is None and case_row(runtime, "HZ-C") is None
    dead = dead_letters(runtime)
    by_code = {d[b"code"].decode(): d for d in dead}
    assert set(by_code) == {"bad_coordinates", "bad_number", "missing_on_create"}
    coords = by_code["bad_coordinates"]
    assert coords[b"stream"] == runtime.keys.incidents.encode()
    assert coords[b"entry"] == bad_id
    assert coords[b"field"] == b"lat" and b"-90..90" in coords[b"reason"]
    assert coords[b"f:lat"] == b"95"  # the original entry, byte for byte
    metrics = runtime.redis.hgetall(runtime.keys.metrics)
    assert metrics[b"dead:incidents:bad_coordinates"] == b"1"
    assert metrics[b"dead:pings:bad_number"] == b"1"
    assert metrics[b"ingested:incidents"] == b"2"
    for stream in (runtime.keys.incidents, runtime.keys.pings):
        assert runtime.redis.xpending(stream, "lianqin")["pending"] == 0  # all acknowledged


def test_invalid_utf8_and_huge_values_are_dead_lettered_with_the_raw_bytes(
    runtime: Runtime, worker: Worker
) -> None:
    runtime.redis.xadd(
        runtime.keys.incidents,
        {"id": "HZ-U", "status": "reported", "ts": now_ms(), "lat": "29", "lon": "106",
         "category": "other", "title": b"\xff\xfe"},
    )  # fmt: skip
    runtime.redis.xadd(
        runtime.keys.incidents,
        {"id": "HZ-H", "status": "reported", "ts": now_ms(), "lat": "29", "lon": "106",
         "category": "other", "description": "x" * 1_000_000},
    )  # fmt: skip
    drain(worker)
    dead = {d[b"code"]: d for d in dead_letters(runtime)}
    assert dead[b"invalid_utf8"][b"f:title"] == b"\xff\xfe"
    assert dead[b"too_long"][b"field"] == b"description"


def test_the_same_entry_twice_changes_nothing(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(producer)
    producer.incident(id="HZ-1", status="dispatched", ts=now_ms(-30), unit="P-1")
    t = now_ms(-5)
    producer.ping(unit="P-1", lat=29.37, lon=106.26, ts=t)
    drain(worker)
    entries = {
        runtime.keys.incidents: [
            (e.decode(), f) for e, f in runtime.redis.xrange(runtime.keys.incidents)
        ],
        runtime.keys.pings: [(e.decode(), f) for e, f in runtime.redis.xrange(runtime.keys.pings)],
    }
    before = case_row(runtime, "HZ-1")
    assert before is not None
    worker.handle(entries)  # redelivered, as after a crash before the acknowledgement
    worker.handle(entries)
    after = case_row(runtime, "HZ-1")
    assert after is not None and (after.version, after.status) == (before.version, before.status)
    assert len(timeline(runtime, "HZ-1")) == 2
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(UnitPing)) == 1
    assert dead_letters(runtime) == []


def test_pings_track_latest_position_and_redis_geo(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    t = now_ms(-10)
    producer.ping(
        unit="P-017", lat=29.3711, lon=106.2633, ts=t, speed=3.1, heading=270, status="busy"
    )
    producer.ping(unit="P-017", lat=29.3800, lon=106.2700, ts=t - 5000)  # older: track only
    glat, glon = wgs84_to_gcj02(29.3600, 106.2500)
    producer.ping(unit="V-2", lat=repr(glat), lon=repr(glon), ts=t, crs="gcj02")
    drain(worker)
    with runtime.db.read() as session:
        unit = session.get(Unit, "P-017")
        assert unit is not None and unit.kind == "unknown"  # registered by its first ping
        assert (unit.last_lat, unit.last_lon, unit.status) == (29.3711, 106.2633, "busy")
        assert session.scalar(select(func.count()).where(UnitPing.unit_id == "P-017")) == 2
    latest = runtime.latest.all()
    assert latest["P-017"]["lat"] == 29.3711 and latest["P-017"]["ts"] == t
    assert abs(latest["V-2"]["lat"] - 29.36) < 1e-6 and abs(latest["V-2"]["lon"] - 106.25) < 1e-6
    near = runtime.latest.near(29.3711, 106.2633, 500)
    assert near[0][0] == "P-017" and near[0][1] < 1.0
    assert [u for u, _ in runtime.latest.near(29.36, 106.25, 100)] == ["V-2"]


def test_grid_is_found_from_the_point(runtime: Runtime, producer: Producer, worker: Worker) -> None:
    from dashboard.models import Grid

    square = {
        "type": "Polygon",
        "coordinates": [
            [[106.25, 29.36], [106.27, 29.36], [106.27, 29.38], [106.25, 29.38], [106.25, 29.36]]
        ],
    }
    with runtime.db.write() as session:
        session.add(
            Grid(
                code="G001", name="一网格", geometry=square, centroid_lat=29.37, centroid_lon=106.26
            )
        )
    worker.reload_grids(force=True)
    new_case(producer, "HZ-IN")
    new_case(producer, "HZ-OUT", lat=29.40, lon=106.30)
    new_case(producer, "HZ-GIVEN", grid="G999")
    drain(worker)
    assert case_row(runtime, "HZ-IN").grid_code == "G001"  # type: ignore[union-attr]
    assert case_row(runtime, "HZ-OUT").grid_code is None  # type: ignore[union-attr]
    assert case_row(runtime, "HZ-GIVEN").grid_code == "G999"  # type: ignore[union-attr]


def test_a_dead_workers_pending_pings_are_reclaimed_exactly_once(
    runtime: Runtime, producer: Producer
) -> None:
    """A shared stream: its entries pending on a dead consumer wait ``claim_idle_ms``."""
    for i in range(20):
        producer.ping(unit=f"P-{i}", lat=29.37, lon=106.26, ts=now_ms(-10))
    runtime.redis.xgroup_create(runtime.keys.pings, "lianqin", id="0", mkstream=True)
    # A consumer reads the entries and dies before acknowledging them.
    runtime.redis.xreadgroup("lianqin", "crashed", {runtime.keys.pings: ">"}, count=100)
    assert runtime.redis.xpending(runtime.keys.pings, "lianqin")["pending"] == 20
    survivor = Worker(runtime, None, consumer="survivor")
    survivor.prepare()
    assert survivor.step() == 0  # nothing new; the entries belong to "crashed"
    time.sleep(runtime.settings.claim_idle_ms / 1000 + 0.1)
    assert survivor.reclaim() == 20
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(UnitPing)) == 20
    assert runtime.redis.xpending(runtime.keys.pings, "lianqin")["pending"] == 0


def test_a_dead_workers_pending_incidents_are_applied_first_by_the_lease_holder(
    runtime: Runtime, producer: Producer
) -> None:
    """An ordered stream: the lease holder applies what a dead consumer left pending at
    once (no idle time to wait: nobody else may apply it), before any newer entry."""
    new_case(producer, "HZ-O")
    runtime.redis.xgroup_create(runtime.keys.incidents, "lianqin", id="0", mkstream=True)
    runtime.redis.xreadgroup("lianqin", "crashed", {runtime.keys.incidents: ">"}, count=100)
    producer.incident(id="HZ-O", status="registered", ts=now_ms(-50))  # after the create
    survivor = Worker(runtime, None, consumer="survivor")
    survivor.prepare()
    assert survivor.step() == 1  # took the lease, then applied the pending create
    assert drain(survivor) == 1  # then the update
    case = case_row(runtime, "HZ-O")
    assert case is not None and case.status == "registered"
    assert [e.effect for e in timeline(runtime, "HZ-O")] == ["created", "advanced"]
    assert dead_letters(runtime) == []
    assert runtime.redis.xpending(runtime.keys.incidents, "lianqin")["pending"] == 0


def test_the_clock_makes_a_case_overdue_without_any_message(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    producer.incident(
        id="HZ-SLA", status="registered", ts=now_ms(-30), lat=29.37, lon=106.26, category="noise"
    )
    drain(worker)
    case = case_row(runtime, "HZ-SLA")
    assert case is not None and not case.overdue  # dispatch deadline is 60 s after registration
    assert case.deadline_at is not None
    with runtime.db.write() as session:  # let 40 s pass
        row = session.get(Case, "HZ-SLA")
        assert row is not None
        row.status_since -= timedelta(seconds=40)
        row.deadline_at -= timedelta(seconds=40)  # type: ignore[operator]
    worker.sweep()
    case = case_row(runtime, "HZ-SLA")
    assert case is not None and case.overdue
    pushed = json.loads(runtime.redis.xrevrange(runtime.keys.deltas, count=1)[0][1][b"d"])
    assert [(c["id"], c["overdue"]) for c in pushed["cases"]] == [("HZ-SLA", True)]
    worker.sweep()  # already flagged: nothing more is pushed
    assert json.loads(runtime.redis.xrevrange(runtime.keys.deltas, count=1)[0][1][b"d"]) == pushed


def test_explicit_due_sets_the_resolution_deadline(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    due = datetime.now(UTC) + timedelta(hours=3)
    new_case(producer, "HZ-DUE", status="on_scene", due=due)
    drain(worker)
    case = case_row(runtime, "HZ-DUE")
    assert case is not None and case.deadline_at is not None
    assert abs((case.deadline_at - due).total_seconds()) < 0.01


def test_each_batch_appends_one_numbered_delta(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(producer, "HZ-1")
    producer.ping(unit="P-1", lat=29.37, lon=106.26, ts=now_ms(-1))
    drain(worker)
    new_case(producer, "HZ-2")
    drain(worker)
    entries = runtime.redis.xrange(runtime.keys.deltas)
    seqs = [int(f[b"seq"]) for _, f in entries]
    assert seqs == list(range(1, len(seqs) + 1))
    bodies = [json.loads(f[b"d"]) for _, f in entries]
    assert {c["id"] for b in bodies for c in b["cases"]} == {"HZ-1", "HZ-2"}
    assert [u["id"] for b in bodies for u in b["units"]] == ["P-1"]
    first = bodies[0]["cases"][0]
    assert {"id", "status", "lat", "lon", "overdue", "version", "deadline"} <= set(first)


def test_streams_are_bounded(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"ping_stream_maxlen": 1000})
    p = Producer(runtime.redis, settings)
    p.pipeline_pings(
        [{"unit": "P-1", "lat": 29.37, "lon": 106.26, "ts": now_ms(-100) + i} for i in range(5000)]
    )
    assert runtime.redis.xlen(runtime.keys.pings) < 2000  # MAXLEN ~ trims by whole nodes


def test_worker_run_loop_stops_gracefully(runtime: Runtime, producer: Producer) -> None:
    w = Worker(runtime, None, consumer="looping")
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    new_case(producer, "HZ-LOOP")
    wait_for(lambda: case_row(runtime, "HZ-LOOP"), message="case applied by the running loop")
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
