"""Bad input on the streams: a corpus of every kind of malformed entry, then property-based
fuzzing (hypothesis). Every entry ends either applied or in lq:dead with a code and a
reason; the running worker never stops; valid entries around bad ones are all applied."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from helpers import drain, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dashboard.contract.deadletters import iterate
from dashboard.contract.deadletters import parse as parse_dead
from dashboard.contract.entries import FIELD_MAX, REASON_MAX, ContractError, parse_ping
from dashboard.lifecycle import TERMINAL
from dashboard.live.snapshot import snapshot
from dashboard.models import Case, CaseEvent, Unit, UnitPing
from dashboard.runtime import Runtime
from dashboard.services.cases import start_of_day
from dashboard.streams import Producer
from dashboard.times import NO_DEADLINE
from dashboard.worker.loop import Worker

MB = 1024 * 1024


def now_ms(offset: int = 0) -> int:
    return int(time.time() * 1000) + offset


def valid(case_id: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": case_id,
        "status": "reported",
        "ts": now_ms(-60_000),
        "lat": 29.37,
        "lon": 106.26,
        "category": "dispute",
    }
    fields.update(extra)
    return {k: v for k, v in fields.items() if v is not None}


# (label, fields, expected dead-letter code) — raw bytes allowed in values.
CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("missing id", valid("x", id=None), "missing_field"),
    ("missing status", valid("HZ-C1", status=None), "missing_field"),
    ("missing ts", valid("HZ-C2", ts=None), "missing_field"),
    ("create without a point", valid("HZ-C3", lat=None, lon=None), "missing_on_create"),
    ("lat without lon", valid("HZ-C4", lon=None), "missing_field"),
    ("extra field", valid("HZ-C5", lng="106.2"), "unknown_field"),
    ("wrong type lat", valid("HZ-C6", lat="north"), "bad_number"),
    ("wrong type priority", valid("HZ-C7", priority="high"), "bad_priority"),
    ("NaN", valid("HZ-C8", lat="nan"), "bad_number"),
    ("Inf", valid("HZ-C9", lon="inf"), "bad_number"),
    ("-Infinity", valid("HZ-C10", lon="-Infinity"), "bad_number"),
    ("lat out of range", valid("HZ-C11", lat=90.0001), "bad_coordinates"),
    ("lon out of range", valid("HZ-C12", lon=-180.5), "bad_coordinates"),
    ("far future", valid("HZ-C13", ts=now_ms(86_400_000)), "future_time"),
    ("far past", valid("HZ-C14", ts="1999-12-31T23:59:59+08:00"), "bad_time"),
    ("epoch out of range", valid("HZ-C15", ts=10**20), "bad_time"),
    ("no offset", valid("HZ-C16", ts="2026-11-23T09:14:05"), "bad_time"),
    ("unknown status", valid("HZ-C17", status="teleported"), "unknown_status"),
    ("unknown category", valid("HZ-C18", category="aliens"), "unknown_category"),
    ("unknown source", valid("HZ-C19", source="pigeon"), "unknown_source"),
    ("bad id charset", valid("HZ C20 <script>"), "bad_id"),
    ("id too long", valid("H" * 65), "bad_id"),
    ("title over 200", valid("HZ-C21", title="标" * 201), "too_long"),
    ("description over 4000", valid("HZ-C22", description="x" * 4001), "too_long"),
    ("invalid UTF-8", valid("HZ-C23", title=b"\xc3\x28bad"), "invalid_utf8"),
    ("invalid UTF-8 name", {**valid("HZ-C24"), b"\xff": b"1"}, "invalid_utf8"),
    ("1 MB value", valid("HZ-C25", description="d" * MB), "too_long"),
    ("NUL in text", valid("HZ-C26", title="a\x00b"), "control_character"),
    ("bad crs", valid("HZ-C27", crs="mars"), "bad_crs"),
    # Issue 11: poison pills that used to stop every worker, or that were wrongly accepted.
    ("ts year 1 at +23:59", valid("HZ-C28", ts="0001-01-01T00:00:00+23:59"), "bad_time"),
    ("ts year 9999 at -23:59", valid("HZ-C29", ts="9999-12-31T23:59:59-23:59"), "bad_time"),
    ("due year 1 at +23:59", valid("HZ-C30", due="0001-01-01T00:00:00+23:59"), "bad_time"),
    ("due after the window", valid("HZ-C31", due="2500-01-01T00:00:00Z"), "bad_time"),
    ("Arabic-Indic digits", valid("HZ-C32", lat="٢٩.٣٧"), "bad_number"),
    ("epoch in other digits", valid("HZ-C33", ts="١٧٦٣٨٦٠٤٤٥٠٠٠"), "bad_time"),
    ("1 MB field name", {**valid("HZ-C34"), "n" * MB: "1"}, "unknown_field"),
    (
        "surrogate bytes",
        valid("HZ-C35", title="\ud800".encode("utf-8", "surrogatepass")),
        "invalid_utf8",
    ),
]
# Valid although extreme: a year-9999 due is "no deadline"; a unit near the pole.
NO_DEADLINE_DUES = ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "253402300799000"]
PING_CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("ping missing unit", {"lat": 29.3, "lon": 106.2, "ts": now_ms(-1000)}, "missing_field"),
    (
        "ping negative speed",
        {"unit": "P-1", "lat": 29.3, "lon": 106.2, "ts": now_ms(-1000), "speed": -1},
        "out_of_range",
    ),
    (
        "ping heading 400",
        {"unit": "P-1", "lat": 29.3, "lon": 106.2, "ts": now_ms(-1000), "heading": 400},
        "out_of_range",
    ),
    (
        "ping 1 MB unit",
        {"unit": "P" * MB, "lat": 29.3, "lon": 106.2, "ts": now_ms(-1000)},
        "too_long",
    ),
    (
        "ping unknown status",
        {"unit": "P-1", "lat": 29.3, "lon": 106.2, "ts": now_ms(-1000), "status": "sleeping"},
        "unknown_status",
    ),
    (
        "ping ts year 9999 at -23:59",
        {"unit": "P-1", "lat": 29.3, "lon": 106.2, "ts": "9999-12-31T23:59:59-23:59"},
        "bad_time",
    ),
    (
        "ping speed in other digits",
        {"unit": "P-1", "lat": 29.3, "lon": 106.2, "ts": now_ms(-1000), "speed": "٣"},
        "bad_number",
    ),
]


@pytest.fixture
def running(runtime: Runtime) -> Iterator[tuple[Worker, threading.Thread]]:
    """The worker's real run loop in a thread: it must never stop."""
    w = Worker(runtime, None, consumer="fuzz")
    w.prepare()  # the groups exist before the test looks at them
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    yield w, thread
    stop.set()
    thread.join(timeout=10)


