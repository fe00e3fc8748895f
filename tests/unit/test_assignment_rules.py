"""The assignment lifecycle and the case stage that follows it (dashboard/assignments.py).

The property: any arrival order of a case's entries — case-level ones from a producer and
its responders' progress, late, duplicated, shuffled — ends in the same state as the
history applied in time order, and never moves the case backwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.assignments import (
    AssignmentLike,
    MoveEffect,
    apply_move,
    behind_responders,
    decide_move,
    derived_stage,
    follow,
    set_stage,
)
from dashboard.lifecycle import CaseView, Effect, decide
from dashboard.vocabulary import RANK, STAGE_COLUMNS

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class A:
    assignee_id: str
    kind: str
    role: str
    required: bool
    status: str
    status_ts: datetime
    dispatched_at: datetime
    accepted_at: datetime | None = None
    en_route_at: datetime | None = None
    on_scene_at: datetime | None = None
    done_at: datetime | None = None
    returned_at: datetime | None = None
    transferred_at: datetime | None = None


@dataclass
class C:
    status: str
    status_since: datetime
    status_ts: datetime
    floor_ts: datetime | None = None
    reported_at: datetime | None = None
    registered_at: datetime | None = None
    dispatched_at: datetime | None = None
    on_scene_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    rows: dict[tuple[str, str], A] = field(default_factory=dict)


# -- a model of the worker's two appliers (services/ingest.py, services/assignments.py) --
def case_entry(c: C, status: str, ts: datetime) -> str:
    d = decide(CaseView(c.status, c.status_ts, c.floor_ts), status, ts)
    effect = d.effect
    if effect in (Effect.IMPOSSIBLE, Effect.REWORK) and behind_responders(
        c, status, c.rows.values()
    ):
        effect = Effect.LATE  # behind the responders: late, but its time counts
        c.status_ts = max(c.status_ts, ts)
    if effect is Effect.IMPOSSIBLE:
        return "dead"
    if effect not in (Effect.LATE, Effect.IMPOSSIBLE):
        if effect is Effect.REWORK:
            c.floor_ts = ts
        if effect is not Effect.UPDATE:
            c.status, c.status_since = status, ts
            if getattr(c, STAGE_COLUMNS[status]) is None:
                setattr(c, STAGE_COLUMNS[status], ts)
        c.status_ts = max(c.status_ts, ts)
    elif status != "cancelled" and (c.floor_ts is None or ts >= c.floor_ts):
        column = STAGE_COLUMNS[status]
        if getattr(c, column) is None or ts < getattr(c, column):
            setattr(c, column, ts)
    follow(c, c.rows.values())
    return str(effect)


def assignment_entry(
    c: C, assignee: str, kind: str, role: str, status: str, ts: datetime, required: bool = False
) -> str:
    row = c.rows.get((kind, assignee))
    move = decide_move(row, kind, status, ts)
    if move.effect is MoveEffect.ILLEGAL:
        return "dead"
    if row is None:
        row = A(assignee, kind, role, required, status, ts, ts)
        set_stage(row, status, ts)
        c.rows[(kind, assignee)] = row
    else:
        apply_move(row, move, status, ts)
        if role == "lead":
            row.role = "lead"
    follow(c, c.rows.values(), ts if move.applies else None)
    return str(move.effect)


def state(c: C) -> tuple[object, ...]:
    rows = tuple(
        sorted(
            (k, r.role, r.status, r.status_ts, r.dispatched_at, r.accepted_at, r.en_route_at,
             r.on_scene_at, r.done_at, r.returned_at)
            for k, r in c.rows.items()
        )
    )  # fmt: skip
    stages = tuple(getattr(c, col) for col in STAGE_COLUMNS.values())
    return (c.status, c.status_ts, stages, rows)


# -- the rules, one by one --------------------------------------------------------------
def row(kind: str = "department", status: str = "dispatched", ts: float = 0) -> A:
    return A("police", kind, "lead", True, status, t(ts), t(0))


@pytest.mark.parametrize(
    ("kind", "current", "status", "effect"),
    [
        ("department", None, "accepted", MoveEffect.CREATE),
        ("department", "dispatched", "accepted", MoveEffect.ADVANCE),
        ("department", "dispatched", "done", MoveEffect.ADVANCE),  # stages may be skipped
        ("department", "accepted", "dispatched", MoveEffect.LATE),  # never backwards
        ("department", "accepted", "accepted", MoveEffect.UPDATE),
        ("department", "done", "returned", MoveEffect.ILLEGAL),  # a different ending
        ("department", "returned", "done", MoveEffect.ILLEGAL),
        ("department", "accepted", "transferred", MoveEffect.ADVANCE),
        ("department", "dispatched", "on_scene", MoveEffect.ILLEGAL),  # a unit's status
        ("unit", "dispatched", "transferred", MoveEffect.ILLEGAL),  # a department's
        ("unit", "en_route", "on_scene", MoveEffect.ADVANCE),
        ("unit", "on_scene", "en_route", MoveEffect.LATE),
        ("station", "on_scene", "done", MoveEffect.ADVANCE),
    ],
)
def test_moves(kind: str, current: str | None, status: str, effect: MoveEffect) -> None:
    view = None if current is None else row(kind, current, ts=10)
    assert decide_move(view, kind, status, t(20)).effect is effect


def test_same_status_older_is_late() -> None:
    assert decide_move(row(status="accepted", ts=30), "department", "accepted", t(20)).effect is (
        MoveEffect.LATE
    )


def test_late_entry_fills_an_earlier_stage_time_only() -> None:
    r = row(status="done", ts=50)
    r.done_at = t(50)
    move = decide_move(r, "department", "accepted", t(20))
    assert apply_move(r, move, "accepted", t(20))
    assert (r.status, r.accepted_at, r.status_ts) == ("done", t(20), t(50))


def test_case_follows_the_lead_and_required_co_handlers() -> None:
    c = C("registered", t(0), t(0), reported_at=t(0), registered_at=t(0))
    assignment_entry(c, "police", "department", "lead", "dispatched", t(10))
    assignment_entry(c, "justice", "department", "assist", "dispatched", t(10), required=True)
    assignment_entry(c, "market", "department", "assist", "dispatched", t(10))
    assert (c.status, c.dispatched_at) == ("dispatched", t(10))
    assignment_entry(c, "P-1", "unit", "responder", "on_scene", t(30))
    assert (c.status, c.on_scene_at) == ("on_scene", t(30))
    assignment_entry(c, "police", "department", "lead", "done", t(60))
    assert c.status == "on_scene"  # the required co-handler is not done yet
    assignment_entry(c, "justice", "department", "assist", "done", t(90))
    assert (c.status, c.resolved_at) == ("resolved", t(90))  # market (not required) may lag


def test_returned_co_handler_no_longer_counts() -> None:
    c = C("dispatched", t(0), t(0), reported_at=t(0))
    assignment_entry(c, "justice", "department", "assist", "dispatched", t(5), required=True)
    assignment_entry(c, "police", "department", "lead", "done", t(10))
    assert c.status == "dispatched"
    assignment_entry(c, "justice", "department", "assist", "returned", t(20))
    assert (c.status, c.resolved_at) == ("resolved", t(10))


def test_units_only_do_not_resolve_the_case() -> None:
    rows = [A("P-1", "unit", "responder", False, "done", t(9), t(1), done_at=t(9))]
    assert set(derived_stage(rows)) == {"dispatched"}


def test_producer_entry_behind_the_responders_is_late() -> None:
    c = C("registered", t(0), t(0), reported_at=t(0))
    assignment_entry(c, "P-1", "unit", "responder", "on_scene", t(30))
    assert c.status == "on_scene"
    assert case_entry(c, "dispatched", t(40)) == "late"
    assert (c.status, c.dispatched_at) == ("on_scene", t(30))
    # Without responders there, the old rule stands: an impossible transition.
    d = C("on_scene", t(0), t(30), reported_at=t(0))
    assert case_entry(d, "dispatched", t(40)) == "dead"


def test_a_closed_case_does_not_follow() -> None:
    c = C("closed", t(0), t(100), reported_at=t(0), closed_at=t(100))
    assignment_entry(c, "police", "department", "lead", "done", t(200))
    assert c.status == "closed"


# -- the property ------------------------------------------------------------------------
UNIT_PATH = ["dispatched", "accepted", "en_route", "on_scene", "done"]
DEPT_PATH = ["dispatched", "accepted", "done"]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(front, rest): the case's creation and the console's dispatch of the required
    responders come first (they create the case and its lead set); everything else — the
    producer's case-level entries and every responder's progress — in time order."""
    front: list[tuple[object, ...]] = [("case", "reported", t(0))]
    rest: list[tuple[object, ...]] = []
    dispatch_end = draw(st.integers(1, 30))

    def path(steps: list[str], endings: list[str]) -> list[tuple[str, datetime]]:
        end = draw(st.sampled_from(endings))
        limit = steps.index(end) if end in steps else len(steps) - 1
        middle = [s for s in steps[1:limit] if draw(st.booleans())] + [end]
        times = sorted(draw(st.lists(st.integers(dispatch_end, 400), min_size=len(middle),
                                     max_size=len(middle))))  # fmt: skip
        first = ("dispatched", t(draw(st.integers(0, dispatch_end - 1))))
        return [first, *((s, t(x)) for s, x in zip(middle, times, strict=True))]

    lead = path(DEPT_PATH, ["done", "accepted"])
    front.append(("asg", "police", "department", "lead", True, *lead[0]))
    rest += [("asg", "police", "department", "lead", True, s, ts) for s, ts in lead[1:]]
    if draw(st.booleans()):
        req = path(DEPT_PATH, ["done", "accepted", "returned"])
        front.append(("asg", "justice", "department", "assist", True, *req[0]))
        rest += [("asg", "justice", "department", "assist", True, s, ts) for s, ts in req[1:]]
    for name in ["market", "mediation"][: draw(st.integers(0, 2))]:
        rest += [("asg", name, "department", "assist", False, s, ts)
                 for s, ts in path(DEPT_PATH, ["done", "returned", "accepted"])]  # fmt: skip
    for name in ["P-1", "P-2", "P-3"][: draw(st.integers(0, 3))]:
        steps = path(UNIT_PATH, ["done", "on_scene", "returned", "en_route"])
        rest += [("asg", name, "unit", "responder", False, s, ts) for s, ts in steps]
    producer = [
        s for s in ["registered", "dispatched", "on_scene", "resolved"] if draw(st.booleans())
    ]
    times = sorted(
        draw(st.lists(st.integers(1, 500), min_size=len(producer), max_size=len(producer)))
    )
    rest += [("case", s, t(ts)) for s, ts in zip(producer, times, strict=True)]
    return front, rest


