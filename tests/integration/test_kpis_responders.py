"""The responder KPIs (docs/kpis.md "Responders") against a hand-computed fixture: the nine
cases of tests/helpers.fixture_cases with assignments and callbacks on some of them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from helpers import SH, fixture_cases, local

from dashboard.models import Assignment
from dashboard.runtime import Runtime
from dashboard.services.kpis import day_period, responder_kpis

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=SH).astimezone(UTC)


def asg(case: str, who: str, dispatched: datetime, *, kind: str = "department",
        role: str = "assist", accept_s: int = 300, **times: Any) -> Assignment:  # fmt: skip
    status = next(
        (s for s in ("transferred", "returned", "done", "on_scene", "accepted")
         if times.get(f"{s}_at")), "dispatched",
    )  # fmt: skip
    return Assignment(
        case_id=case, assignee_id=who, kind=kind, role=role, required=role == "lead",
        status=status, dispatched_at=dispatched, status_ts=dispatched,
        accept_due_at=dispatched + timedelta(seconds=accept_s), escalation=0, urge_count=0,
        version=1, created_at=dispatched, updated_at=dispatched, **times,
    )  # fmt: skip


@pytest.fixture
def loaded(runtime: Runtime) -> Runtime:
    cases = {c.id: c for c in fixture_cases()}
    cases["A"].callback_result = "satisfied"
    cases["B"].callback_result = "unsatisfied"
    cases["G"].callback_result = "unreachable"
    with runtime.db.write() as session:
        session.add_all(cases.values())
        session.flush()
        session.add_all([
            # A: joint. police accepted in 60 s (on time); justice in 360 s (late, due 300 s).
            asg("A", "police", local(23, 9, 1), role="lead", accepted_at=local(23, 9, 2)),
            asg("A", "justice", local(23, 9, 1), accepted_at=local(23, 9, 7)),
            asg("A", "P-1", local(23, 9, 1), kind="unit", role="responder", accept_s=60,
                on_scene_at=local(23, 9, 5)),
            # B: city_mgmt done in 1680 s without accepting first (late); market returned it
            # before its deadline (no acceptance, not late): one department left, not joint.
            asg("B", "city_mgmt", local(23, 10, 2), role="lead", done_at=local(23, 10, 30)),
            asg("B", "market", local(23, 10, 2), returned_at=local(23, 10, 4)),
            # C: police transferred it to justice before its deadline; justice accepted in
            # 60 s; the station accepted in 60 s: justice + the station, joint.
            asg("C", "police", local(23, 11, 0, 30), role="lead",
                transferred_at=local(23, 11, 3)),
            asg("C", "justice", local(23, 11, 3), role="lead", accepted_at=local(23, 11, 4)),
            asg("C", "Z1", local(23, 11, 0, 30), kind="station", accepted_at=local(23, 11, 1, 30)),
            # I: police never accepted; its deadline passed while it waited.
            asg("I", "police", local(23, 14), role="lead"),
            # H: the day before: in no figure.
            asg("H", "police", local(22, 23, 59, 30), accepted_at=local(23, 0, 30)),
        ])  # fmt: skip
    return runtime


def test_responder_kpis_against_the_hand_computed_fixture(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        kpis = responder_kpis(session, period=day_period(date(2026, 11, 23), SH), now=NOW)
    assert kpis == {
        "joint_rate": pytest.approx(2 / 6),  # A C of the dispatched A B C F G I
        "acceptance_p50_s": 60.0,  # [60, 60, 60, 360, 1680]
        "acceptance_p90_s": pytest.approx(1152.0),  # rank 3.6: 360 + 0.6 × 1320
        "on_time_acceptance_rate": 0.5,  # on time: A police, C justice, C Z1; late: A
        # justice, B city_mgmt, I police (waited past its deadline)
        "transfer_count": 1,  # C police
        "return_count": 1,  # B market
        "callback_rate": 0.75,  # A B G of the resolved A B F G
        "satisfaction_rate": 0.5,  # A of the reached A B (G unreachable)
    }


def test_an_empty_period_gives_zero_counts_and_null_rates(loaded: Runtime) -> None:
    with loaded.db.read() as session:
        kpis = responder_kpis(session, period=day_period(date(2026, 11, 1), SH), now=NOW)
    assert kpis == {
        "joint_rate": None, "acceptance_p50_s": None, "acceptance_p90_s": None,
        "on_time_acceptance_rate": None, "transfer_count": 0, "return_count": 0,
        "callback_rate": None, "satisfaction_rate": None,
    }  # fmt: skip