def raw(fields: dict[Any, Any]) -> dict[Any, Any]:
    return {
        k: v if isinstance(v, bytes) else Producer.fields({"v": v})["v"] for k, v in fields.items()
    }


def dead_by_entry(runtime: Runtime) -> dict[str, Any]:
    return {d.meta["entry"]: d for d in iterate(runtime.redis, runtime.keys)}


def test_corpus_every_bad_entry_is_dead_lettered_with_its_reason_and_the_rest_applied(
    runtime: Runtime, running: tuple[Worker, threading.Thread], api_client: FlaskClient
) -> None:
    _, thread = running
    expected: dict[str, tuple[str, str]] = {}
    good: list[str] = []
    r = runtime.redis
    for i, (label, fields, code) in enumerate(CORPUS):
        good_id = f"HZ-OK-{i}"
        r.xadd(runtime.keys.incidents, raw(valid(good_id)))  # a valid one before each bad one
        good.append(good_id)
        expected[r.xadd(runtime.keys.incidents, raw(fields)).decode()] = (label, code)
    for label, fields, code in PING_CORPUS:
        expected[r.xadd(runtime.keys.pings, raw(fields)).decode()] = (label, code)
    # Tricky but valid: a duplicate id (an update), an out-of-order timeline (late, kept).
    r.xadd(runtime.keys.incidents, raw(valid("HZ-OK-0", priority=1)))
    r.xadd(runtime.keys.incidents, raw(valid("HZ-ORDER", status="dispatched", ts=now_ms(-1000))))
    r.xadd(runtime.keys.incidents, raw(valid("HZ-ORDER", status="reported", ts=now_ms(-5000))))
    # An impossible transition: closed, then a newer "reported".
    r.xadd(runtime.keys.incidents, raw(valid("HZ-SHUT", status="closed", ts=now_ms(-9000))))
    bad_move = r.xadd(
        runtime.keys.incidents, raw(valid("HZ-SHUT", status="on_scene", ts=now_ms(-1000)))
    ).decode()
    expected[bad_move] = ("impossible transition", "impossible_transition")
    for i, due in enumerate(NO_DEADLINE_DUES):
        r.xadd(runtime.keys.incidents, raw(valid(f"HZ-NODL-{i}", status="on_scene", due=due)))
    r.xadd(runtime.keys.pings, raw({"unit": "P-POLE", "lat": 89.9, "lon": 0, "ts": now_ms(-1000)}))

    # Pending and lag are both 0 too before the worker has read anything (under load its
    # group may not even exist yet): wait for the dead letters themselves as well.
    wait_for(
        lambda: _pending(runtime) == 0 and _lag(runtime) == 0
        and set(expected) <= set(dead_by_entry(runtime)),
        timeout=120, message="every entry handled",
    )  # fmt: skip
    dead = dead_by_entry(runtime)
    missing = {expected[e][0] for e in set(expected) - set(dead)}
    extra = {(d.code, d.meta["reason"]) for e, d in dead.items() if e not in expected}
    assert not missing and not extra, (missing, extra)
    wrong = {
        label: (dead[e].code, dead[e].meta["reason"])
        for e, (label, code) in expected.items()
        if dead[e].code != code or not dead[e].meta["reason"]
    }
    assert not wrong, wrong
    # Whatever the entry held, its dead letter's reason and field stay short.
    assert all(len(d.meta["reason"]) <= REASON_MAX for d in dead.values())
    assert all(len(d.meta["field"]) <= FIELD_MAX for d in dead.values())
    assert thread.is_alive()
    with runtime.db.read() as session:
        ids = set(session.scalars(select(Case.id)))
        order = session.get(Case, "HZ-ORDER")
        dup = session.get(Case, "HZ-OK-0")
        no_deadline = [session.get(Case, f"HZ-NODL-{i}") for i in range(len(NO_DEADLINE_DUES))]
        pole = session.get(Unit, "P-POLE")
    nodl = {f"HZ-NODL-{i}" for i in range(len(NO_DEADLINE_DUES))}
    assert set(good) | {"HZ-ORDER", "HZ-SHUT"} | nodl == ids
    assert order is not None and order.status == "dispatched"  # the late one never moves it back
    assert dup is not None and dup.priority == 1
    for case in no_deadline:  # on scene with no deadline: never overdue
        assert case is not None and case.due_at == NO_DEADLINE and case.deadline_at is None
    assert pole is not None and pole.last_lat == 89.9
    assert runtime.latest.get("P-POLE") is not None  # live, though off the GEO index
    assert_every_case_reads(runtime, api_client, ids)