def run(events: list[tuple[object, ...]]) -> C:
    c = C("reported", t(0), t(0))
    seen_statuses: list[str] = []
    for ev in events:
        if ev[0] == "case":
            _, status, ts = ev
            assert isinstance(status, str) and isinstance(ts, datetime)
            if status == "reported" and c.reported_at is None:
                c.reported_at = ts
                continue
            before = c.status
            case_entry(c, status, ts)
        else:
            _, who, kind, role, required, status, ts = ev
            before = c.status
            assignment_entry(c, who, kind, role, status, ts, required)  # type: ignore[arg-type]
        # Never backwards.
        assert RANK[c.status] >= RANK[before], (before, c.status, ev)
        seen_statuses.append(c.status)
    return c


def ordered(
    front: list[tuple[object, ...]], rest: list[tuple[object, ...]]
) -> list[tuple[object, ...]]:
    return front + sorted(rest, key=lambda ev: ev[-1])  # type: ignore[arg-type,return-value]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), history=histories())
def test_any_arrival_order_ends_as_the_ordered_history(
    data: st.DataObject, history: tuple[list[tuple[object, ...]], list[tuple[object, ...]]]
) -> None:
    front, rest = history
    expected = state(run(ordered(front, rest)))
    shuffled = data.draw(st.permutations(rest))
    dupes = data.draw(st.lists(st.sampled_from(rest), max_size=5)) if rest else []
    arrival = front + list(shuffled)
    for ev in dupes:  # a duplicate (a producer's retry) arrives anywhere after its original
        arrival.insert(data.draw(st.integers(arrival.index(ev) + 1, len(arrival))), ev)
    assert state(run(arrival)) == expected


def _typing_check(a: A) -> AssignmentLike:  # the dataclass is a valid view
    return a
