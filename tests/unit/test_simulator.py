"""The simulator, driven by a fake clock against a recording producer.

The recorder stands in for `dashboard.streams.Producer`: it keeps what would have
been written, formatted exactly as the real producer formats it (`Producer.fields`),
so every entry is checked against the real contract parser. The run through a
real Redis and the real worker is in tests/integration/test_simulator_pipeline.py.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboard.config import Settings
from dashboard.contract.entries import IncidentMessage, PingMessage, parse_incident, parse_ping
from dashboard.demo.district import District, generate_district
from dashboard.demo.simulator import Simulator
from dashboard.geo import haversine_m
from dashboard.lifecycle import TERMINAL, CaseView, Effect, decide
from dashboard.sla import SlaPolicy
from dashboard.streams import Producer

CATEGORIES = Settings.model_fields["categories"].default
START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SH = ZoneInfo("Asia/Shanghai")
SHANGHAI = ZoneInfo("Asia/Shanghai")


Fields = dict[bytes | str, bytes | str]


def _fields(values: Mapping[str, Any]) -> Fields:
    """The entry exactly as the real producer would write it."""
    return {k: v for k, v in Producer.fields(values).items()}


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class RecordingProducer:
    """A test double for the Redis producer: records entries with the clock at writing."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.incidents: list[tuple[datetime, Fields]] = []
        self.pings: list[tuple[datetime, Fields]] = []

    def incident(self, **values: Any) -> str:
        self.incidents.append((self.clock(), _fields(values)))
        return f"{len(self.incidents)}-0"

    def ping(self, **values: Any) -> str:
        self.pings.append((self.clock(), _fields(values)))
        return f"{len(self.pings)}-0"

    def pipeline_pings(self, pings: list[Mapping[str, Any]]) -> None:
        for values in pings:
            self.ping(**values)

    # Parsed views, each checked against the contract at the time it was written.
    def parsed_incidents(self) -> list[IncidentMessage]:
        return [parse_incident(f, categories=CATEGORIES, now=at) for at, f in self.incidents]

    def parsed_pings(self) -> list[PingMessage]:
        return [parse_ping(f, now=at) for at, f in self.pings]


def run(sim: Simulator, clock: FakeClock, wall_seconds: float, tick: float = 0.5) -> None:
    for _ in range(round(wall_seconds / tick)):
        clock.advance(tick)
        sim.step()


def by_case(messages: list[IncidentMessage]) -> dict[str, list[IncidentMessage]]:
    out: dict[str, list[IncidentMessage]] = defaultdict(list)
    for m in messages:
        out[m.id].append(m)
    return out


def replay(messages: list[IncidentMessage]) -> tuple[CaseView | None, list[Effect]]:
    """What the ingest side decides for each message of one case, in stream order."""
    view: CaseView | None = None
    effects: list[Effect] = []
    for m in messages:
        decision = decide(view, m.status, m.ts)
        effects.append(decision.effect)
        if decision.applies:
            floor = m.ts if decision.effect == Effect.REWORK else (view.floor_ts if view else None)
            newest = m.ts if view is None else max(view.status_ts, m.ts)
            view = CaseView(m.status, newest, floor)
    return view, effects


def final_status(messages: list[IncidentMessage]) -> str:
    view, _ = replay(messages)
    assert view is not None
    return view.status


@pytest.fixture(scope="module")
def district() -> District:
    return generate_district(7)


@pytest.fixture(scope="module")
def hour_run(district: District) -> tuple[Simulator, RecordingProducer, FakeClock]:
    """One simulated hour at 30× (two wall minutes in 0.5 s steps), shared by several tests."""
    clock = FakeClock()
    rec = RecordingProducer(clock)
    sim = Simulator(rec, district, speed=30, seed=3, now=clock)
    run(sim, clock, 120)
    return sim, rec, clock


