"""Small helpers shared by the tests."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from dashboard.ops import group_states
from dashboard.runtime import Runtime
from dashboard.worker import Worker


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
