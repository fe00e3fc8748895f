"""Many screens at once: the live snapshot is built once per cursor, shared through Redis
(gzip), fetched over HTTP, and 50 screens opening together while numbered deltas are
published all go live with every delta after their snapshot.

Real Redis, a real database, a real threaded HTTP server and real python-socketio clients
that follow the wall script's protocol (assets/lianqin-live.js).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import socketio
from flask import Flask
from flask.testing import FlaskClient
from helpers import make_token, wait_for
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import dashboard.live.snapshot as live_snapshot
from dashboard.config import Settings
from dashboard.live.deltas import body
from dashboard.live.publisher import NAMESPACE, Publisher
from dashboard.live.snapshot import REUSE_BEHIND, SnapshotStore
from dashboard.models import Case, Unit
from dashboard.runtime import Runtime
from dashboard.services.cases import start_of_day
from dashboard.web.app import runtime_of
from dashboard.web.ops import render_metrics

SCREENS = 50
CASES = 3000
UNITS = 1500


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A long reuse window: then only "how far behind" decides, and the count is exact.
    return settings.model_copy(update={"snapshot_reuse_s": 300.0})


def seed(rt: Runtime, cases: int, units: int) -> None:
    """A district's day: ``cases`` cases in every stage and ``units`` units with positions."""
    now = datetime.now(UTC)
    # Reported today (in the center's zone) at any time of day: a closed case from before
    # midnight is not live, and the test must not depend on when it runs.
    today = now - start_of_day(now, rt.settings.zone)
    statuses = ("reported", "registered", "dispatched", "on_scene", "resolved", "closed")
    case_rows = [
        {
            "id": f"MS-{i:05d}",
            "status": statuses[i % len(statuses)],
            "category": ("dispute", "traffic", "noise")[i % 3],
            "priority": 1 + i % 4,
            "source": "hotline_12345",
            "title": f"案件 {i}",
            "lat": 29.0 + (i % 97) / 1000,
            "lon": 106.6 + (i % 89) / 1000,
            "reported_at": now - today * (i % 300) / 300,
            "status_since": now - timedelta(minutes=1),
            "status_ts": now - timedelta(minutes=1),
            "deadline_at": now + timedelta(hours=2),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(cases)
    ]
    unit_rows = [
        {
            "id": f"MU-{i:05d}",
            "name": f"巡逻 {i}",
            "kind": ("patrol", "vehicle", "grid_worker")[i % 3],
            "status": "available",
            "last_lat": 29.0 + (i % 83) / 1000,
            "last_lon": 106.6 + (i % 79) / 1000,
            "last_ts": now - timedelta(minutes=5),
            "created_at": now,
            "updated_at": now,
        }
        for i in range(units)
    ]
    with rt.db.write() as session:
        session.execute(Case.__table__.insert(), case_rows)  # type: ignore[attr-defined]
        session.execute(Unit.__table__.insert(), unit_rows)  # type: ignore[attr-defined]


def builds(rt: Runtime) -> int:
    return int(rt.redis.hget(rt.keys.metrics, "snapshot:builds") or 0)


class Screen:
    """A wall on a python-socketio client, with the protocol of assets/lianqin-live.js:
    sync, fetch the snapshot the answer names, buffer the deltas meanwhile, apply them in
    sequence after the snapshot's number, catch up from the log after a gap."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.sio = socketio.Client(reconnection=False)
        self.lock = threading.Lock()
        self.seq: int | None = None
        self.cursor: str | None = None
        self.snapshot: dict[str, Any] | None = None
        self.ack: dict[str, Any] | None = None
        self.pending: list[dict[str, Any]] = []
        self.applied: list[int] = []
        self.syncing = True  # until the first snapshot is loaded
        self.disconnects = 0
        self.catchups = 0
        self.gap = threading.Event()
        self.sio.on("delta", self._on_delta, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    def open(self) -> None:
        self.sio.connect(self.url, namespaces=[NAMESPACE], transports=["websocket"],
                         wait_timeout=60, auth={"token": self.token})  # fmt: skip
        ack = self.sio.call("sync", {"cursor": None, "seq": None}, namespace=NAMESPACE,
                            timeout=120)  # fmt: skip
        assert ack["mode"] == "snapshot" and "cases" not in ack, ack
        got = requests.get(self.url + ack["url"], timeout=60,
                           headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
        assert got.status_code == 200, got.text[:200]
        snap = got.json()
        with self.lock:
            self.ack, self.snapshot = ack, snap
            self.seq, self.cursor = snap["seq"], snap["cursor"]
            self.syncing = False
            self._flush()
        self.catch_up()

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnects += 1

    def _on_delta(self, msg: dict[str, Any]) -> None:
        with self.lock:
            if self.syncing or self.seq is None or msg["seq"] != self.seq + 1:
                if self.seq is None or msg["seq"] > self.seq:
                    self.pending.append(msg)
                if not self.syncing and self.seq is not None and msg["seq"] > self.seq + 1:
                    self.gap.set()
                return
            self._apply(msg)

    def _apply(self, msg: dict[str, Any]) -> None:
        self.seq, self.cursor = msg["seq"], msg["cursor"]
        self.applied.append(msg["seq"])

    def _flush(self) -> None:
        rest = sorted(self.pending, key=lambda m: m["seq"])
        self.pending = []
        for i, m in enumerate(rest):
            assert self.seq is not None
            if m["seq"] <= self.seq:
                continue
            if m["seq"] != self.seq + 1:
                self.pending = rest[i:]
                self.gap.set()
                return
            self._apply(m)

    def catch_up(self) -> None:
        """Called from a test thread (never from a socket handler): sync from the cursor."""
        while self.gap.is_set():
            self.gap.clear()
            with self.lock:
                self.syncing = True
                ask = {"cursor": self.cursor, "seq": self.seq}
            reply = self.sio.call("sync", ask, namespace=NAMESPACE, timeout=60)
            assert reply["mode"] == "catchup", reply.get("mode")
            with self.lock:
                self.catchups += 1
                for m in reply["deltas"]:
                    if self.seq is not None and m["seq"] == self.seq + 1:
                        self._apply(m)
                self.syncing = False
                self._flush()

    def close(self) -> None:
        self.sio.disconnect()


class Deltas:
    """Numbered deltas through the real path: the delta log, then Socket.IO's Redis queue."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.publisher = Publisher(rt.redis_url, rt.keys)
        self.sent = 0

    def publish(self) -> int:
        now = int(time.time() * 1000)
        unit = {"id": f"MU-{self.sent % UNITS:05d}", "lat": 29.01, "lon": 106.61, "ts": now,
                "status": "busy", "kind": "patrol", "name": "巡逻", "heading": None,
                "speed": None}  # fmt: skip
        payload = body([], [unit])
        seq, cursor = self.rt.deltas.append(payload)
        self.publisher.delta(seq, cursor, payload)
        self.sent += 1
        return int(seq)


@pytest.fixture
def screens(server_url: str, rt: Runtime) -> Iterator[list[Screen]]:
    token = make_token(rt)
    made = [Screen(server_url, token) for _ in range(SCREENS)]
    yield made
    closers = [threading.Thread(target=s.close, daemon=True) for s in made]
    for t in closers:  # together: each client's disconnect waits a few seconds on its own
        t.start()
    for t in closers:
        t.join(timeout=30)


def test_fifty_screens_open_together_share_one_snapshot_and_miss_no_delta(
    rt: Runtime, screens: list[Screen]
) -> None:
    seed(rt, CASES, UNITS)
    deltas = Deltas(rt)
    for _ in range(5):
        deltas.publish()  # a log that already has a history
    stop = threading.Event()

    def keep_publishing() -> None:  # while the screens open: bounded, well under REUSE_BEHIND
        while not stop.is_set() and deltas.sent < 120:
            deltas.publish()
            time.sleep(0.02)

    publisher = threading.Thread(target=keep_publishing, daemon=True)
    publisher.start()
    failures: list[BaseException] = []
    start = threading.Barrier(SCREENS)

    def open_one(screen: Screen) -> None:
        try:
            start.wait()
            screen.open()
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    openers = [threading.Thread(target=open_one, args=(s,), daemon=True) for s in screens]
    for t in openers:
        t.start()
    wait_for(lambda: all(not t.is_alive() for t in openers), timeout=240, interval=0.1,
             message="every screen has opened")  # fmt: skip
    stop.set()
    publisher.join()
    assert failures == []
    last = 0
    for _ in range(10):  # and now live: the deltas published after every screen opened
        last = deltas.publish()

    def every_screen_at(seq: int) -> bool:
        for s in screens:
            s.catch_up()
        return all(s.seq == seq for s in screens)

    wait_for(lambda: every_screen_at(last), timeout=120, interval=0.1,
             message=f"every screen reaches seq {last}")  # fmt: skip
    for s in screens:
        assert s.snapshot is not None
        first = s.snapshot["seq"]
        assert s.applied == list(range(first + 1, last + 1))  # every one, in order, no gap
        assert s.disconnects == 0
        assert len(s.snapshot["cases"]) == CASES and len(s.snapshot["units"]) == UNITS
    # Built once for the shared cursor, whichever screen asked first; handed to all 50.
    assert builds(rt) == 1
    assert len({s.ack["url"] for s in screens if s.ack}) == 1
    assert int(rt.redis.hget(rt.keys.metrics, "snapshot:served") or 0) == SCREENS
    metrics = render_metrics(rt).decode()
    assert "lianqin_snapshot_builds_total 1.0" in metrics
    assert f"lianqin_snapshots_served_total {SCREENS}.0" in metrics
    assert deltas.sent > 10  # deltas were published while they opened


# -- the store's rules ----------------------------------------------------------------------------
def test_a_snapshot_is_reused_only_while_it_is_fit(rt: Runtime) -> None:
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=300)
    deltas = Deltas(rt)
    deltas.publish()
    first = store.current(rt)
    assert (first.seq, builds(rt)) == (1, 1)
    assert store.current(rt) == first  # nothing moved
    for _ in range(REUSE_BEHIND):
        deltas.publish()
    assert store.current(rt) == first  # 200 behind: the screen catches up from the log
    assert builds(rt) == 1
    deltas.publish()
    second = store.current(rt)  # 201 behind: built anew
    assert (second.seq, builds(rt)) == (REUSE_BEHIND + 2, 2)
    deltas.publish()
    rt.redis.xtrim(rt.keys.deltas, maxlen=0)  # the log no longer reaches back to it
    deltas.publish()
    third = store.current(rt)
    assert (third.seq, builds(rt)) == (second.seq + 2, 3)
    # A new epoch (Redis's delta log and counter reset): the sequence went backwards.
    rt.redis.delete(rt.keys.deltas, rt.keys.delta_seq)
    deltas.publish()
    assert store.current(rt).seq == 1 and builds(rt) == 4