def test_every_entry_satisfies_the_contract(hour_run) -> None:
    _, rec, _ = hour_run
    incidents = rec.parsed_incidents()  # raises ContractError on any violation
    pings = rec.parsed_pings()
    assert len(incidents) > 100 and len(pings) > 1000
    for (at, _), m in zip(rec.incidents, incidents, strict=True):
        assert m.ts <= at + timedelta(milliseconds=5)  # never in the future
        assert m.ts >= START
    for (at, _), p in zip(rec.pings, pings, strict=True):
        assert p.ts <= at
        assert p.heading is not None and 0 <= p.heading <= 360
        assert p.accuracy is not None and 3 <= p.accuracy <= 15
    created = [m for m in incidents if m.status == "reported"]
    for m in created:
        assert m.category in CATEGORIES and m.lat is not None and m.lon is not None
        assert m.priority in (1, 2, 3, 4) and m.source and m.title and m.description and m.address
    assert Counter(m.source for m in created).most_common(2)[0][0] in ("grid_app", "hotline_12345")
    assert Counter(m.priority for m in created).most_common(1)[0][0] == 3


def test_cases_follow_a_valid_lifecycle_and_get_closed(hour_run) -> None:
    _, rec, _ = hour_run
    cases = by_case(rec.parsed_incidents())
    finals: Counter[str] = Counter()
    for case_id, messages in cases.items():
        assert messages[0].status == "reported", case_id
        view, effects = replay(messages)
        assert Effect.IMPOSSIBLE not in effects, (case_id, [m.status for m in messages])
        assert Effect.LATE not in effects, (case_id, [m.status for m in messages])
        assert view is not None
        finals[view.status] += 1
        for m in messages:
            if m.status == "dispatched":
                assert m.unit and m.department
    assert finals["closed"] > 10
    assert (
        sum(finals[s] for s in ("reported", "registered", "dispatched", "on_scene", "resolved")) > 0
    )


def test_pace_dispatch_and_arrival(hour_run) -> None:
    """Most cases meet the 1-minute dispatch and 5-minute arrival deadlines (simulated time)."""
    sim, rec, _ = hour_run
    dispatch, arrival = [], []
    for messages in by_case(rec.parsed_incidents()).values():
        first: dict[str, datetime] = {}
        for m in messages:
            first.setdefault(m.status, m.ts)
        if "registered" in first and "dispatched" in first:
            dispatch.append((first["dispatched"] - first["registered"]).total_seconds() * sim.speed)
        if "dispatched" in first and "on_scene" in first:
            arrival.append((first["on_scene"] - first["dispatched"]).total_seconds() * sim.speed)
    assert len(dispatch) > 30 and len(arrival) > 30
    assert 0.5 < sum(d <= 60 for d in dispatch) / len(dispatch) < 1.0
    assert sum(a <= 300 for a in arrival) / len(arrival) > 0.8


def test_the_demo_history_has_the_live_simulators_rate_and_pace(hour_run) -> None:
    """The demo's history (dashboard/demo/history.py) draws its cases at the simulator's
    own rate and stage times, so that yesterday and today compare like with like."""
    import numpy as np

    from dashboard.demo.history import _simulator_stages
    from dashboard.demo.simulator import expected_arrivals, wall_rate

    sim, rec, clock = hour_run
    cases = by_case(rec.parsed_incidents())
    expected = expected_arrivals(START, clock.now, SH, wall_rate(sim.rate_per_min, sim.speed))
    assert 0.7 * expected < len(cases) < 1.3 * expected
    to_dispatch, to_scene = [], []
    for messages in cases.values():
        first: dict[str, datetime] = {}
        for m in messages:
            first.setdefault(m.status, m.ts)
        if "dispatched" in first and first["reported"] < START + timedelta(seconds=60):
            to_dispatch.append((first["dispatched"] - first["reported"]).total_seconds())
            if "on_scene" in first:
                to_scene.append((first["on_scene"] - first["reported"]).total_seconds())
    rng = np.random.default_rng(1)
    m = 5000
    category = np.array(["dispute"] * m, dtype=object)
    drawn = _simulator_stages(rng, m, np.zeros(m), category, np.zeros(m, bool), sim.speed)
    history_dispatch = float(np.median(drawn["dispatched"]))
    history_scene = float(np.median(drawn["on_scene"]))
    assert len(to_dispatch) > 20
    assert 0.6 < float(np.median(to_dispatch)) / history_dispatch < 1.6
    assert 0.5 < float(np.median(to_scene)) / history_scene < 2.0


