"""Live push through Socket.IO: snapshot with a cursor, numbered deltas, catch-up after a gap."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import socketio
from helpers import drain, make_token, wait_for

from dashboard.live.publisher import NAMESPACE, Publisher
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.worker.loop import Worker


@pytest.fixture
def worker(rt: Runtime) -> Worker:
    w = Worker(rt, Publisher(rt.redis_url, rt.keys), consumer="rt-test")
    w.prepare()
    return w


class LiveClient:
    """A real python-socketio client on a real server: what a browser's socket sees."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.sio = socketio.Client(reconnection=False)
        self.events: dict[str, list[dict[str, Any]]] = {"delta": [], "tick": []}
        for name in self.events:
            self.sio.on(name, self._collector(name), namespace=NAMESPACE)
        self.sio.connect(
            url,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            wait_timeout=10,
            auth={"token": token},
        )

    def _collector(self, name: str) -> Any:
        def collect(data: dict[str, Any]) -> None:
            self.events[name].append(data)

        return collect

    def sync(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """``sync``; a snapshot answer is followed to its URL (what the wall's script does):
        the fetched snapshot is returned, with the answer under ``"ack"``."""
        reply: dict[str, Any] = self.sio.call("sync", data or {}, namespace=NAMESPACE, timeout=10)
        if reply["mode"] != "snapshot":
            return reply
        assert "cases" not in reply  # never the whole state in the socket
        got = requests.get(
            self.url + reply["url"], headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        assert got.status_code == 200 and got.headers["Content-Encoding"] == "gzip"
        snap: dict[str, Any] = got.json()
        assert (snap["seq"], snap["cursor"]) == (reply["seq"], reply["cursor"])
        return snap | {"ack": reply}

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def client(server_url: str, rt: Runtime) -> Iterator[LiveClient]:
    c = LiveClient(server_url, make_token(rt))
    yield c
    c.close()


def case(producer: Producer, case_id: str, status: str = "reported", **extra: Any) -> None:
    fields: dict[str, Any] = {"id": case_id, "status": status, "ts": int(time.time() * 1000) - 1000}
    if status == "reported":
        fields.update(lat=29.3702, lon=106.2610, category="dispute")
    fields.update(extra)
    producer.incident(**fields)


def test_snapshot_on_sync_then_a_delta(client: LiveClient, rt: Runtime, worker: Worker) -> None:
    producer = Producer(rt.redis, rt.settings)
    case(producer, "HZ-OLD")
    drain(worker)
    snap = client.sync({"cursor": None, "seq": None})
    assert snap["mode"] == "snapshot" and snap["seq"] == 1 and snap["cursor"]
    assert [c["id"] for c in snap["cases"]] == ["HZ-OLD"]
    case(producer, "HZ-NEW")
    drain(worker)
    newer = lambda: [d for d in client.events["delta"] if d["seq"] > snap["seq"]]  # noqa: E731
    wait_for(newer, message="a delta through the Redis message queue")
    (delta,) = newer()
    assert delta["seq"] == 2 and delta["cursor"] > snap["cursor"]
    body = json.loads(delta["d"])
    assert [(c["id"], c["status"]) for c in body["cases"]] == [("HZ-NEW", "reported")]


def test_a_burst_loses_nothing_and_sequence_numbers_have_no_gaps(
    client: LiveClient, rt: Runtime, worker: Worker
) -> None:
    producer = Producer(rt.redis, rt.settings)
    client.sync()
    for i in range(30):
        case(producer, f"HZ-{i}")
        worker.step()  # about one batch each: a burst of deltas
    drain(worker)
    head = rt.deltas.head().seq
    assert head >= 25
    pile = client.events["delta"]
    wait_for(lambda: len(pile) >= head, message=f"{head} deltas")
    assert [d["seq"] for d in pile] == list(range(1, head + 1))
    ids = {c["id"] for d in pile for c in json.loads(d["d"])["cases"]}
    assert ids == {f"HZ-{i}" for i in range(30)}


def test_catch_up_from_a_cursor_after_a_gap(
    client: LiveClient, rt: Runtime, worker: Worker
) -> None:
    producer = Producer(rt.redis, rt.settings)
    snap = client.sync()
    for i in range(3):
        case(producer, f"HZ-{i}")
        drain(worker)  # one delta each
    reply = client.sync({"cursor": snap["cursor"] or "0-0", "seq": snap["seq"]})
    assert reply["mode"] == "catchup"
    assert [d["seq"] for d in reply["deltas"]] == [1, 2, 3]
    # From the middle:
    second = reply["deltas"][1]
    again = client.sync({"cursor": second["cursor"], "seq": second["seq"]})
    assert [d["seq"] for d in again["deltas"]] == [3]


def test_a_cursor_the_log_no_longer_holds_gets_a_snapshot(
    client: LiveClient, rt: Runtime, worker: Worker
) -> None:
    producer = Producer(rt.redis, rt.settings)
    case(producer, "HZ-A")
    drain(worker)
    reply = client.sync({"cursor": "1-0", "seq": 0})
    assert reply["mode"] == "catchup"  # the log still holds seq 1
    rt.redis.xtrim(rt.keys.deltas, maxlen=0)
    case(producer, "HZ-B")
    drain(worker)
    reply = client.sync({"cursor": "1-0", "seq": 0})
    assert reply["mode"] == "snapshot" and {c["id"] for c in reply["cases"]} == {"HZ-A", "HZ-B"}
    garbage = client.sync({"cursor": "not-a-cursor", "seq": "x"})
    assert garbage["mode"] == "snapshot"


def test_snapshot_holds_units_from_redis(client: LiveClient, rt: Runtime, worker: Worker) -> None:
    producer = Producer(rt.redis, rt.settings)
    producer.ping(
        unit="P-1",
        lat=29.37,
        lon=106.26,
        ts=int(time.time() * 1000) - 500,
        heading=90,
        status="busy",
    )
    drain(worker)
    snap = client.sync()
    (unit,) = snap["units"]
    assert (unit["id"], unit["status"], unit["heading"]) == ("P-1", "busy", 90.0)


def test_ticks_carry_the_head_sequence(client: LiveClient, rt: Runtime, worker: Worker) -> None:
    producer = Producer(rt.redis, rt.settings)
    case(producer, "HZ-T")
    drain(worker)
    worker.publisher.tick(rt.deltas.head())  # type: ignore[union-attr]
    pile = client.events["tick"]
    wait_for(lambda: pile, message="a tick")
    assert pile[-1]["seq"] == 1 and pile[-1]["at"] > 0