def test_a_snapshot_is_not_reused_past_its_window_or_its_day(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=5)
    ref = store.current(rt)
    assert store.current(rt) == ref
    later = time.time() + 6
    monkeypatch.setattr(live_snapshot.time, "time", lambda: later)
    again = store.current(rt)
    assert again.built > ref.built and builds(rt) == 2
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    monkeypatch.setattr(rt, "now", lambda: tomorrow)
    moved = store.current(rt)
    assert moved.day > again.day and builds(rt) == 3


def test_requests_on_every_instance_wait_for_the_one_build(rt: Runtime) -> None:
    """Two stores on one Redis are two web instances: while one holds the build lock the
    other waits and takes its snapshot instead of building its own."""
    a = SnapshotStore(rt.redis, rt.keys, reuse_s=60)
    b = SnapshotStore(rt.redis, rt.keys, reuse_s=60)
    assert rt.redis.set(rt.keys.snapshot_lock, "instance-a", nx=True, px=60_000)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(b.current(rt)), daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and builds(rt) == 0  # waiting for A, not building
    built = a.build(rt)
    rt.redis.delete(rt.keys.snapshot_lock)
    waiter.join(timeout=10)
    assert got == [built] and builds(rt) == 1
    assert b.payload(built.version)[0] == a.payload(built.version)[0]  # type: ignore[index]