def assert_every_case_reads(runtime: Runtime, api_client: FlaskClient, ids: set[str]) -> None:
    """Everything applied is readable: each case, the list, the wall's snapshot."""
    for case_id in ids:
        response = api_client.get(f"/api/v1/cases/{case_id}")
        assert response.status_code == 200, (case_id, response.get_data(as_text=True)[:300])
    listed = api_client.get("/api/v1/cases?limit=1000")
    assert listed.status_code == 200 and ids <= {c["id"] for c in listed.json}
    shown = snapshot(runtime)
    json.dumps(shown, ensure_ascii=False).encode("utf-8")
    today = start_of_day(runtime.now(), runtime.settings.zone)
    with runtime.db.read() as session:  # the wall shows today's cases and older open ones
        wall = {
            case_id
            for case_id, status, reported in session.execute(
                select(Case.id, Case.status, Case.reported_at).where(Case.id.in_(list(ids)))
            )
            if reported >= today or status not in TERMINAL
        }
    assert wall <= {c["id"] for c in shown["cases"]}


def _lag(runtime: Runtime) -> int:
    from dashboard.web.ops import group_states

    return sum(g.lag for g in group_states(runtime, cap=100_000))


def _pending(runtime: Runtime) -> int:
    return sum(
        int(runtime.redis.xpending(s, runtime.settings.consumer_group)["pending"])
        for s in (runtime.keys.incidents, runtime.keys.pings)
    )


# -- property-based fuzzing ------------------------------------------------------------------------
FIELD_NAMES = ["id", "status", "ts", "lat", "lon", "category", "priority", "source", "title",
               "description", "address", "grid", "unit", "department", "due", "crs"]  # fmt: skip
PING_NAMES = ["unit", "lat", "lon", "ts", "crs", "speed", "heading", "accuracy", "status"]


@st.composite
def extreme_time(draw: st.DrawFn) -> str:
    """ISO 8601 in years 1-9999 with any offset up to ±23:59, or epoch ms of any size."""
    if draw(st.booleans()):
        return str(draw(st.integers(min_value=0, max_value=10**17)))
    naive = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23)))
    naive = draw(st.sampled_from([naive, datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)]))
    minutes = draw(st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
    sign = "+" if minutes >= 0 else "-"
    return f"{naive.isoformat()}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


huge = st.integers(min_value=64 * 1024 - 2, max_value=2 * MB).map(lambda n: "x" * n)
garbage = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=8),  # other scripts' digits
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
    extreme_time(),
    huge,
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e999",
            "91",
            "-181",
            "89.9",
            "0",
            "",
            " ",
            "1_0",
            "29,3",
            "٢٩.٣٧",
            "2026-13-45T00:00:00+08:00",
            "9999999999999999999",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+23:59",
            "reported",
            "closed",
            "<img src=x onerror=alert(1)>",
            "\x00",
            "\ud7ff",
            "\ud800",
            "dispute",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
