"""The order property of tests/unit/test_assignment_rules.py on the real appliers and the
real database: a case's history applied in time order and the same history shuffled, with
duplicates, through services.ingest.apply_incidents and services.assignments
.apply_assignment_entries, end in the same case and assignment rows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dashboard.contract.assignments import parse_assignment
from dashboard.contract.entries import parse_incident
from dashboard.geo import GridIndex
from dashboard.models import Assignment, Case, Department, Unit
from dashboard.runtime import Runtime
from dashboard.services.assignments import Rules, apply_assignment_entries
from dashboard.services.ingest import apply_incidents
from dashboard.vocabulary import STAGE_COLUMNS

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)
COUNTER = itertools.count()


def ts(s: int) -> str:
    return (T0 + timedelta(seconds=s)).isoformat()


@st.composite
def history(draw: st.DrawFn) -> tuple[list[dict[str, str]], list[tuple[str, dict[str, str]]]]:
    """(front, rest) with ``{case}`` in place of the case id; front: the case's creation and
    its lead's dispatch."""
    front = [{"status": "reported", "ts": ts(0), "lat": "29.37", "lon": "106.26",
              "category": "dispute"}]  # fmt: skip
    rest: list[tuple[str, dict[str, str]]] = []
    lead = {"assignee": "police", "kind": "department", "role": "lead"}
    rest_lead = []
    for status in ("accepted", "done"):
        if draw(st.booleans()):
            rest_lead.append(status)
    times = sorted(draw(st.lists(st.integers(20, 500), min_size=len(rest_lead),
                                 max_size=len(rest_lead), unique=True)))  # fmt: skip
    for status, t in zip(rest_lead, times, strict=True):
        rest.append(("a", {**lead, "status": status, "ts": ts(t)}))
    for unit in ("P-1", "P-2")[: draw(st.integers(0, 2))]:
        steps = [s for s in ("dispatched", "en_route", "on_scene", "done") if draw(st.booleans())]
        times = sorted(draw(st.lists(st.integers(10, 500), min_size=len(steps),
                                     max_size=len(steps), unique=True)))  # fmt: skip
        for status, t in zip(steps, times, strict=True):
            rest.append(("a", {"assignee": unit, "kind": "unit", "status": status, "ts": ts(t)}))
    # A sane producer: its own statuses in time order (README "The lifecycle").
    producer = [s for s in ("registered", "dispatched", "on_scene") if draw(st.booleans())]
    times = sorted(draw(st.lists(st.integers(1, 500), min_size=len(producer),
                                 max_size=len(producer), unique=True)))  # fmt: skip
    for status, t in zip(producer, times, strict=True):
        rest.append(("i", {"status": status, "ts": ts(t)}))
    return front, rest


def apply(rt: Runtime, case_id: str, front: list[dict[str, str]],
          events: list[tuple[str, dict[str, str]]]) -> None:  # fmt: skip
    with rt.db.write() as session:
        entries = [
            (f"{next(COUNTER)}-0", parse_incident({"id": case_id, **f}, categories=["dispute"],
                                                  now=NOW))
            for f in front
        ]  # fmt: skip
        apply_incidents(session, entries, stream="t:i", policy=rt.policy, grids=GridIndex([]),
                        now=NOW)  # fmt: skip
        lead = {"case": case_id, "assignee": "police", "kind": "department", "role": "lead",
                "status": "dispatched", "ts": ts(5)}  # fmt: skip
        apply_assignment_entries(session, [(f"{next(COUNTER)}-0", parse_assignment(lead, now=NOW))],
                                 stream="t:a", rules=Rules(policy=rt.policy), policy=rt.policy,
                                 now=NOW)  # fmt: skip
        for kind, fields in events:
            # A duplicate is the same entry id again (a redelivery).
            eid = case_id[0] + (fields.get("_id") or f"{next(COUNTER)}-0")
            clean = {k: v for k, v in fields.items() if k != "_id"}
            if kind == "i":
                msg = parse_incident({"id": case_id, **clean}, categories=["dispute"], now=NOW)
                apply_incidents(session, [(eid + "i", msg)], stream="t:i", policy=rt.policy,
                                grids=GridIndex([]), now=NOW)  # fmt: skip
            else:
                msg_a = parse_assignment({"case": case_id, **clean}, now=NOW)
                apply_assignment_entries(session, [(eid + "a", msg_a)], stream="t:a",
                                         rules=Rules(policy=rt.policy), policy=rt.policy,
                                         now=NOW)  # fmt: skip


def state(rt: Runtime, case_id: str) -> Any:
    with rt.db.read() as session:
        c = session.get(Case, case_id)
        assert c is not None
        rows = session.scalars(select(Assignment).where(Assignment.case_id == case_id)).all()
        return (
            c.status,
            tuple(getattr(c, col) for col in STAGE_COLUMNS.values()),
            sorted(
                (a.assignee_id, a.role, a.status, a.dispatched_at, a.accepted_at, a.en_route_at,
                 a.on_scene_at, a.done_at)
                for a in rows
            ),
        )  # fmt: skip


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), h=history())
def test_shuffled_history_ends_as_the_ordered_one(runtime: Runtime, data: st.DataObject,
                                                  h: Any) -> None:  # fmt: skip
    with runtime.db.write() as session:
        if session.get(Department, "police") is None:
            session.add_all([Department(id="police", name="p"), Unit(id="P-1"), Unit(id="P-2")])
    front, rest = h
    n = next(COUNTER)
    rest = [(k, {**f, "_id": f"{n}{i}"}) for i, (k, f) in enumerate(rest)]
    ordered = sorted(rest, key=lambda e: e[1]["ts"])
    shuffled = list(data.draw(st.permutations(rest)))
    for e in data.draw(st.lists(st.sampled_from(rest), max_size=3)) if rest else []:
        shuffled.insert(data.draw(st.integers(shuffled.index(e) + 1, len(shuffled))), e)
    apply(runtime, f"O-{n}", front, ordered)
    apply(runtime, f"S-{n}", front, shuffled)
    assert state(runtime, f"S-{n}") == state(runtime, f"O-{n}")