def test_a_waiter_builds_itself_when_the_builder_never_finishes(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_snapshot, "BUILD_WAIT_S", 0.3)
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=60)
    rt.redis.set(rt.keys.snapshot_lock, "a-dead-instance", px=60_000)
    ref = store.current(rt)
    assert builds(rt) == 1 and store.payload(ref.version) is not None
    assert rt.redis.get(rt.keys.snapshot_lock) == b"a-dead-instance"  # not ours to remove


def test_the_stored_snapshot_is_the_gzip_of_the_snapshot_json(rt: Runtime) -> None:
    seed(rt, 20, 5)
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=60)
    ref = store.current(rt)
    stored = rt.redis.get(rt.keys.snapshot(ref.version))
    assert stored is not None and len(stored) == ref.bytes
    snap = json.loads(gzip.decompress(stored))
    assert (snap["mode"], snap["seq"], snap["cursor"]) == ("snapshot", ref.seq, ref.cursor)
    assert len(snap["cases"]) == 20 and len(snap["units"]) == 5
    ttl = rt.redis.pttl(rt.keys.snapshot(ref.version))
    assert 60_000 < ttl <= 105_000  # the reuse window plus 45 s


# -- GET /live/snapshot ---------------------------------------------------------------------------
@pytest.fixture
def http(app: Flask) -> FlaskClient:
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(runtime_of(app))}"
    return c


