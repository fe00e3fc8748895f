"""Bad input on `lq:assignments` (contract v1.1): a corpus of malformed entries with their
dead-letter codes, then property-based fuzzing of the parser and of the running worker
(hypothesis), as tests/integration/test_fuzz_entries.py does for lq:incidents."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import drain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dashboard.contract.assignments import ASSIGNMENT_FIELDS, parse_assignment
from dashboard.contract.entries import FIELD_MAX, REASON_MAX, ContractError
from dashboard.models import Case, CaseEvent, Department, Unit
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker.loop import Worker


def now_ms(offset: int = 0) -> int:
    return int(time.time() * 1000) + offset


def valid(**extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "case": "C-1", "assignee": "police", "kind": "department", "status": "accepted",
        "ts": now_ms(-5_000),
    }  # fmt: skip
    fields.update(extra)
    return {k: v for k, v in fields.items() if v is not None}


CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("missing case", valid(case=None), "missing_field"),
    ("missing assignee", valid(assignee=None), "missing_field"),
    ("missing kind", valid(kind=None), "missing_field"),
    ("missing status", valid(status=None), "missing_field"),
    ("missing ts", valid(ts=None), "missing_field"),
    ("unknown kind", valid(kind="army"), "unknown_kind"),
    ("unknown status", valid(status="teleported"), "unknown_status"),
    ("unknown role", valid(role="boss"), "unknown_role"),
    ("role on a unit", valid(kind="unit", assignee="P-1", role="lead"), "bad_role"),
    ("extra field", valid(unit="P-1"), "unknown_field"),
    ("bad id", valid(assignee="派出所 1"), "bad_id"),
    ("case id too long", valid(case="C" * 65), "bad_id"),
    ("far future", valid(ts=now_ms(86_400_000)), "future_time"),
    ("far past", valid(ts="1999-12-31T23:59:59+08:00"), "bad_time"),
    ("non-ASCII digits", valid(ts="٢٠٢٦-11-23T09:14:05+08:00"), "bad_time"),
    ("no offset", valid(ts="2026-11-23T09:14:05"), "bad_time"),
    ("transfer without to", valid(status="transferred", reason="x"), "missing_field"),
    ("transfer to itself", valid(status="transferred", to="police", reason="x"), "bad_value"),
    ("to without transfer", valid(to="justice"), "unexpected_field"),
    ("return without reason", valid(status="returned"), "missing_field"),
    ("reason over 300", valid(status="returned", reason="因" * 301), "too_long"),
    ("note over 1000", valid(note="x" * 1001), "too_long"),
    ("control character", valid(note="a\x00b"), "control_character"),
    ("invalid UTF-8", valid(note=b"\xc3\x28"), "invalid_utf8"),
    ("lone surrogate", valid(note="\ud800"), "invalid_utf8"),
    ("huge value", valid(note="x" * (65 * 1024)), "too_long"),
]


@pytest.mark.parametrize(("label", "fields", "code"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(label: str, fields: dict[str, Any], code: str) -> None:
    raw = {k: v if isinstance(v, bytes | str) else str(v) for k, v in fields.items()}
    with pytest.raises(ContractError) as exc:
        parse_assignment(raw)
    assert exc.value.code == code, label


def test_valid_entries() -> None:
    msg = parse_assignment({k: str(v) for k, v in valid(role="lead", note="签收").items()})
    assert (msg.case, msg.assignee, msg.kind, msg.status, msg.role) == (
        "C-1", "police", "department", "accepted", "lead",
    )  # fmt: skip
    msg = parse_assignment(
        {k: str(v) for k, v in valid(status="transferred", to="justice", reason="属调解").items()}
    )
    assert (msg.to, msg.reason) == ("justice", "属调解")
    unit = valid(kind="unit", assignee="P-1", status="en_route")
    assert parse_assignment({k: str(v) for k, v in unit.items()}).role is None


names = st.one_of(st.sampled_from(sorted(ASSIGNMENT_FIELDS)), st.text(max_size=80))
values = st.one_of(
    st.text(max_size=120),
    st.binary(max_size=120),
    st.sampled_from(["department", "unit", "station", "accepted", "done", "transferred",
                     "returned", "lead", "assist", "police", "C-1", str(now_ms(-1000)),
                     "2026-11-23T09:14:05+08:00", "9" * 30, "", "\ud800", "٣"]),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(fields=st.dictionaries(names, values, max_size=10))
def test_the_parser_refuses_with_a_bounded_reason_or_parses(fields: dict[str, Any]) -> None:
    try:
        msg = parse_assignment(fields)
    except ContractError as exc:
        assert exc.code and len(exc.reason) <= REASON_MAX
        assert exc.field is None or len(exc.field) <= FIELD_MAX + 1
        exc.reason.encode("utf-8")
        return
    assert msg.kind in ("unit", "department", "station")


@pytest.fixture
def worker(runtime: Runtime, producer: Producer) -> Worker:
    with runtime.db.write() as session:
        session.add_all(
            [Department(id="police", name="公安"), Department(id="justice", name="司法"),
             Unit(id="P-1", name="P-1")]
        )  # fmt: skip
    producer.incident(id="C-1", status="registered", ts=now_ms(-60_000), lat=29.37, lon=106.26,
                      category="dispute")  # fmt: skip
    w = Worker(runtime, None, consumer="fuzz")
    w.prepare()
    drain(w)
    return w


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.dictionaries(names, values, max_size=8), min_size=1, max_size=15))
def test_the_worker_applies_or_dead_letters_every_entry(
    runtime: Runtime, producer: Producer, worker: Worker, batch: list[dict[str, Any]]
) -> None:
    good = valid(status="accepted", ts=now_ms(-1000))
    before_dead = runtime.redis.xlen(runtime.keys.dead)
    with runtime.db.read() as session:
        before_events = session.scalar(select(func.count()).select_from(CaseEvent)) or 0
    ids = []
    for fields in batch:
        cleaned = {
            k: v for k, v in fields.items()
            if v not in ("", b"") and _encodable(k) and _encodable(v)
        } or {"x": "y"}  # fmt: skip
        ids.append(runtime.redis.xadd(runtime.keys.assignments, cleaned))  # type: ignore[arg-type]
    ids.append(producer.assignment(**good))
    drain(worker)
    dead = runtime.redis.xlen(runtime.keys.dead) - before_dead
    with runtime.db.read() as session:
        events = (session.scalar(select(func.count()).select_from(CaseEvent)) or 0) - before_events
        assert session.get(Case, "C-1") is not None
    # Every entry ended applied (a timeline line) or dead-lettered, exactly once.
    assert events + dead == len(ids), (events, dead, batch)


def _encodable(value: str | bytes) -> bool:
    """Redis takes bytes; text with a lone surrogate cannot be sent (the parser test has it)."""
    try:
        if isinstance(value, str):
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
