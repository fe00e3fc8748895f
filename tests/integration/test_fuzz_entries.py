"""Bad input on the streams: a corpus of every kind of malformed entry, then property-based
fuzzing (hypothesis). Every entry ends either applied or in lq:dead with a code and a
reason; the running worker never stops; valid entries around bad ones are all applied."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import drain, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dashboard.deadletters import iterate
from dashboard.models import Case, CaseEvent
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker import Worker

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
]
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
    runtime: Runtime, running: tuple[Worker, threading.Thread]
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

    wait_for(lambda: _pending(runtime) == 0 and _lag(runtime) == 0, timeout=60,
             message="every entry handled")  # fmt: skip
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
    assert thread.is_alive()
    with runtime.db.read() as session:
        ids = set(session.scalars(select(Case.id)))
        order = session.get(Case, "HZ-ORDER")
        dup = session.get(Case, "HZ-OK-0")
    assert set(good) | {"HZ-ORDER", "HZ-SHUT"} == ids
    assert order is not None and order.status == "dispatched"  # the late one never moves it back
    assert dup is not None and dup.priority == 1


def _lag(runtime: Runtime) -> int:
    from dashboard.ops import group_states

    return sum(g.lag for g in group_states(runtime, cap=100_000))


def _pending(runtime: Runtime) -> int:
    return sum(
        int(runtime.redis.xpending(s, runtime.settings.consumer_group)["pending"])
        for s in (runtime.keys.incidents, runtime.keys.pings)
    )


# -- property-based fuzzing ------------------------------------------------------------------------
FIELD_NAMES = ["id", "status", "ts", "lat", "lon", "category", "priority", "source", "title",
               "description", "address", "grid", "unit", "department", "due", "crs"]  # fmt: skip
garbage = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40),
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e999",
            "91",
            "-181",
            "0",
            "",
            " ",
            "1_0",
            "29,3",
            "2026-13-45T00:00:00+08:00",
            "9999999999999999999",
            "reported",
            "closed",
            "<img src=x onerror=alert(1)>",
            "\x00",
            "\ud7ff",
            "dispute",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def entry(draw: st.DrawFn) -> tuple[dict[bytes, bytes], bool]:
    """A mostly-valid incident with a few fields broken, dropped or added; or a clean one."""
    case_id = f"HZ-F{secrets.token_hex(5)}"
    fields = {k: str(v) for k, v in valid(case_id).items()}
    clean = draw(st.booleans())
    if not clean:
        for _ in range(draw(st.integers(1, 3))):
            action = draw(st.sampled_from(["break", "drop", "add"]))
            name = draw(st.sampled_from(FIELD_NAMES))
            if action == "drop":
                fields.pop(name, None)
            elif action == "add":
                fields[draw(st.sampled_from(["lng", "x", "题", "ID", "status "]))] = "1"
            else:
                fields[name] = draw(garbage)  # type: ignore[assignment]
    out = {
        k.encode(): v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass")
        for k, v in fields.items()
    }
    return out, clean


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(entry(), min_size=1, max_size=15))
def test_fuzz_every_entry_is_applied_or_dead_lettered_and_the_worker_goes_on(
    runtime: Runtime, batch: list[tuple[dict[bytes, bytes], bool]]
) -> None:
    # The function-scoped runtime is shared by the examples (a health check, suppressed).
    worker = Worker(runtime, None, consumer="fuzzer")
    worker.prepare()
    r = runtime.redis
    sent = {r.xadd(runtime.keys.incidents, fields).decode(): clean for fields, clean in batch}
    drain(worker)
    dead = {e: d for e, d in dead_by_entry(runtime).items() if e in sent}
    with runtime.db.read() as session:
        applied = set(
            session.scalars(select(CaseEvent.entry_id).where(CaseEvent.entry_id.in_(list(sent))))
        )
    for entry_id, clean in sent.items():
        assert (entry_id in applied) != (entry_id in dead), entry_id  # exactly one of the two
        if clean:
            assert entry_id in applied
        else:
            letter = dead.get(entry_id)
            assert letter is None or (letter.code and letter.meta["reason"])
    assert _pending(runtime) == 0
