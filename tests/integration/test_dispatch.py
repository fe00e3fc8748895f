"""The dispatch actions and the write API: roles, input, optimistic concurrency, lq:changes,
the outbox, and nearest-unit ranking (real Redis, real database, the real worker)."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from helpers import drain, make_token
from sqlalchemy import select

from dashboard.config import Settings
from dashboard.geo import haversine_m
from dashboard.live.outbox import ChangeLog, pending
from dashboard.models import AuditEvent, Case, CaseEvent, ChangeOutbox, Department, Unit
from dashboard.runtime import Runtime
from dashboard.services import accounts, dispatch
from dashboard.services.accounts import ROLES, Principal
from dashboard.streams import Producer
from dashboard.web.app import runtime_of
from dashboard.worker.loop import Worker

PASSWORD = "correct horse battery"
LAT, LON = 29.3702, 106.2610


@pytest.fixture
def producer(rt: Runtime) -> Producer:
    return Producer(rt.redis, rt.settings)


@pytest.fixture
def worker(rt: Runtime) -> Worker:
    w = Worker(rt, None, consumer="dispatch-test")
    w.prepare()
    return w


@pytest.fixture(autouse=True)
def reference_data(rt: Runtime) -> None:
    with rt.db.write() as session:
        session.add_all(
            [
                Department(id="police", name="公安派出所", name_en="Police"),
                Department(id="city_mgmt", name="城市管理", name_en="City management"),
                Unit(id="P-001", name="巡逻一组", kind="patrol", department_id="police"),
                Unit(id="P-002", name="巡逻二组", kind="patrol", department_id="police"),
                Unit(id="V-001", name="城管车一", kind="vehicle", department_id="city_mgmt"),
            ]
        )


def now_ms(offset_s: float = 0) -> int:
    return int((time.time() + offset_s) * 1000)


def make_case(
    producer: Producer, worker: Worker, case_id: str, status: str = "registered", **extra: Any
) -> None:
    producer.incident(
        id=case_id, status="reported", ts=now_ms(-120), lat=LAT, lon=LON, category="dispute",
        title="邻里噪音纠纷",
    )  # fmt: skip
    if status != "reported":
        producer.incident(id=case_id, status=status, ts=now_ms(-60), **extra)
    drain(worker)


def case_row(rt: Runtime, case_id: str) -> Case:
    with rt.db.read() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


def changes_entries(rt: Runtime) -> list[tuple[str, dict[str, str]]]:
    return [
        (eid.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for eid, fields in rt.redis.xrange(rt.keys.changes)
    ]


def post(
    client: FlaskClient, case_id: str, action: str, body: Any, token: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"/api/v1/cases/{case_id}/{action}", json=body, headers=headers)


def body_for(action: str, version: int) -> dict[str, Any]:
    return {
        "assign": {
            "unit": "P-001",
            "department": "police",
            "note": "最近的巡逻组",
            "version": version,
        },
        "priority": {"priority": 1, "version": version},
        "note": {"note": "已电话联系报告人", "version": version},
        "cancel": {"reason": "重复上报", "version": version},
        "reopen": {"note": "群众再次反映", "version": version},
    }[action]


DESK = {"operator", "lead", "admin"}
LEADS = {"lead", "admin"}
# Role × action, the policy's table (dashboard/policy.py), as scenarios: (action, the case's
# status, its producer fields, the body's changes, the roles allowed).
SCENARIOS: dict[str, tuple[str, str, dict[str, str], dict[str, Any], set[str]]] = {
    # A new, unassigned case: operators dispatch it too (its first unit and department).
    "dispatch_new": ("assign", "registered", {}, {}, DESK),
    "dispatch_new_reported": ("assign", "reported", {}, {}, DESK),
    # Its department named already by the producer: an operator adds the unit, same department.
    "dispatch_new_same_department": (
        "assign", "registered", {"department": "police"}, {}, DESK,
    ),
    # … but replacing that department is reassigning.
    "replace_department": (
        "assign", "registered", {"department": "city_mgmt"}, {}, LEADS,
    ),
    # An assigned case: reassigning, and sending a resolved case back (rework), are leads'.
    "reassign": ("assign", "dispatched", {"unit": "P-002", "department": "police"}, {}, LEADS),
    "reassign_on_scene": ("assign", "on_scene", {"unit": "P-002"}, {}, LEADS),
    "rework": ("assign", "resolved", {"unit": "P-002"}, {}, LEADS),
    "priority": ("priority", "registered", {}, {}, LEADS),
    "note": ("note", "dispatched", {"unit": "P-002"}, {}, DESK),
    "cancel": ("cancel", "registered", {}, {}, LEADS),
    "reopen": ("reopen", "closed", {}, {}, LEADS),
}  # fmt: skip
ALLOWED = {"assign": DESK, **{a: SCENARIOS[a][4] for a in ("priority", "note", "cancel", "reopen")}}


# -- roles ----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_the_permission_matrix_over_the_api(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker, role: str
) -> None:
    token = make_token(rt, role=role, name=f"api-{role}")
    client = app.test_client()
    allowed_here = []
    for name, (action, status, extra, body, roles) in SCENARIOS.items():
        case_id = f"M-{role}-{name}"
        make_case(producer, worker, case_id, status, **extra)
        before = case_row(rt, case_id)
        response = post(
            client, case_id, action, {**body_for(action, before.version), **body}, token
        )
        if role in roles:
            assert response.status_code == 200, (role, name, response.json)
            assert case_row(rt, case_id).version == before.version + 1
            allowed_here.append(name)
        else:
            assert response.status_code == 403, (role, name, response.json)
            assert response.json["code"] == "forbidden"
            after = case_row(rt, case_id)
            assert (after.version, after.unit_id, after.department_id, after.status) == (
                before.version, before.unit_id, before.department_id, before.status,
            )  # fmt: skip
    # Only what was allowed reached the audit trail and lq:changes, each naming the token.
    actors = {fields["actor"] for _, fields in changes_entries(rt)}
    assert len(changes_entries(rt)) == len(allowed_here)
    assert actors <= {f"token:api-{role}"}


def test_an_operator_dispatches_a_new_case_once_and_then_may_not_reassign_it(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    token = make_token(rt, role="operator", name="duty")
    client = app.test_client()
    make_case(producer, worker, "OP-1")
    first = post(client, "OP-1", "assign", {"unit": "P-001", "version": 2}, token)
    assert first.status_code == 200 and first.json["case"]["status"] == "dispatched"
    assert first.json["change"]["actor"] == "token:duty"
    again = post(client, "OP-1", "assign", {"unit": "P-002", "version": 3}, token)
    assert again.status_code == 403 and again.json["code"] == "forbidden"
    assert "new, unassigned" in again.json["error"] and "shift lead" in again.json["error"]
    assert case_row(rt, "OP-1").unit_id == "P-001"
    # A lead may.
    lead = post(client, "OP-1", "assign", {"unit": "P-002", "version": 3}, make_token(rt, "lead"))
    assert lead.status_code == 200 and case_row(rt, "OP-1").unit_id == "P-002"


@pytest.mark.parametrize("role", ROLES)
def test_only_leads_act_in_bulk(rt: Runtime, producer: Producer, worker: Worker, role: str) -> None:
    cases = [f"BK-{role}-{n}" for n in (1, 2)]
    for case_id in cases:
        make_case(producer, worker, case_id)  # new and unassigned: an operator could do each
    principal = Principal("user", 1, role, role)
    items = [{"id": c, "version": 2} for c in cases]
    if role in LEADS:
        done = dispatch.perform(rt, principal=principal, action="assign", cases=items,
                                body={"unit": "P-001"})  # fmt: skip
        assert len(done) == 2
        return
    with pytest.raises(dispatch.DispatchError) as refused:
        dispatch.perform(rt, principal=principal, action="assign", cases=items,
                         body={"unit": "P-001"})  # fmt: skip
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    assert {case_row(rt, c).status for c in cases} == {"registered"}


def test_the_policy_is_one_table_that_the_service_follows() -> None:
    from dashboard import policy

    assert set(policy.PERMISSIONS["dispatch_new"]) == DESK
    assert set(policy.PERMISSIONS["bulk"]) == LEADS
    assert accounts.PERMISSIONS is policy.PERMISSIONS  # one table, re-exported
    for action, permission in dispatch.ACTION_PERMISSION.items():
        assert permission in policy.PERMISSIONS, action


def test_without_credentials_401_and_a_browser_session_needs_its_csrf_token(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "C-1")
    client = app.test_client()
    anonymous = post(client, "C-1", "assign", body_for("assign", 2))
    assert anonymous.status_code == 401 and "error" in anonymous.json
    with rt.db.write() as session:
        accounts.create_user(session, username="zhang", role="lead", password=PASSWORD)
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    client.post(
        "/login",
        data={"username": "zhang", "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"},
    )
    version = case_row(rt, "C-1").version
    no_csrf = post(client, "C-1", "assign", body_for("assign", version))
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.json["error"]
    client.get("/wall")  # sets the _csrf_token cookie, as for Dash
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    ok = client.post(
        "/api/v1/cases/C-1/assign",
        json=body_for("assign", version),
        headers={"X-CSRFToken": cookie.value},
    )
    assert ok.status_code == 200, ok.json
    assert ok.json["change"]["actor"] == "user:zhang"
    assert changes_entries(rt)[-1][1]["actor"] == "user:zhang"


# -- input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("assign", {"unit": "P-001"}, "version"),
        ("assign", {"unit": "P-001", "version": "2"}, "version"),
        ("assign", {"unit": "P-001", "version": True}, "version"),
        ("assign", {"unit": "P-001", "version": 0}, "version"),
        ("assign", {"version": 2}, "unit"),
        ("assign", {"unit": "no such unit!", "version": 2}, "unit"),
        ("assign", {"unit": "P-999", "version": 2}, "unit"),
        ("assign", {"department": "nowhere", "version": 2}, "department"),
        ("assign", {"unit": "P-001", "lng": 1, "version": 2}, "lng"),
        ("assign", {"unit": "P-001", "note": "x" * 1001, "version": 2}, "note"),
        ("assign", {"unit": "P-001", "note": "bad\x00note", "version": 2}, "note"),
        ("assign", {"unit": "P-001", "note": 7, "version": 2}, "note"),
        ("priority", {"priority": 9, "version": 2}, "priority"),
        ("priority", {"priority": "1", "version": 2}, "priority"),
        ("priority", {"version": 2}, "priority"),
        ("note", {"note": "   ", "version": 2}, "note"),
        ("cancel", {"version": 2}, "reason"),
        ("assign", [1, 2], "body"),
        ("assign", "just text", "body"),
    ],
)
def test_bad_input_is_422_with_a_reason_per_field(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker, action: str, body: Any, field: str
) -> None:
    make_case(producer, worker, "V-1")
    token = make_token(rt, role="lead")
    response = post(app.test_client(), "V-1", action, body, token)
    assert response.status_code == 422, response.json
    assert field in response.json["fields"], response.json
    assert response.json["error"]
    assert case_row(rt, "V-1").version == 2  # untouched
    assert changes_entries(rt) == []


def test_not_json_unknown_case_and_unknown_action(app: Flask, rt: Runtime) -> None:
    client = app.test_client()
    token = make_token(rt, role="lead")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    broken = client.post("/api/v1/cases/X-1/assign", data="{not json", headers=headers)
    assert broken.status_code == 422 and broken.json["fields"] == {"body": "not JSON"}
    missing = post(client, "NO-SUCH", "note", {"note": "x", "version": 1}, token)
    assert missing.status_code == 404 and missing.json["fields"] == {"id": "unknown"}
    odd = post(client, "bad id!", "note", {"note": "x", "version": 1}, token)
    assert odd.status_code == 404
    unknown = client.post("/api/v1/cases/X-1/explode", json={}, headers=headers)
    assert unknown.status_code in (404, 405)  # no such action (Dash owns the other paths)


# -- optimistic concurrency -------------------------------------------------------------------
def test_two_sessions_change_the_same_case_the_second_gets_409_and_nothing_is_lost(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-9")
    first, second = make_token(rt, "lead", "lead-a"), make_token(rt, "lead", "lead-b")
    client = app.test_client()
    seen_by_a = client.get("/api/v1/cases/HZ-9", headers={"Authorization": f"Bearer {first}"})
    seen_by_b = client.get("/api/v1/cases/HZ-9", headers={"Authorization": f"Bearer {second}"})
    version = seen_by_a.json["version"]
    assert seen_by_b.json["version"] == version

    a = post(client, "HZ-9", "assign", {"unit": "P-001", "note": "A 派", "version": version}, first)
    assert a.status_code == 200 and a.json["case"]["status"] == "dispatched"
    b = post(
        client, "HZ-9", "assign", {"unit": "V-001", "note": "B 派", "version": version}, second
    )
    assert b.status_code == 409
    assert b.json["code"] == "stale_version"
    assert "changed by someone else" in b.json["error"]
    assert b.json["version"] == version + 1 and "version" in b.json["fields"]

    case = case_row(rt, "HZ-9")
    assert (case.unit_id, case.version) == ("P-001", version + 1)  # A's change stands
    # B reloads and tries again: both changes are on record, in order, with their actors.
    b2 = post(client, "HZ-9", "assign", {"unit": "V-001", "note": "B 改派", "version": version + 1},
              second)  # fmt: skip
    assert b2.status_code == 200 and b2.json["change"]["effect"] == "reassigned"
    with rt.db.read() as session:
        events = list(
            session.scalars(
                select(CaseEvent)
                .where(CaseEvent.case_id == "HZ-9", CaseEvent.kind == "change")
                .order_by(CaseEvent.id)
            )
        )
    assert [(e.actor, e.effect, e.fields.get("unit"), e.fields.get("note")) for e in events] == [
        ("token:lead-a", "dispatched", "P-001", "A 派"),
        ("token:lead-b", "reassigned", "V-001", "B 改派"),
    ]
    assert [f["actor"] for _, f in changes_entries(rt)] == ["token:lead-a", "token:lead-b"]


def test_a_producer_message_in_between_also_makes_the_version_stale(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-10")
    token = make_token(rt, "lead")
    version = case_row(rt, "HZ-10").version
    producer.incident(id="HZ-10", status="dispatched", ts=now_ms(-1), unit="P-002")
    drain(worker)
    response = post(app.test_client(), "HZ-10", "assign", body_for("assign", version), token)
    assert response.status_code == 409 and case_row(rt, "HZ-10").unit_id == "P-002"


# -- the lq:changes entry and the outbox ---------------------------------------------------------
def test_the_lq_changes_entry_then_the_worker_pushes_the_case(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-20")
    token = make_token(rt, "lead", "cad-bridge")
    response = post(app.test_client(), "HZ-20", "assign", body_for("assign", 2), token)
    assert response.status_code == 200
    [(entry_id, fields)] = changes_entries(rt)
    change_id = response.json["change"]["id"]
    assert fields == {
        "change": change_id,
        "case": "HZ-20",
        "action": "assign",
        "actor": "token:cad-bridge",
        "ts": fields["ts"],
        "version": "3",
        "base_version": "2",
        "prev_status": "registered",
        "status": "dispatched",
        "unit": "P-001",
        "department": "police",
        "note": "最近的巡逻组",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", fields["ts"])
    with rt.db.read() as session:
        row = session.get(ChangeOutbox, change_id)
        assert row is not None and row.stream_id == entry_id and row.published_at is not None
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "case.assign")).one()
        assert (audit.actor, audit.target) == ("token:cad-bridge", "HZ-20")
    # The worker consumes the change and pushes the case's new state in a numbered delta.
    head = rt.deltas.head().seq
    assert drain(worker) == 1
    [(_, delta)] = rt.redis.xrange(rt.keys.deltas, "-", "+")[-1:]
    assert int(delta[b"seq"]) == head + 1
    assert b'"id":"HZ-20","status":"dispatched"' in delta[b"d"]
    assert b'"unit":"P-001"' in delta[b"d"]


def test_a_change_committed_while_redis_is_down_is_published_by_the_relay_once(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-30")
    lead = Principal("user", 1, "lead", "lead")
    now = rt.now()
    with rt.db.write() as session:
        outcome = dispatch.execute(
            session, principal=lead, action="priority", case_id="HZ-30",
            body={"priority": 1, "version": 2}, now=now, policy=rt.policy,
            stream=rt.keys.changes, zone=rt.settings.zone,
        )  # fmt: skip
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert ChangeLog(dead, rt.keys, 1000).publish(
        rt.db, [(outcome.change_id, outcome.fields)], now=now
    ) == 0  # fmt: skip
    assert changes_entries(rt) == []
    with rt.db.read() as session:
        assert [r.id for r in pending(session)] == [outcome.change_id]
    # Not yet: the grace period lets the web process finish its own publish first (an
    # explicit clock: a loaded machine may take longer than the grace to get here).
    log = ChangeLog(rt.redis, rt.keys, rt.settings.changes_maxlen)
    with rt.db.write() as session:
        assert log.relay(session, now=now, grace_s=rt.settings.outbox_grace_s) == 0
    with rt.db.write() as session:
        later = now + timedelta(seconds=rt.settings.outbox_grace_s + 1)
        assert log.relay(session, now=later, grace_s=rt.settings.outbox_grace_s) == 1
    [(entry_id, fields)] = changes_entries(rt)
    assert fields["change"] == outcome.change_id and fields["priority"] == "1"
    # A late retry of the fast path (or a second relay) does not write it twice.
    assert log.xadd(outcome.change_id, outcome.fields) == entry_id
    assert len(changes_entries(rt)) == 1
    with rt.db.read() as session:
        assert pending(session) == []


def test_the_worker_relays_on_its_tick(
    settings: Settings, app: Flask, producer: Producer, worker: Worker
) -> None:
    rt = runtime_of(app)
    make_case(producer, worker, "HZ-31")
    with rt.db.write() as session:
        dispatch.execute(
            session, principal=Principal("token", 1, "t", "lead"), action="note",
            case_id="HZ-31", body={"note": "n", "version": 2}, now=rt.now() - timedelta(minutes=1),
            policy=rt.policy, stream=rt.keys.changes, zone=rt.settings.zone,
        )  # fmt: skip
    assert worker.relay_changes() == 1
    assert [f["action"] for _, f in changes_entries(rt)] == ["note"]
    assert drain(worker) == 1  # and the change itself flows on like any other


def test_invalid_change_entries_are_dead_lettered(rt: Runtime, worker: Worker) -> None:
    rt.redis.xadd(rt.keys.changes, {"case": "HZ-1", "action": "explode", "actor": "user:x"})
    rt.redis.xadd(rt.keys.changes, {"case": "HZ-1", "action": "assign"})
    rt.redis.xadd(rt.keys.changes, {"case": "bad id!"})
    rt.redis.xadd(rt.keys.changes, {"case": "HZ-1"})  # a bare "re-push this case" is fine
    drain(worker)
    codes = [f[b"code"].decode() for _, f in rt.redis.xrange(rt.keys.dead)]
    assert codes == ["unknown_action", "missing_field", "bad_id"]


# -- the lifecycle rules of dashboard changes ------------------------------------------------------
def test_assign_dispatches_a_registered_case_and_flags_a_unit_already_on_another(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-40", "dispatched", unit="P-001")
    make_case(producer, worker, "HZ-41")
    token = make_token(rt, "lead")
    response = post(app.test_client(), "HZ-41", "assign", {"unit": "P-001", "version": 2}, token)
    assert response.status_code == 200
    assert response.json["warnings"] == ["unit_busy:HZ-40"]
    case = case_row(rt, "HZ-41")
    assert (case.status, case.unit_id, case.dispatched_at is not None) == ("dispatched", "P-001",
                                                                           True)  # fmt: skip
    assert case.deadline_at is not None and not case.overdue  # on scene within 5 min from now
    assert changes_entries(rt)[-1][1]["flags"] == "unit_busy:HZ-40"


def test_assigning_a_resolved_case_is_rework_and_a_closed_one_must_be_reopened(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-50", "resolved", unit="P-001")
    make_case(producer, worker, "HZ-51", "closed")
    token = make_token(rt, "lead")
    client = app.test_client()
    rework = post(client, "HZ-50", "assign", {"unit": "P-002", "version": 2}, token)
    assert rework.status_code == 200 and rework.json["change"]["effect"] == "rework"
    assert case_row(rt, "HZ-50").rework_count == 1
    closed = post(client, "HZ-51", "assign", {"unit": "P-002", "version": 2}, token)
    assert closed.status_code == 409 and closed.json["code"] == "case_closed"
    not_closed = post(client, "HZ-50", "reopen", {"version": 3}, token)
    assert not_closed.status_code == 409 and not_closed.json["code"] == "not_closed"
    same = post(client, "HZ-50", "assign", {"unit": "P-002", "version": 3}, token)
    assert same.status_code == 422 and same.json["code"] == "no_change"


def test_reopen_sets_the_floor_so_late_producer_messages_do_not_move_the_case(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-60", "closed")
    token = make_token(rt, "lead")
    response = post(app.test_client(), "HZ-60", "reopen", {"note": "再次反映", "version": 2},
                    token)  # fmt: skip
    assert response.status_code == 200 and response.json["case"]["status"] == "registered"
    reopened = case_row(rt, "HZ-60")
    assert reopened.floor_ts is not None and reopened.status == "registered"
    # A message written before the reopen arrives late: kept in the timeline, no effect.
    producer.incident(id="HZ-60", status="resolved", ts=now_ms(-30))
    drain(worker)
    assert case_row(rt, "HZ-60").status == "registered"
    producer.incident(id="HZ-60", status="dispatched", ts=now_ms(1), unit="P-002")
    drain(worker)
    assert case_row(rt, "HZ-60").status == "dispatched"


def test_cancel_needs_a_reason_and_priority_moves_the_deadline(
    app: Flask, rt: Runtime, producer: Producer, worker: Worker
) -> None:
    make_case(producer, worker, "HZ-70", "dispatched", unit="P-001")
    make_case(producer, worker, "HZ-71", "on_scene", unit="P-002")
    token = make_token(rt, "lead")
    client = app.test_client()
    before = case_row(rt, "HZ-71").deadline_at
    urgent = post(client, "HZ-71", "priority", {"priority": 1, "version": 2}, token)
    assert urgent.status_code == 200
    after = case_row(rt, "HZ-71").deadline_at
    assert before is not None and after is not None and after < before  # a quarter of the time
    cancelled = post(client, "HZ-70", "cancel", {"reason": "重复上报", "version": 2}, token)
    assert cancelled.status_code == 200 and cancelled.json["case"]["status"] == "cancelled"
    assert changes_entries(rt)[-1][1]["reason"] == "重复上报"


def test_bulk_assign_is_all_or_nothing(rt: Runtime, producer: Producer, worker: Worker) -> None:
    for case_id in ("B-1", "B-2", "B-3"):
        make_case(producer, worker, case_id)
    lead = Principal("user", 1, "lead", "lead")
    stale = [{"id": "B-1", "version": 2}, {"id": "B-2", "version": 1}, {"id": "B-3", "version": 2}]
    with pytest.raises(dispatch.DispatchError) as refused:
        dispatch.perform(rt, principal=lead, action="assign", cases=stale,
                         body={"department": "city_mgmt"})  # fmt: skip
    assert refused.value.status == 409 and list(refused.value.fields) == ["B-2"]
    assert {case_row(rt, c).status for c in ("B-1", "B-2", "B-3")} == {"registered"}
    assert changes_entries(rt) == []
    fresh = [{"id": c, "version": 2} for c in ("B-1", "B-2", "B-3")]
    outcomes = dispatch.perform(rt, principal=lead, action="assign", cases=fresh,
                                body={"department": "city_mgmt", "note": "批量"})  # fmt: skip
    assert [o.case["status"] for o in outcomes] == ["dispatched"] * 3
    batches = {f["batch"] for _, f in changes_entries(rt)}
    assert len(changes_entries(rt)) == 3 and len(batches) == 1
    viewer = Principal("user", 2, "v", "viewer")
    with pytest.raises(dispatch.DispatchError) as forbidden:
        dispatch.perform(rt, principal=viewer, action="assign", cases=fresh, body={})
    assert forbidden.value.status == 403


# -- nearest units ----------------------------------------------------------------------------
def offset(north_m: float, east_m: float) -> tuple[float, float]:
    import math

    return LAT + north_m / 111_320, LON + east_m / (111_320 * math.cos(math.radians(LAT)))


def test_nearest_units_by_eta_free_first_without_off_duty_or_stale_units(
    rt: Runtime, producer: Producer, worker: Worker
) -> None:
    placed = {
        # unit: (kind, north, east, status, ping age s)
        "A-PATROL": ("patrol", 300, 0, "available", 5),
        "B-CAR": ("vehicle", 0, 1500, "available", 5),
        "C-OFF": ("grid_worker", 100, 0, "off_duty", 5),
        "D-STALE": ("patrol", -200, 0, "available", 600),
        "E-BUSY": ("patrol", 0, -150, "available", 5),
        "F-CAR": ("vehicle", -900, 0, "available", 5),
        "G-FAR": ("patrol", 0, 30_000, "available", 5),
    }
    with rt.db.write() as session:
        for unit_id, (kind, *_rest) in placed.items():
            session.add(Unit(id=unit_id, name=unit_id, kind=kind))
    for unit_id, (_, north, east, status, age) in placed.items():
        lat, lon = offset(north, east)
        producer.ping(unit=unit_id, lat=lat, lon=lon, ts=now_ms(-age), status=status)
    make_case(producer, worker, "OTHER", "dispatched", unit="E-BUSY")
    make_case(producer, worker, "HERE")
    with rt.db.read() as session:
        ranked = dispatch.nearest_units(
            session, rt.latest, lat=LAT, lon=LON, now=rt.now(), stale_s=300,
            speeds_kmh=rt.settings.unit_speeds_kmh, radius_m=10_000, limit=8, case_id="HERE",
        )  # fmt: skip
    assert [u["id"] for u in ranked] == ["A-PATROL", "F-CAR", "B-CAR", "E-BUSY"]
    by_id = {u["id"]: u for u in ranked}
    for unit_id in ("A-PATROL", "B-CAR", "F-CAR"):
        lat, lon = offset(*placed[unit_id][1:3])
        assert by_id[unit_id]["distance_m"] == pytest.approx(
            haversine_m(LAT, LON, lat, lon), rel=0.01
        )
    assert by_id["A-PATROL"]["eta_s"] == pytest.approx(300 / (15 / 3.6), abs=2)  # 72 s on foot
    assert by_id["F-CAR"]["eta_s"] == pytest.approx(900 / (30 / 3.6), abs=2)  # 108 s
    assert by_id["B-CAR"]["eta_s"] == pytest.approx(1500 / (30 / 3.6), abs=2)  # 180 s
    assert (by_id["E-BUSY"]["busy"], by_id["E-BUSY"]["cases"]) == (True, ["OTHER"])
    assert not by_id["A-PATROL"]["busy"]
    # The case's own unit is not "busy" because of this case.
    with rt.db.read() as session:
        own = dispatch.nearest_units(
            session, rt.latest, lat=LAT, lon=LON, now=rt.now(), stale_s=300,
            speeds_kmh=rt.settings.unit_speeds_kmh, radius_m=10_000, limit=8, case_id="OTHER",
        )  # fmt: skip
    assert {u["id"]: u["busy"] for u in own}["E-BUSY"] is False