def test_units_ping_every_few_seconds_with_their_status(hour_run) -> None:
    sim, rec, _ = hour_run
    pings = rec.parsed_pings()
    times: dict[str, list[datetime]] = defaultdict(list)
    for p in pings:
        times[p.unit].append(p.ts)
    on_duty = [u for u, s in sim.units.items() if s.status != "off_duty"]
    assert set(on_duty) <= set(times)
    gaps = [(b - a).total_seconds() for ts in times.values() for a, b in itertools.pairwise(ts)]
    assert 2.4 < sorted(gaps)[len(gaps) // 2] < 3.6
    statuses = Counter(p.status for p in pings)
    assert statuses["available"] > statuses["busy"] > 0


def test_busy_while_assigned(hour_run) -> None:
    _, rec, _ = hour_run
    pings = defaultdict(list)
    for p in rec.parsed_pings():
        pings[p.unit].append(p)
    checked = 0
    for messages in by_case(rec.parsed_incidents()).values():
        stages = {m.status: m for m in messages}
        if "on_scene" not in stages or "resolved" not in stages:
            continue
        unit = stages["dispatched"].unit
        start, end = stages["on_scene"].ts, stages["resolved"].ts
        during = [p for p in pings[unit or ""] if start < p.ts < end]
        assert all(p.status == "busy" for p in during)
        checked += len(during)
    assert checked > 50


def test_units_drive_toward_their_case(district: District) -> None:
    clock = FakeClock()
    rec = RecordingProducer(clock)
    sim = Simulator(rec, district, speed=4, seed=11, now=clock, rate_per_min=2.0)
    run(sim, clock, 300)
    pings = defaultdict(list)
    for p in rec.parsed_pings():
        pings[p.unit].append(p)
    approached = 0
    for messages in by_case(rec.parsed_incidents()).values():
        reported = messages[0]
        stages = {m.status: m for m in messages}
        if "on_scene" not in stages:
            continue
        unit = stages["dispatched"].unit or ""
        assert stages["on_scene"].unit == unit
        start, end = stages["dispatched"].ts, stages["on_scene"].ts
        assert reported.lat is not None and reported.lon is not None

        def dist(p: PingMessage, case: IncidentMessage = reported) -> float:
            return haversine_m(p.lat, p.lon, case.lat or 0.0, case.lon or 0.0)

        route = [dist(p) for p in pings[unit] if start <= p.ts <= end]
        # Moving straight at the case: never further away (beyond GPS noise).
        assert all(b <= a + 25 for a, b in itertools.pairwise(route)), route
        if len(route) >= 3 and route[0] - route[-1] > 100:
            approached += 1
        # On scene: the unit's next pings are at the case.
        after = [dist(p) for p in pings[unit] if end <= p.ts <= end + timedelta(seconds=5)]
        assert all(d < 40 for d in after), after
    assert approached >= 5


def test_warm_start_fills_the_day_in_every_stage(district: District) -> None:
    clock = FakeClock()
    rec = RecordingProducer(clock)
    sim = Simulator(rec, district, speed=60, seed=5, now=clock)
    written = sim.warm_start(150)
    assert written == len(rec.incidents) > 150 * 4
    messages = rec.parsed_incidents()
    local_midnight = datetime(2026, 11, 24, tzinfo=sim.tz)
    assert all(local_midnight <= m.ts < clock.now for m in messages)
    cases = by_case(messages)
    assert len(cases) == 150
    policy = SlaPolicy()
    finals: Counter[str] = Counter()
    overdue = 0
    for case_messages in cases.values():
        view, effects = replay(case_messages)
        assert Effect.IMPOSSIBLE not in effects and Effect.LATE not in effects
        assert view is not None
        finals[view.status] += 1
        created = case_messages[0]
        deadline = policy.stage_deadline(
            status=view.status,
            status_since=view.status_ts,
            category=created.category or "other",
            priority=created.priority or 3,
            reported_at=created.ts,
            due=None,
        )
        overdue += deadline is not None and deadline < clock.now
    assert finals["closed"] > 100
    open_cases = sum(finals[s] for s in ("reported", "registered", "dispatched", "on_scene"))
    assert 3 <= open_cases + finals["resolved"] < 50
    assert overdue >= 1
    # The live loop carries the open ones on: two simulated hours later most are done.
    still_open = {c for c, ms in cases.items() if final_status(ms) not in TERMINAL}
    assert still_open == set(sim.cases)
    run(sim, clock, 120)
    later = by_case(rec.parsed_incidents())
    for case_id in still_open:
        view, effects = replay(later[case_id])
        assert Effect.IMPOSSIBLE not in effects and Effect.LATE not in effects
        assert view is not None and view.status not in ("reported", "registered")
    done = sum(final_status(later[c]) in TERMINAL for c in still_open)
    assert done >= len(still_open) * 0.6


def test_case_ids_are_unique_across_restarts(district: District) -> None:
    ids: set[str] = set()
    for restart in range(3):
        clock = FakeClock(START + timedelta(seconds=5 * restart))
        rec = RecordingProducer(clock)
        sim = Simulator(rec, district, speed=60, seed=1, now=clock)  # the same seed each time
        run(sim, clock, 10)
        new = {m.id for m in rec.parsed_incidents()}
        assert new and not (new & ids)
        ids |= new
    assert all(re.fullmatch(r"HZ-20261124-[0-9A-Z]{4}\d{6}", i) for i in ids)


def test_gcj02_coordinates_are_converted_properly(district: District) -> None:
    clock = FakeClock()
    rec = RecordingProducer(clock)
    sim = Simulator(rec, district, speed=60, seed=9, now=clock, gcj02_share=0.5)
    truth: dict[str, tuple[float, float]] = {}  # the simulator's own WGS-84 point of each case
    for _ in range(60):
        clock.advance(0.5)
        sim.step()
        truth.update({cid: (c.lat, c.lon) for cid, c in sim.cases.items()})
    gcj = wgs = 0
    for (_, raw), m in zip(rec.incidents, rec.parsed_incidents(), strict=True):
        if m.status != "reported":
            continue
        assert m.lat is not None and m.lon is not None
        # Parsed back to WGS-84 (the ingest path), it is the simulator's point to ~1 cm.
        lat, lon = truth[m.id]
        assert abs(m.lat - lat) < 2e-7 and abs(m.lon - lon) < 2e-7
        if raw.get("crs") == "gcj02":
            gcj += 1
            # ...whereas the raw GCJ-02 values are a few hundred metres off.
            assert haversine_m(float(raw["lat"]), float(raw["lon"]), lat, lon) > 100
        else:
            wgs += 1
    assert gcj > 5 and wgs > 5


def test_categories_follow_the_configured_catalogue(district: District) -> None:
    clock = FakeClock()
    rec = RecordingProducer(clock)
    sim = Simulator(rec, district, speed=60, seed=2, now=clock, categories=("dispute", "noise"))
    run(sim, clock, 30)
    created = [m for m in rec.parsed_incidents() if m.status == "reported"]
    assert created and {m.category for m in created} <= {"dispute", "noise"}


def test_deterministic_for_a_seed_and_clock(district: District) -> None:
    outputs = []
    for _ in range(2):
        clock = FakeClock()
        rec = RecordingProducer(clock)
        sim = Simulator(rec, district, speed=30, seed=4, now=clock)
        sim.warm_start(20)
        run(sim, clock, 20)
        outputs.append((rec.incidents, rec.pings))
    assert outputs[0] == outputs[1]


def test_speed_scales_the_pace_but_not_the_ping_rate(district: District) -> None:
    counts = {}
    for speed in (1, 20):
        clock = FakeClock()
        rec = RecordingProducer(clock)
        sim = Simulator(rec, district, speed=speed, seed=6, now=clock, rate_per_min=1.0)
        run(sim, clock, 60)
        counts[speed] = (
            sum(f["status"] == "reported" for _, f in rec.incidents),
            len(rec.pings),
        )
    assert counts[20][0] > 5 * max(1, counts[1][0])
    assert counts[20][1] == pytest.approx(counts[1][1], rel=0.1)


def test_run_stops_when_asked(district: District) -> None:
    rec = RecordingProducer(lambda: datetime.now(UTC))
    sim = Simulator(rec, district, speed=10, seed=1)
    stop = threading.Event()
    thread = threading.Thread(target=sim.run, args=(stop,))
    thread.start()
    stop.wait(1.2)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(rec.pings) >= len(district.units) * 0.8
    rec.parsed_pings()


def test_rejects_bad_arguments(district: District) -> None:
    rec = RecordingProducer(lambda: START)
    with pytest.raises(ValueError):
        Simulator(rec, district, speed=0)
    sim = Simulator(rec, district, seed=1)
    with pytest.raises(ValueError):
        sim.step(datetime(2026, 11, 24, 10, 0))  # naive
