"""Issue 11, "the whole ingest stops": no entry, however malformed, stops a worker or stalls
a stream, and whatever is accepted can be read back.

- The batch path: a failure at any stage (parsing, applying, encoding the live records,
  dead-lettering, publishing) costs the offending entry only — dead-lettered with code
  ``internal_error`` naming the exception — and the rest of the batch is applied; the same
  worker goes on. An outage (the database unreachable) acknowledges nothing instead.
  Failures are injected into the real worker against real Redis and the test database.
- The outbox relay: rows it cannot publish (a lone surrogate stored before the fix, broken
  or hostile JSON, huge values) are dead-lettered once and never stall it; fuzzed.
- No path commits a lone surrogate.
- A ``due`` of 9999-12-31T23:59:59Z is "no deadline", and even a row holding it from before
  the fix is read through every read path: the API, the wall's snapshot and deltas, the
  console's case panel and the briefing's figures and exports.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from helpers import PASSWORD, Dash, drain, make_token, sign_in, wait_for
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

import dashboard.worker.loop as worker_module
from dashboard.contract.changes import FIELDS, parse_change
from dashboard.contract.deadletters import iterate
from dashboard.live.outbox import ChangeLog
from dashboard.live.snapshot import snapshot
from dashboard.models import Case, CaseEvent, ChangeOutbox
from dashboard.runtime import Runtime
from dashboard.services import accounts, trends
from dashboard.services.cases import case_to_live
from dashboard.services.kpis import KpiOptions
from dashboard.streams import Producer
from dashboard.times import NO_DEADLINE
from dashboard.web.app import runtime_of
from dashboard.worker.loop import TransientError, Worker
from layouts import ids

POISON = "HZ-POISON"


def now_ms(offset: int = 0) -> int:
    return int(time.time() * 1000) + offset


def incident(case_id: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": case_id, "status": "reported", "ts": now_ms(-60_000), "lat": 29.37,
        "lon": 106.26, "category": "dispute", "title": "邻里纠纷",
    }  # fmt: skip
    fields.update(extra)
    return fields


@pytest.fixture
def worker(runtime: Runtime) -> Worker:
    w = Worker(runtime, None, consumer="poison")
    w.prepare()
    return w


def send_batch(runtime: Runtime, poison: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """A valid entry, the poison, another valid one: their entry ids."""
    producer = Producer(runtime.redis, runtime.settings)
    first = producer.incident(**incident("HZ-A"))
    bad = producer.incident(**(poison or incident(POISON)))
    last = producer.incident(**incident("HZ-B"))
    return first, bad, last


def applied_entries(runtime: Runtime) -> set[str]:
    with runtime.db.read() as session:
        return set(session.scalars(select(CaseEvent.entry_id)))


def dead_letters(runtime: Runtime) -> dict[str, Any]:
    return {d.meta["entry"]: d for d in iterate(runtime.redis, runtime.keys)}


def pending(runtime: Runtime) -> int:
    return sum(
        int(runtime.redis.xpending(s, runtime.settings.consumer_group)["pending"])
        for s in runtime.keys.input_streams
    )


def poisoned(real: Callable[..., Any], hit: Callable[..., bool], error: BaseException) -> Any:
    """``real``, except that it raises ``error`` when ``hit`` says the call is the poison's."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if hit(*args, **kwargs):
            raise error
        return real(*args, **kwargs)

    return wrapper


class NumericValueOutOfRange(Exception):
    """Stands for the driver's exception class (psycopg names them after the SQLSTATE)."""

    sqlstate = "22003"


class ProgramLimitExceeded(Exception):
    sqlstate = "54000"


def _fields_id(fields: Any, *_: Any, **__: Any) -> bool:
    return fields.get(b"id") == POISON.encode()


def _entries_hold_poison(_session: Any, entries: Any, **_: Any) -> bool:
    return any(msg.id == POISON for _, msg in entries)


