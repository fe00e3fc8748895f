"""Fixtures for the fault tests: child processes stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fault_procs import Proc


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()
