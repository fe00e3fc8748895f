"""Responders on a case, end to end below the screens: the console's dispatch of several
assignees, their progress through `lq:assignments` (worker, dead letters, exactly once),
the case stage following them, lq:tasks for the responders' systems, 督办 escalation,
callback and rework, closure verification (real Redis + database)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from helpers import drain
from sqlalchemy import select

from dashboard.live.outbox import TASKS, ChangeLog
from dashboard.models import Assignment, AuditEvent, Case, CaseEvent, Department, Unit, Zone
from dashboard.runtime import Runtime
from dashboard.services.accounts import Principal
from dashboard.services.assignments import Rules, execute, sweep_escalations
from dashboard.services.dispatch import DispatchError
from dashboard.streams import Producer
from dashboard.worker.loop import Worker

LEAD = Principal("user", 1, "lead1", "lead")
OPERATOR = Principal("user", 2, "op1", "operator")
VIEWER = Principal("user", 3, "v1", "viewer")


def now_ms(offset_s: float = 0) -> int:
    return int((time.time() + offset_s) * 1000)


@pytest.fixture
def worker(runtime: Runtime) -> Worker:
    with runtime.db.write() as session:
        for code, name in [("police", "公安"), ("justice", "司法所"), ("market", "市场监管")]:
            session.add(Department(id=code, name=name))
        session.add(Unit(id="P-1", name="P-1", kind="patrol"))
        session.add(Zone(code="Z1", name="第一巡区", geometry={}))
    w = Worker(runtime, None, consumer="test-worker")
    w.prepare()
    return w


def new_case(runtime: Runtime, producer: Producer, worker: Worker, case_id: str = "C-1",
             **extra: Any) -> Case:  # fmt: skip
    fields: dict[str, Any] = {
        "id": case_id, "status": "registered", "ts": now_ms(-120), "lat": 29.37,
        "lon": 106.26, "category": "dispute",
    }  # fmt: skip
    fields.update(extra)
    producer.incident(**fields)
    drain(worker)
    return case(runtime, case_id)


def case(runtime: Runtime, case_id: str = "C-1") -> Case:
    with runtime.db.read() as session:
        row = session.get(Case, case_id)
        assert row is not None
        return row


def rows(runtime: Runtime, case_id: str = "C-1") -> dict[str, Assignment]:
    with runtime.db.read() as session:
        found = session.scalars(
            select(Assignment).where(Assignment.case_id == case_id).order_by(Assignment.id)
        )
        return {f"{a.assignee_id}#{a.id}": a for a in found}


def by_assignee(runtime: Runtime, case_id: str = "C-1") -> dict[str, Assignment]:
    return {a.assignee_id: a for a in rows(runtime, case_id).values()}


def act(runtime: Runtime, action: str, body: dict[str, Any], *, who: Principal = LEAD,
        case_id: str = "C-1") -> Any:  # fmt: skip
    with runtime.db.write() as session:
        out = execute(
            session, principal=who, action=action, case_id=case_id,
            body={"version": case(runtime, case_id).version, **body}, now=runtime.now(),
            policy=runtime.policy, rules=Rules.from_settings(runtime.settings, runtime.policy),
            stream=runtime.keys.changes, zone=runtime.settings.zone,
        )  # fmt: skip
    ChangeLog(runtime.redis, runtime.keys, 10_000).publish(runtime.db, out.tasks, now=runtime.now(),
                                                          stream=TASKS)  # fmt: skip
    return out


def dispatch_three(runtime: Runtime) -> Any:
    return act(
        runtime, "dispatch",
        {"assignees": [
            {"id": "police", "kind": "department", "role": "lead"},
            {"id": "justice", "kind": "department", "role": "assist", "required": True},
            {"id": "P-1", "kind": "unit"},
        ], "note": "联勤: 派出所主办, 司法所协办"},
    )  # fmt: skip


def dead(runtime: Runtime) -> list[tuple[str, str]]:
    out = []
    for _, f in runtime.redis.xrange(runtime.keys.dead):
        out.append((f[b"code"].decode(), f.get(b"field", b"").decode()))
    return out


def test_joint_case_follows_its_responders(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    out = dispatch_three(runtime)
    assert out.effect == "dispatched"
    assert {a["assignee"]: a["role"] for a in out.case["assignments"]} == {
        "police": "lead", "justice": "assist", "P-1": "responder",
    }  # fmt: skip
    c = case(runtime)
    assert (c.status, c.department_id, c.unit_id) == ("dispatched", "police", "P-1")
    # Each responder's system learns of its assignment on lq:tasks, with its own group.
    runtime.redis.xgroup_create(runtime.keys.tasks, "justice-sys", id="0")
    got = runtime.redis.xreadgroup("justice-sys", "c1", {runtime.keys.tasks: ">"})
    tasks = [f for _, entries in got for _, f in entries]
    assert sorted(f[b"assignee"].decode() for f in tasks) == ["P-1", "justice", "police"]
    assert {f[b"action"] for f in tasks} == {b"dispatched"}
    # Their progress comes back on lq:assignments.
    producer.assignment(case="C-1", assignee="police", kind="department", status="accepted",
                        ts=now_ms(-50))  # fmt: skip
    producer.assignment(case="C-1", assignee="justice", kind="department", status="accepted",
                        ts=now_ms(-45))  # fmt: skip
    producer.assignment(case="C-1", assignee="P-1", kind="unit", status="on_scene",
                        ts=now_ms(-40))  # fmt: skip
    drain(worker)
    assert case(runtime).status == "on_scene"
    a = by_assignee(runtime)
    assert (a["police"].status, a["justice"].status, a["P-1"].status) == (
        "accepted", "accepted", "on_scene",
    )  # fmt: skip
    producer.assignment(case="C-1", assignee="police", kind="department", status="done",
                        ts=now_ms(-20), note="调解成功")  # fmt: skip
    drain(worker)
    assert case(runtime).status == "on_scene"  # the required co-handler is not done
    producer.assignment(case="C-1", assignee="justice", kind="department", status="done",
                        ts=now_ms(-10))  # fmt: skip
    drain(worker)
    c = case(runtime)
    assert c.status == "resolved" and c.resolved_at is not None
    assert by_assignee(runtime)["police"].result == "调解成功"
    with runtime.db.read() as session:
        events = session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == "C-1", CaseEvent.kind == "assignment")
        ).all()
    assert {e.actor for e in events} >= {"department:police", "unit:P-1", LEAD.actor}
    assert dead(runtime) == []


def test_dead_letters_with_their_reasons(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    producer.assignment(case="NOPE", assignee="police", kind="department", status="accepted",
                        ts=now_ms(-5))  # fmt: skip
    producer.assignment(case="C-1", assignee="ghost", kind="department", status="accepted",
                        ts=now_ms(-5))  # fmt: skip
    producer.assignment(case="C-1", assignee="police", kind="department", status="on_scene",
                        ts=now_ms(-5))  # fmt: skip
    producer.assignment(case="C-1", assignee="P-1", kind="unit", status="done", ts=now_ms(-4))
    producer.assignment(case="C-1", assignee="P-1", kind="unit", status="returned",
                        reason="not ours", ts=now_ms(-3))  # fmt: skip
    producer.assignment(case="C-1", assignee="justice", kind="department", status="transferred",
                        to="ghost", reason="x", ts=now_ms(-3))  # fmt: skip
    producer.assignment(case="C-1", assignee="police", kind="department", status="returned",
                        ts=now_ms(-3))  # fmt: skip
    drain(worker)
    assert sorted(dead(runtime)) == sorted([
        ("unknown_case", "case"), ("unknown_assignee", "assignee"), ("illegal_move", "status"),
        ("illegal_move", "status"), ("unknown_assignee", "to"), ("missing_field", "reason"),
    ])  # fmt: skip
    assert by_assignee(runtime)["P-1"].status == "done"


def test_exactly_once_and_transfer_chain(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    producer.assignment(case="C-1", assignee="justice", kind="department", status="transferred",
                        to="market", reason="市场纠纷, 属市场监管", ts=now_ms(-5))  # fmt: skip
    drain(worker)
    entries = runtime.redis.xrange(runtime.keys.assignments)
    version = case(runtime).version
    # The same entries handled again (a redelivery): nothing changes.
    result = worker.handle({runtime.keys.assignments: [(e.decode(), f) for e, f in entries]})
    assert result.applied == 1 and not result.dead
    assert case(runtime).version == version
    a = by_assignee(runtime)
    assert (a["justice"].status, a["justice"].transferred_to) == ("transferred", "market")
    assert (a["market"].parent_id, a["market"].status, a["market"].required) == (
        a["justice"].id, "dispatched", True,
    )  # fmt: skip
    assert len(rows(runtime)) == 4
    # The receiving department learns of it on lq:tasks.
    tasks = [f for _, f in runtime.redis.xrange(runtime.keys.tasks)]
    assert any(f[b"assignee"] == b"market" and f[b"action"] == b"transferred_in" for f in tasks)


def test_producer_entry_behind_responders_is_late_not_dead(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    producer.assignment(case="C-1", assignee="P-1", kind="unit", status="on_scene",
                        ts=now_ms(-30))  # fmt: skip
    drain(worker)
    producer.incident(id="C-1", status="dispatched", ts=now_ms(-10))
    drain(worker)
    assert case(runtime).status == "on_scene"
    assert dead(runtime) == []


def test_rules_of_the_console_actions(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    with pytest.raises(DispatchError) as exc:
        act(runtime, "dispatch", {"assignees": [{"id": "police", "kind": "department"}]},
            who=VIEWER)  # fmt: skip
    assert exc.value.status == 403
    with pytest.raises(DispatchError) as exc:
        act(runtime, "dispatch", {"assignees": [
            {"id": "police", "kind": "department", "role": "lead"},
            {"id": "justice", "kind": "department", "role": "lead"}]})  # fmt: skip
    assert (exc.value.status, exc.value.code) == (422, "bad_input")
    with pytest.raises(DispatchError) as exc:
        act(runtime, "dispatch", {"assignees": [{"id": "ghost", "kind": "department"}]})
    assert (exc.value.status, exc.value.code) == (422, "unknown_reference")
    with pytest.raises(DispatchError) as exc:
        act(runtime, "callback", {"result": "satisfied"})
    assert (exc.value.status, exc.value.code) == (409, "not_resolved")
    with pytest.raises(DispatchError) as exc:
        with runtime.db.write() as session:
            execute(
                session, principal=LEAD, action="urge", case_id="C-1",
                body={"version": 99, "assignment": 1, "note": "x"}, now=runtime.now(),
                policy=runtime.policy, rules=Rules(), stream=runtime.keys.changes,
                zone=runtime.settings.zone,
            )  # fmt: skip
    assert exc.value.status == 409 and exc.value.code == "stale_version"
    # The first department leads when none is marked.
    two = [{"id": "justice", "kind": "department"}, {"id": "police", "kind": "department"}]
    out = act(runtime, "dispatch", {"assignees": two})
    assert {a["assignee"]: a["role"] for a in out.case["assignments"]} == {
        "justice": "lead", "police": "assist",
    }  # fmt: skip
    with pytest.raises(DispatchError) as exc:
        act(runtime, "dispatch", {"assignees": [{"id": "police", "kind": "department"}]})
    assert (exc.value.status, exc.value.code) == (409, "already_assigned")


def test_return_transfer_urge_on_behalf(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    ids = {a.assignee_id: a.id for a in rows(runtime).values()}
    with pytest.raises(DispatchError) as exc:
        act(runtime, "urge", {"assignment": ids["police"]})
    assert exc.value.fields == {"note": "required: what the lead asks of the responder (督办)"}
    out = act(runtime, "urge", {"assignment": ids["police"], "note": "请尽快签收"})
    assert out.effect == "urged"
    assert by_assignee(runtime)["police"].urge_count == 1
    # An operator records a unit's radio report on its behalf.
    out = act(runtime, "progress", {"assignment": ids["P-1"], "status": "on_scene"},
              who=OPERATOR)  # fmt: skip
    assert by_assignee(runtime)["P-1"].entered_by == OPERATOR.actor
    assert case(runtime).status == "on_scene"
    with pytest.raises(DispatchError) as exc:
        act(runtime, "progress", {"assignment": ids["P-1"], "status": "accepted"})
    assert (exc.value.status, exc.value.code) == (409, "illegal_move")
    out = act(runtime, "return", {"assignment": ids["justice"], "reason": "非本部门职责"})
    assert by_assignee(runtime)["justice"].status == "returned"
    out = act(runtime, "transfer", {"assignment": ids["police"], "to": "market",
                                    "reason": "市场纠纷"})  # fmt: skip
    a = by_assignee(runtime)
    assert (a["market"].role, a["market"].parent_id) == ("lead", ids["police"])
    assert case(runtime).department_id == "market"
    with runtime.db.read() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"case.dispatch", "case.urge", "case.progress", "case.return",
            "case.transfer"} <= actions  # fmt: skip
    changes = [f[b"action"] for _, f in runtime.redis.xrange(runtime.keys.changes)]
    assert changes == []  # published by perform() / the relay, not by execute() itself


def test_callback_unsatisfied_is_rework_and_close_needs_a_reason(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    for who, kind in [("police", "department"), ("justice", "department")]:
        producer.assignment(case="C-1", assignee=who, kind=kind, status="done", ts=now_ms(-5))
    drain(worker)
    assert case(runtime).status == "resolved"
    out = act(runtime, "callback", {"result": "unsatisfied", "note": "问题未解决"})
    assert out.effect == "rework"
    c = case(runtime)
    assert (c.status, c.rework_count, c.callback_result) == ("dispatched", 1, "unsatisfied")
    police = [a for a in rows(runtime).values() if a.assignee_id == "police"]
    assert [a.status for a in police] == ["done", "dispatched"]
    assert police[1].parent_id == police[0].id and police[1].role == "lead"
    # The lead's new assignment done again: resolved again; the old done one counts no more.
    producer.assignment(case="C-1", assignee="police", kind="department", status="done",
                        ts=now_ms(1))  # fmt: skip
    drain(worker)
    assert case(runtime).status == "resolved"
    with pytest.raises(DispatchError) as exc:
        act(runtime, "close", {})
    assert exc.value.status == 422 and "reason" in exc.value.fields
    out = act(runtime, "close", {"reason": "电话无人接听三次, 核查现场已解决"})
    c = case(runtime)
    assert (c.status, c.closed_by, c.close_reason) == (
        "closed", LEAD.actor, "电话无人接听三次, 核查现场已解决",
    )  # fmt: skip


def test_iot_case_closes_without_callback(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    new_case(runtime, producer, worker, source="iot")
    act(runtime, "dispatch", {"assignees": [{"id": "police", "kind": "department"}]})
    producer.assignment(case="C-1", assignee="police", kind="department", status="done",
                        ts=now_ms(-1))  # fmt: skip
    drain(worker)
    assert act(runtime, "close", {}).effect == "closed"


def test_escalation_levels(runtime: Runtime, producer: Producer, worker: Worker) -> None:
    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    now = runtime.now()
    with runtime.db.write() as session:  # police was dispatched 5 min ago: due now - 1 s
        a = session.scalars(select(Assignment).where(Assignment.assignee_id == "police")).one()
        a.dispatched_at = now - timedelta(seconds=301)
        a.accept_due_at = now - timedelta(seconds=1)
    levels = []
    for late in (0, 300, 600):
        with runtime.db.write() as session:
            sweep_escalations(session, now=now + timedelta(seconds=late))
        levels.append((by_assignee(runtime)["police"].escalation,
                       by_assignee(runtime)["justice"].escalation))  # fmt: skip
    # justice (dispatched now, 5 min to accept) is late just after +300 s, 1× late at +600 s.
    assert levels == [(1, 0), (2, 1), (3, 2)]
    with runtime.db.read() as session:
        audits = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "assignment.escalate")
        ).all()
    assert [e.detail["level"] for e in audits if e.detail["assignee"] == "police"] == [1, 2, 3]
    # The worker's periodic job (the unit had 1 min to accept: it is late, level 1).
    with runtime.db.write() as session:
        a = session.scalars(select(Assignment).where(Assignment.assignee_id == "P-1")).one()
        a.dispatched_at, a.accept_due_at = now - timedelta(seconds=61), now - timedelta(seconds=1)
        a.escalation = 0
    assert worker.escalate() == 1
    tasks = [f for _, f in runtime.redis.xrange(runtime.keys.tasks)]
    assert [f[b"level"] for f in tasks if f[b"action"] == b"escalated"] == [b"1"]


def test_the_case_reads_back_with_its_responders(
    runtime: Runtime, producer: Producer, worker: Worker
) -> None:
    from dashboard.services.cases import get_case

    new_case(runtime, producer, worker)
    dispatch_three(runtime)
    with runtime.db.read() as session:
        data = get_case(session, case_id="C-1", zone=runtime.settings.zone, now=runtime.now())
    assert data is not None
    assert [(a["assignee"], a["kind"], a["role"], a["status"]) for a in data["assignments"]] == [
        ("police", "department", "lead", "dispatched"),
        ("justice", "department", "assist", "dispatched"),
        ("P-1", "unit", "responder", "dispatched"),
    ]
    first = data["assignments"][0]
    assert first["times"]["dispatched"] and first["accept_due"] and first["escalation"] == 0
    assert (data["callback"], data["closed_by"], data["close_reason"]) == (None, None, None)