STAGES: dict[str, tuple[str, Callable[..., bool], BaseException]] = {
    # stage: (what is replaced in dashboard.worker.loop, which call is the poison's, what it raises)
    "parse": ("parse_incident", _fields_id, RuntimeError("a parser bug")),
    "apply: a value the database refuses": (
        "apply_incidents",
        _entries_hold_poison,
        DataError("INSERT INTO cases …", {}, NumericValueOutOfRange("numeric out of range")),
    ),
    "apply: a constraint": (
        "apply_incidents",
        _entries_hold_poison,
        IntegrityError("INSERT INTO cases …", {}, sqlite3.IntegrityError("CHECK failed")),
    ),
    "apply: a program limit (not an outage)": (
        "apply_incidents",
        _entries_hold_poison,
        OperationalError("INSERT …", {}, ProgramLimitExceeded("index row size exceeds maximum")),
    ),
    "live record": (
        "case_to_live",
        lambda case, **_: case.id == POISON,
        OverflowError("date value out of range"),
    ),
    "delta JSON": (
        "encode_record",
        lambda record: record.get("id") == POISON,
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_failure_at_any_stage_dead_letters_only_the_offending_entry(
    runtime: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    name, hit, error = STAGES[stage]
    monkeypatch.setattr(worker_module, name, poisoned(getattr(worker_module, name), hit, error))
    first, bad, last = send_batch(runtime)
    drain(worker)
    dead = dead_letters(runtime)
    assert set(dead) == {bad}
    letter = dead[bad]
    assert letter.code == "internal_error"
    cause = (
        error.orig if isinstance(error, DataError | IntegrityError | OperationalError) else error
    )
    assert type(cause).__name__ in letter.meta["reason"]
    assert letter.fields[b"id"] == POISON.encode()  # the original, to re-drive it later
    assert {first, last} <= applied_entries(runtime) and bad not in applied_entries(runtime)
    with runtime.db.read() as session:
        assert session.get(Case, POISON) is None  # nothing of it was committed
    assert pending(runtime) == 0
    # The same worker goes on; once the cause is fixed, the dead letter can be re-driven.
    monkeypatch.undo()
    later = Producer(runtime.redis, runtime.settings).incident(**incident("HZ-C"))
    drain(worker)
    assert later in applied_entries(runtime)


def test_a_dead_letter_that_cannot_be_written_is_written_without_the_fields(
    runtime: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker_module.dead_letter_fields
    monkeypatch.setattr(
        worker_module,
        "dead_letter_fields",
        poisoned(real, lambda **kw: kw["raw"].get(b"id") == POISON.encode(), ValueError("no")),
    )
    first, bad, last = send_batch(runtime, incident(POISON, category="aliens"))
    drain(worker)
    dead = dead_letters(runtime)
    assert set(dead) == {bad}
    assert dead[bad].code == "internal_error" and "could not be copied" in dead[bad].meta["reason"]
    assert dead[bad].fields == {}  # the entry itself stays in its stream until trimmed
    assert runtime.redis.xrange(runtime.keys.incidents, bad, bad)
    assert {first, last} <= applied_entries(runtime)
    assert pending(runtime) == 0


def test_a_dead_letter_redis_refuses_is_written_without_the_fields(
    runtime: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker_module.dead_letter_fields

    def empty_for_the_poison(**kw: Any) -> dict[Any, Any]:
        return {} if kw["raw"].get(b"id") == POISON.encode() else real(**kw)

    monkeypatch.setattr(worker_module, "dead_letter_fields", empty_for_the_poison)
    _, bad, _ = send_batch(runtime, incident(POISON, category="aliens"))
    drain(worker)  # redis-py refuses an XADD without fields: DataError, not an outage
    dead = dead_letters(runtime)
    assert set(dead) == {bad} and dead[bad].code == "internal_error"
    assert "DataError" in dead[bad].meta["reason"]
    assert pending(runtime) == 0


class FailingPublisher:
    """A Socket.IO publisher whose emit fails for a delta that carries the poison."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def delta(self, seq: int, cursor: str, body_json: str) -> None:
        if POISON in body_json:
            raise TypeError("Object of type X is not JSON serializable")
        self.sent.append(seq)

    def tick(self, *_: Any, **__: Any) -> None:
        return None

    def kpis(self, *_: Any) -> None:
        return None


def test_a_delta_that_cannot_be_published_is_still_applied_and_in_the_delta_log(
    runtime: Runtime,
) -> None:
    worker = Worker(runtime, FailingPublisher(), consumer="poison")  # type: ignore[arg-type]
    worker.prepare()
    first, bad, last = send_batch(runtime)
    drain(worker)
    assert {first, bad, last} <= applied_entries(runtime)
    assert dead_letters(runtime) == {}
    deltas = runtime.redis.xrange(runtime.keys.deltas)
    assert any(POISON.encode() in fields[b"d"] for _, fields in deltas)  # browsers catch up
    assert pending(runtime) == 0


# -- outage or poison? --------------------------------------------------------------------------
def test_a_database_outage_acknowledges_nothing_and_dead_letters_nothing(
    runtime: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = OperationalError("SELECT …", {}, sqlite3.OperationalError("database is locked"))
    real = worker_module.apply_incidents
    monkeypatch.setattr(
        worker_module, "apply_incidents", poisoned(real, lambda *a, **k: True, down)
    )
    sent = set(send_batch(runtime))
    with pytest.raises(TransientError):
        drain(worker)
    assert pending(runtime) == 3 and dead_letters(runtime) == {}
    monkeypatch.undo()  # the database is back: the worker re-reads its own pending entries
    worker._retry_pending = True
    drain(worker)
    assert sent <= applied_entries(runtime) and pending(runtime) == 0


# -- the loop never exits --------------------------------------------------------------------------
def insert_outbox(runtime: Runtime, change_id: str, fields_json: str, *, age_s: float = 60) -> None:
    """An outbox row written straight into the table (as a release before the fix could have,
    or another tool): the JSON text as given."""
    with runtime.db.write() as session:
        session.execute(
            text(
                "INSERT INTO change_outbox (id, case_id, fields, created_at) "
                "VALUES (:id, :case, :fields, :at)"
            ),
            {
                "id": change_id,
                "case": "HZ-1",
                "fields": fields_json,
                "at": ChangeOutbox.__table__.c.created_at.type.process_bind_param(  # type: ignore[attr-defined]
                    datetime.now(UTC) - timedelta(seconds=age_s), session.get_bind().dialect
                ),
            },
        )


SURROGATE_NOTE = (
    '{"change": "chg-surrogate", "case": "HZ-1", "action": "note", "actor": "user:1", '
    '"version": "2", "note": "bad \\ud800 text"}'
)


def test_the_running_worker_survives_an_unpublishable_outbox_row_and_goes_on_ingesting(
    runtime: Runtime,
) -> None:
    insert_outbox(runtime, "chg-surrogate", SURROGATE_NOTE)
    w = Worker(runtime, None, consumer="poison-loop")
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    try:
        producer = Producer(runtime.redis, runtime.settings)
        sent = {producer.incident(**incident(f"HZ-L{i}")) for i in range(3)}
        wait_for(lambda: sent <= applied_entries(runtime), timeout=30, message="entries applied")
        wait_for(lambda: "chg-surrogate" in dead_letters(runtime), timeout=30,
                 message="the row dead-lettered")  # fmt: skip
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
    letter = dead_letters(runtime)["chg-surrogate"]
    assert letter.code == "invalid_utf8" and letter.stream == runtime.keys.changes
    assert letter.fields[b"note"] == "bad \ud800 text".encode("utf-8", "surrogatepass")
    with runtime.db.read() as session:
        row = session.get(ChangeOutbox, "chg-surrogate")
        assert row is not None and row.published_at is not None
        assert row.stream_id == f"dead:{letter.id}"
    assert int(runtime.redis.hget(runtime.keys.metrics, "dead:changes:invalid_utf8") or 0) == 1


# -- the outbox relay ---------------------------------------------------------------------------
def relay(runtime: Runtime) -> int:
    log = ChangeLog(runtime.redis, runtime.keys, runtime.settings.changes_maxlen)
    with runtime.db.write() as session:
        return log.relay(session, now=datetime.now(UTC), grace_s=runtime.settings.outbox_grace_s)


def test_the_relay_publishes_what_it_can_and_dead_letters_the_rest_once(
    runtime: Runtime, worker: Worker
) -> None:
    good = {"change": "chg-good", "case": "HZ-1", "action": "note", "actor": "user:1",
            "version": "2", "note": "好"}  # fmt: skip
    insert_outbox(runtime, "chg-good", json.dumps(good), age_s=70)
    insert_outbox(runtime, "chg-surrogate", SURROGATE_NOTE)
    insert_outbox(runtime, "chg-list", "[1, 2, 3]")
    insert_outbox(runtime, "chg-nested", '{"case": "HZ-1", "note": {"x": [1]}}')
    insert_outbox(runtime, "chg-unknown", '{"case": "HZ-1", "' + "k" * 100_000 + '": "1"}')
    insert_outbox(runtime, "chg-huge", '{"case": "HZ-1", "note": "' + "x" * 300_000 + '"}')
    assert relay(runtime) == 1
    entries = runtime.redis.xrange(runtime.keys.changes)
    assert [f[b"change"] for _, f in entries] == [b"chg-good"]
    codes = {e: d.code for e, d in dead_letters(runtime).items()}
    assert codes == {
        "chg-surrogate": "invalid_utf8",
        "chg-list": "bad_value",
        "chg-nested": "bad_value",
        "chg-unknown": "unknown_field",
        "chg-huge": "too_long",
    }
    assert all(len(d.meta["reason"]) <= 300 for d in dead_letters(runtime).values())
    assert relay(runtime) == 0  # never retried
    assert len(dead_letters(runtime)) == 5
    assert worker.relay_changes() == 0
    drain(worker)
    assert pending(runtime) == 0


def test_the_fast_path_never_raises_for_a_change_it_cannot_write(runtime: Runtime) -> None:
    log = ChangeLog(runtime.redis, runtime.keys, runtime.settings.changes_maxlen)
    good = {"change": "chg-ok", "case": "HZ-1"}
    written = log.publish(
        runtime.db, [("chg-bad", {"case": "HZ-1", "note": "\ud800"}), ("chg-ok", good)],
        now=datetime.now(UTC),
    )  # fmt: skip
    assert written == 1  # the other one waits for the relay, which dead-letters it


hostile_text = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(categories=["Cs", "Nd", "Cc"]), min_size=1, max_size=5),
    st.integers(min_value=60_000, max_value=400_000).map(lambda n: "x" * n),
    st.sampled_from(["", "1", "٣", "bad id!", "HZ-1", "note", "assign"]),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
field_name = st.one_of(
    st.sampled_from(sorted(FIELDS)),
    st.text(max_size=8),
    st.integers(min_value=1, max_value=100_000).map(lambda n: "k" * n),
)


@st.composite
def outbox_row(draw: st.DrawFn) -> str:
    """The JSON text of a row: a valid change with hostile values, any JSON, or broken JSON."""
    kind = draw(st.sampled_from(["change", "change", "object", "any", "broken"]))
    if kind == "change":
        values: Any = {"change": "chg-x", "case": "HZ-1", "action": "note", "actor": "u:1",
                       "version": "3"}  # fmt: skip
        for _ in range(draw(st.integers(0, 2))):  # mostly a contract field, mostly text
            name = draw(st.one_of(st.sampled_from(["note", "reason", "version"]), field_name))
            values[name] = draw(st.one_of(hostile_text, json_value))
    elif kind == "object":
        values = draw(st.dictionaries(field_name, json_value, max_size=4))
    elif kind == "any":
        values = draw(json_value)
    else:
        return draw(st.sampled_from(['{"case": ', "[1,", "nul", '{"a": "\\ud800"']))
    # As the release before the fix stored it: non-ASCII escaped, lone surrogates included.
    return json.dumps(values)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(outbox_row(), min_size=1, max_size=5))
def test_fuzz_the_relay_never_raises_and_leaves_no_row_behind(
    runtime: Runtime, worker: Worker, rows: list[str]
) -> None:
    postgres = runtime.db.engine.dialect.name == "postgresql"
    ids = []
    for row in rows:
        try:
            json.loads(row)
        except ValueError:
            if postgres:  # the json type refuses broken JSON: such a row cannot exist there
                continue
        change_id = f"chg-{secrets.token_hex(8)}"
        insert_outbox(runtime, change_id, row)
        ids.append(change_id)
    relay(runtime)
    dead = dead_letters(runtime)
    with runtime.db.read() as session:
        marks = dict(
            session.execute(
                select(ChangeOutbox.id, ChangeOutbox.stream_id).where(ChangeOutbox.id.in_(ids))
            ).all()
        )
    for change_id in ids:
        mark = marks[change_id]
        assert mark is not None, change_id  # every row published or dead-lettered
        if mark.startswith("dead:"):
            assert dead[change_id].id == mark[5:] and dead[change_id].code
            event(f"dead-lettered: {dead[change_id].code}")
        else:
            event("published")
            entry = runtime.redis.xrange(runtime.keys.changes, mark, mark)
            assert entry and parse_change(entry[0][1]) == "HZ-1"  # type: ignore[arg-type]
    assert relay(runtime) == 0
    drain(worker)  # the worker consumes whatever was published, and nothing stays pending
    assert pending(runtime) == 0


# -- no path commits a lone surrogate -------------------------------------------------------------
def test_no_column_stores_a_lone_surrogate(runtime: Runtime) -> None:
    with pytest.raises((StatementError, UnicodeEncodeError)):
        with runtime.db.write() as session:
            session.add(ChangeOutbox(id="chg-s", case_id="HZ-1", fields={"note": "\ud800"}))
    with pytest.raises((StatementError, UnicodeEncodeError)):
        with runtime.db.write() as session:
            session.add(make_case("HZ-S", title="bad \udfff"))
    with runtime.db.read() as session:
        assert session.get(ChangeOutbox, "chg-s") is None and session.get(Case, "HZ-S") is None


# -- a due of 9999-12-31T23:59:59Z ---------------------------------------------------------------
def make_case(case_id: str, **values: Any) -> Case:
    reported = datetime.now(UTC) - timedelta(minutes=30)
    fields: dict[str, Any] = {
        "id": case_id, "status": "on_scene", "category": "dispute", "priority": 3,
        "source": "other", "title": "no deadline", "lat": 29.37, "lon": 106.26,
        "reported_at": reported, "status_since": reported, "status_ts": reported,
        "on_scene_at": reported, "rework_count": 0, "version": 1, "overdue": False,
    }  # fmt: skip
    fields.update(values)
    return Case(**fields)


def read_everywhere(app: Flask, rt: Runtime, case_id: str) -> dict[str, Any]:
    """Read one case through every read path; return what the API says about it."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(rt)}"
    one = client.get(f"/api/v1/cases/{case_id}")
    assert one.status_code == 200, one.get_data(as_text=True)[:300]
    listed = client.get("/api/v1/cases")
    assert listed.status_code == 200 and case_id in {c["id"] for c in listed.json}
    # The wall: the snapshot, and the delta's live record as JSON.
    shown = snapshot(rt)
    assert case_id in {c["id"] for c in shown["cases"]}
    with rt.db.read() as session:
        case = session.get(Case, case_id)
        assert case is not None
        json.dumps(case_to_live(case, now=rt.now()))
    # The console's case panel, as the browser calls it.
    with rt.db.write() as session:
        accounts.create_user(session, username="u-reader", role="operator", password=PASSWORD)
    dash = Dash(sign_in(app, "u-reader"))
    context = {"lang": "zh-CN", "tz": rt.settings.tz, "departments": {}}
    panel = dash.call(ids.CASE_OPEN, "data", {"id": case_id, "n": 1}, {ids.DISPATCH_LANG: context})
    assert panel.status_code == 200, panel.get_data(as_text=True)[:300]
    assert panel.json["response"][ids.CASE_STATE]["data"]["id"] == case_id
    # The briefing: its page's figures, exports and replay over the day it was reported
    # (not "today": half an hour after midnight, a case from 30 minutes ago is yesterday's).
    with rt.db.read() as session:
        reported = session.get(Case, case_id).reported_at  # type: ignore[union-attr]
    today = reported.astimezone(rt.settings.zone).date()
    period = trends.resolve_period("custom", now=rt.now(), zone=rt.settings.zone, start=today,
                                   end=today)  # fmt: skip
    req = trends.TrendRequest(period=period, granularity="hour", zone=rt.settings.zone,
                              filters=trends.Filters())  # fmt: skip
    options = KpiOptions(policy=rt.policy, categories=rt.settings.categories)
    with rt.db.read() as session:
        page = trends.trends_page(session, req=req, options=options, now=rt.now())
        window = trends.shift_window(today, "all", rt.settings.zone)
        replayed = trends.replay(session, window=window, filters=trends.Filters())
    tables = trends.export_tables(page)
    trends.to_csv(tables["series"])
    trends.to_xlsx(tables)
    assert page["compare"]["current"]["reported"] >= 1
    assert case_id in json.dumps(replayed)
    return dict(one.json)


def test_a_due_in_year_9999_is_no_deadline_and_reads_everywhere(
    app: Flask, producer: Producer
) -> None:
    rt = runtime_of(app)
    w = Worker(rt, None, consumer="due")
    w.prepare()
    producer.incident(**incident("HZ-NODL", status="on_scene", due="9999-12-31T23:59:59Z"))
    producer.incident(**incident("HZ-NODL2", status="on_scene", due="9999-12-31T23:59:59-23:59"))
    drain(w)
    assert dead_letters(rt) == {}
    data = read_everywhere(app, rt, "HZ-NODL")
    assert data["due"] == NO_DEADLINE.astimezone(rt.settings.zone).isoformat(
        timespec="milliseconds"
    )
    assert data["deadline"] is None and data["overdue"] is False
    assert data["timeline"][0]["fields"]["due"] == "9999-12-31T23:59:59Z"  # as sent
    with rt.db.read() as session:
        case = session.get(Case, "HZ-NODL2")
        assert case is not None and case.due_at == NO_DEADLINE and case.deadline_at is None


def test_a_row_holding_9999_from_before_the_fix_reads_everywhere(app: Flask) -> None:
    rt = runtime_of(app)
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    with rt.db.write() as session:
        session.add(make_case("HZ-OLD", due_at=end, deadline_at=end))
        session.add(
            CaseEvent(case_id="HZ-OLD", ts=rt.now() - timedelta(minutes=30), effect="created",
                      status="on_scene", fields={"due": "9999-12-31T23:59:59Z"},
                      stream=rt.keys.incidents, entry_id="1-0", version=1)
        )  # fmt: skip
    data = read_everywhere(app, rt, "HZ-OLD")
    # +08:00 would be year 10000: shown in UTC, the same instant.
    assert data["due"] == data["deadline"] == "9999-12-31T23:59:59.000+00:00"