def test_the_endpoint_serves_the_stored_bytes_with_caching_headers(
    app: Flask, http: FlaskClient
) -> None:
    rt = runtime_of(app)
    seed(rt, 30, 4)
    Deltas(rt).publish()
    ref = app.extensions["lianqin_snapshots"].current(rt)
    got = http.get(ref.url, headers={"Accept-Encoding": "gzip, deflate"})
    assert got.status_code == 200 and got.mimetype == "application/json"
    assert got.headers["Content-Encoding"] == "gzip"
    assert got.data == rt.redis.get(rt.keys.snapshot(ref.version))  # as stored, not re-encoded
    assert got.headers["ETag"] == f'"{ref.version}"'
    assert "Accept-Encoding" in got.headers["Vary"]
    cache = got.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and int(cache.split("=")[1]) > 0
    snap = json.loads(gzip.decompress(got.data))
    assert (snap["seq"], len(snap["cases"]), len(snap["units"])) == (1, 30, 4)
    again = http.get(ref.url, headers={"If-None-Match": f'"{ref.version}"'})
    assert again.status_code == 304 and again.data == b""
    plain = http.get(ref.url, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.get_json()["seq"] == 1


def test_an_expired_or_unnamed_snapshot_is_answered_with_the_current_one(
    app: Flask, http: FlaskClient
) -> None:
    rt = runtime_of(app)
    Deltas(rt).publish()
    gone = http.get("/live/snapshot?day=2026-01-01&seq=7&cursor=1-0",
                    headers={"Accept-Encoding": "gzip"})  # fmt: skip
    assert gone.status_code == 200 and gone.headers["Cache-Control"] == "no-store"
    assert json.loads(gzip.decompress(gone.data))["seq"] == 1  # the body says which
    current = http.get("/live/snapshot")
    assert current.status_code == 200 and current.get_json()["seq"] == 1
    assert builds(rt) == 1


def test_the_endpoint_is_for_principals_of_the_wall(app: Flask) -> None:
    anonymous = app.test_client().get("/live/snapshot")
    assert anonymous.status_code == 401 and anonymous.get_json()["error"]  # JSON, no redirect
    bad = app.test_client().get("/live/snapshot", headers={"Authorization": "Bearer lq_nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("day=2026-1-1&seq=1&cursor=1-0", "day"),
        ("day=2026-01-01&seq=-1&cursor=1-0", "seq"),
        ("day=2026-01-01&seq=1&cursor=abc", "cursor"),
        ("day=2026-01-01&seq=1", "cursor"),
        ("seq=%C2%B2&day=2026-01-01&cursor=1-0", "seq"),
        ("day=2026-01-01&seq=" + "9" * 5000 + "&cursor=1-0", "seq"),
    ],
)
def test_malformed_versions_get_a_400_naming_the_field(
    http: FlaskClient, query: str, field: str
) -> None:
    got = http.get(f"/live/snapshot?{query}")
    assert got.status_code == 400 and got.get_json()["field"] == field


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    day=st.one_of(st.none(), st.text(max_size=12), st.dates().map(str)),
    seq=st.one_of(st.none(), st.text(max_size=20), st.integers(-5, 10**20).map(str)),
    cursor=st.one_of(
        st.none(), st.text(max_size=30), st.from_regex(r"\d{1,21}-\d{1,21}", fullmatch=True)
    ),
)
def test_any_query_gets_a_snapshot_or_a_400(
    http: FlaskClient, day: str | None, seq: str | None, cursor: str | None
) -> None:
    params = {k: v for k, v in {"day": day, "seq": seq, "cursor": cursor}.items() if v is not None}
    got = http.get("/live/snapshot", query_string=params)
    assert got.status_code in (200, 400), got.data[:200]
    if got.status_code == 400:
        assert got.get_json()["field"] in ("day", "seq", "cursor")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@hsettings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "cursor": st.one_of(
                    json_values, st.from_regex(r"[0-9]{1,20}-[0-9]{1,20}", fullmatch=True)
                ),
                "seq": st.one_of(json_values, st.integers(-(2**70), 2**70)),
            }
        ),
    )
)
def test_any_sync_payload_gets_a_catchup_or_a_pointer_to_a_snapshot(rt: Runtime, data: Any) -> None:
    """Whatever a client sends, ``sync`` answers (never an exception) and never inlines the
    snapshot; a cursor the log does not hold is sent to a snapshot."""
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=300)
    if not rt.redis.exists(rt.keys.deltas):
        Deltas(rt).publish()
    reply = live_snapshot.handle_sync(rt, store, data)
    assert reply["mode"] in ("catchup", "snapshot")
    if reply["mode"] == "snapshot":
        assert set(reply) == {"mode", "seq", "cursor", "url", "bytes", "at", "kpis"}
        assert reply["url"].startswith("/live/snapshot?day=")
    else:
        assert [d["seq"] for d in reply["deltas"]] == list(range(data["seq"] + 1, reply["seq"] + 1))
