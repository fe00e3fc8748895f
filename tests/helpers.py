"""Small helpers shared by the tests."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from dashboard.runtime import Runtime
from dashboard.web.ops import group_states
from dashboard.worker.loop import Worker


def wait_for(
    predicate: Any, timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> Any:
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message or predicate}")
        time.sleep(interval)


def drain(worker: Worker, rounds: int = 1000, timeout: float = 30.0) -> int:
    """Run worker cycles (at most ``rounds``) until the input streams are drained (nothing
    undelivered, nothing pending); return how many entries were handled. A worker waits for
    the lease on an ordered stream while another (an earlier Worker object of the test)
    still holds it."""
    total = 0
    idle = 0
    deadline = time.monotonic() + timeout
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        handled = worker.step()
        total += handled
        idle = idle + 1 if handled == 0 else 0
        if idle >= 2 and drained(worker.rt):
            break
    return total


def drained(rt: Runtime) -> bool:
    return all(g.lag == 0 and g.pending == 0 for g in group_states(rt, cap=100_000))


def make_token(runtime: Runtime, role: str = "viewer", name: str | None = None) -> str:
    """A real API token in the test database (its plaintext)."""
    from dashboard.services.accounts import create_token

    with runtime.db.write() as session:
        _, plaintext = create_token(
            session, name=name or f"test-{role}-{secrets.token_hex(3)}", role=role
        )
    return plaintext


DATA = Path(__file__).resolve().parent / "data"


def dataset(name: str) -> Path:
    """A real public sample (tests/data/: exact copies of ../shared/datasets/, SOURCES.md),
    kept in the repository so that a checkout tests on its own."""
    return DATA / name


def seed_case(runtime: Runtime, case_id: str, status: str = "registered") -> None:
    """One real case, through the stream and the worker as a producer would add it."""
    from dashboard.streams import Producer

    Producer(runtime.redis, runtime.settings).incident(
        id=case_id, status=status, ts=int(time.time() * 1000) - 60_000,
        lat=29.37, lon=106.26, category="dispute",
    )  # fmt: skip
    worker = Worker(runtime, None, consumer=f"seed-{secrets.token_hex(3)}")
    worker.prepare()
    drain(worker)


def callback_body(
    dependency: dict[str, Any],
    values: dict[str, Any] | None = None,
    changed: list[str] | None = None,
) -> dict[str, Any]:
    """The body Dash's renderer POSTs to /_dash-update-component for one callback (an entry
    of /_dash-dependencies), with ``values`` by ``"id.property"`` (absent: null)."""
    values = values or {}
    output = dependency["output"]
    parts = [
        dict(zip(("id", "property"), part.split(".", 1), strict=True))
        for part in output.strip(".").split("...")
    ]

    def filled(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"id": i["id"], "property": i["property"],
             "value": values.get(f"{i['id']}.{i['property']}")}
            for i in items
        ]  # fmt: skip

    first = dependency["inputs"][0]
    return {
        "output": output,
        "outputs": parts if output.startswith("..") else parts[0],
        "inputs": filled(dependency["inputs"]),
        "state": filled(dependency["state"]),
        "changedPropIds": changed or [f"{first['id']}.{first['property']}"],
    }


def delta_seq_of(client: Any, case_id: str, timeout: float = 30.0) -> int:
    """Wait until a worker has pushed a delta carrying case ``case_id`` (in the delta log
    ``lq:deltas``); return the newest such delta's sequence number."""
    needle = f'"id":"{case_id}"'.encode()

    def find() -> int | None:
        for _, fields in client.xrevrange("lq:deltas", count=1000):
            if needle in fields[b"d"]:
                return int(fields[b"seq"])
        return None

    seq: int = wait_for(find, timeout=timeout, message=f"a delta carrying {case_id}")
    return seq