odd_name = st.one_of(
    st.sampled_from(["lng", "x", "题", "ID", "status ", "", "\ud800"]),
    st.text(max_size=10),
    st.integers(min_value=1000, max_value=MB).map(lambda n: "k" * n),  # huge field names
)


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


@st.composite
def entry(draw: st.DrawFn) -> tuple[str, dict[bytes, bytes], bool]:
    """(stream, fields, clean): a mostly-valid incident or ping with a few fields broken,
    dropped or added — extreme times, surrogates, other digits, huge names and values."""
    is_ping = draw(st.integers(0, 3)) == 0
    if is_ping:
        fields: dict[str, Any] = {"unit": f"P-F{secrets.token_hex(4)}", "lat": "29.37",
                                  "lon": "106.26", "ts": str(now_ms(-1000))}  # fmt: skip
        names = PING_NAMES
    else:
        fields = {k: str(v) for k, v in valid(f"HZ-F{secrets.token_hex(5)}").items()}
        names = FIELD_NAMES
    clean = draw(st.booleans())
    if not clean:
        for _ in range(draw(st.integers(1, 3))):
            action = draw(st.sampled_from(["break", "break", "drop", "add"]))
            name = draw(st.sampled_from(names))
            if action == "drop":
                fields.pop(name, None)
            elif action == "add":
                fields[draw(odd_name)] = draw(garbage)
            else:
                fields[name] = draw(garbage)
    out = {_bytes(k): _bytes(v) for k, v in fields.items()}
    return ("pings" if is_ping else "incidents"), out, clean


def _applied_pings(runtime: Runtime, sent: dict[str, dict[bytes, bytes]]) -> set[str]:
    """The ping entries whose (unit, ts) is in a unit's track."""
    found = set()
    with runtime.db.read() as session:
        for entry_id, fields in sent.items():
            try:
                ping = parse_ping(fields, skew_s=None)  # type: ignore[arg-type]
            except ContractError:
                continue
            row = session.scalar(
                select(UnitPing.id).where(UnitPing.unit_id == ping.unit, UnitPing.ts == ping.ts)
            )
            if row is not None:
                found.add(entry_id)
    return found


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(entry(), min_size=1, max_size=15))
def test_fuzz_every_entry_is_applied_or_dead_lettered_and_the_worker_goes_on(
    runtime: Runtime, api_client: FlaskClient, batch: list[tuple[str, dict[bytes, bytes], bool]]
) -> None:
    # The function-scoped runtime is shared by the examples (a health check, suppressed).
    worker = Worker(runtime, None, consumer="fuzzer")
    worker.prepare()
    r = runtime.redis
    sent: dict[tuple[str, str], tuple[dict[bytes, bytes], bool]] = {}
    tail = r.xrevrange(runtime.keys.dead, count=1)
    since = "(" + tail[0][0].decode() if tail else "-"  # this example's dead letters only
    for short, fields, clean in batch:
        stream = runtime.keys.incidents if short == "incidents" else runtime.keys.pings
        entry_id = r.xadd(stream, fields).decode()  # type: ignore[arg-type]
        sent[(stream, entry_id)] = (fields, clean)
    drain(worker)
    letters = [parse_dead(*item) for item in r.xrange(runtime.keys.dead, min=since)]
    dead = {(d.stream, d.meta["entry"]): d for d in letters if (d.stream, d.meta["entry"]) in sent}
    incidents = [e for s, e in sent if s == runtime.keys.incidents]
    with runtime.db.read() as session:
        events = select(CaseEvent.entry_id).where(CaseEvent.entry_id.in_(incidents))
        applied = {(runtime.keys.incidents, e) for e in session.scalars(events)}
    pings = {e: f for (s, e), (f, _) in sent.items() if s == runtime.keys.pings}
    applied |= {(runtime.keys.pings, e) for e in _applied_pings(runtime, pings)}
    for key, (_, clean) in sent.items():
        assert (key in applied) != (key in dead), key  # exactly one of the two
        if clean:
            assert key in applied
        else:
            letter = dead.get(key)
            assert letter is None or (letter.code and letter.meta["reason"])
            assert letter is None or len(letter.meta["reason"]) <= REASON_MAX
    assert _pending(runtime) == 0
    # The same worker object goes on with the next batch (drained: when this example held
    # only pings, the previous example's Worker object may still hold the incidents' lease).
    after = r.xadd(runtime.keys.incidents, raw(valid(f"HZ-N{secrets.token_hex(5)}"))).decode()
    assert drain(worker) == 1
    with runtime.db.read() as session:
        assert session.scalar(select(CaseEvent.id).where(CaseEvent.entry_id == after))
        events = select(CaseEvent.case_id).where(CaseEvent.entry_id.in_([*incidents, after]))
        ids = set(session.scalars(events))  # the cases this example created or changed
    assert_every_case_reads(runtime, api_client, ids)
