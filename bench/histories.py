"""Full case histories interleaved across cases, and the state each history must end in.

Shared by the ordering test (tests/faults/test_ordering.py) and its benchmark
(bench/ordering.py). A history is what one producer sends for one case, in order:
create → registered → dispatched → on_scene → resolved → closed, some with rework
(resolved → dispatched → on_scene → resolved, once or twice) before closing, some
cancelled part-way, some still open. Histories are interleaved the way a center's
stream interleaves them (a few dozen cases in flight at once), and every message's
time is its position in the stream, so each case's times strictly increase.

Applied in stream order, each case must end exactly as ``History.expected`` says: its
last status, its rework count, its unit, and the first time of each stage reached. An
update applied before its case's create is dead-lettered (`missing_on_create`), a
rework `dispatched` applied before its `resolved` is an impossible transition, and a
case then stays behind: the comparison shows it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dashboard.vocabulary import STAGE_COLUMNS

CATEGORIES = ("dispute", "traffic", "noise", "environment", "public_security", "other")
FULL = ("reported", "registered", "dispatched", "on_scene", "resolved", "closed")
REWORK = ("dispatched", "on_scene", "resolved")


def _path(rng: random.Random) -> list[str]:
    kind = rng.random()
    if kind < 0.5:  # the common case: every stage, closed
        return list(FULL)
    if kind < 0.75:  # rework once or twice, then closed
        reworks = 1 if rng.random() < 0.7 else 2
        return [*FULL[:5], *(REWORK * reworks), "closed"]
    if kind < 0.9:  # cancelled part-way
        return [*FULL[: rng.randint(1, 4)], "cancelled"]
    return list(FULL[: rng.randint(1, 5)])  # still open


@dataclass
class History:
    case_id: str
    index: int
    statuses: list[str]
    times_ms: list[int] = field(default_factory=list)  # set by ``interleave``
    units: list[str | None] = field(default_factory=list)

    def message(self, k: int) -> dict[str, str]:
        """The ``k``-th message of this case, as a producer writes it."""
        out = {"id": self.case_id, "status": self.statuses[k], "ts": str(self.times_ms[k])}
        if k == 0:
            i = self.index
            out.update(
                {
                    "lat": f"{29.0 + (i * 0.6180339887) % 0.1:.6f}",
                    "lon": f"{106.6 + (i * 0.7548776662) % 0.1:.6f}",
                    "category": CATEGORIES[i % len(CATEGORIES)],
                    "priority": str(1 + i % 4),
                    "source": "hotline_12345",
                    "title": f"有序性测试 {i}",
                }
            )
        unit = self.units[k]
        if unit is not None:
            out["unit"] = unit
        return out

    def expected(self) -> dict[str, Any]:
        """The case's row after its messages were applied in order."""
        stages: dict[str, datetime | None] = dict.fromkeys(STAGE_COLUMNS.values())
        rework = 0
        unit = None
        previous = None
        for status, ts, u in zip(self.statuses, self.times_ms, self.units, strict=True):
            column = STAGE_COLUMNS[status]
            if stages[column] is None:
                stages[column] = datetime.fromtimestamp(ts / 1000, UTC)
            if previous == "resolved" and status == "dispatched":
                rework += 1
            if u is not None:
                unit = u
            previous = status
        return {
            "status": self.statuses[-1],
            "rework_count": rework,
            "unit_id": unit,
            **stages,
        }


def make_histories(rng: random.Random, n: int, *, prefix: str = "OR") -> list[History]:
    out = []
    for i in range(n):
        statuses = _path(rng)
        units: list[str | None] = [
            f"P-{rng.randint(1, 60):03d}" if s == "dispatched" else None for s in statuses
        ]
        out.append(History(f"{prefix}-{i:05d}", i, statuses, units=units))
    return out


def interleave(
    rng: random.Random,
    histories: list[History],
    *,
    in_flight: int = 40,
    start_ms: int,
    step_ms: int = 10,
) -> list[tuple[History, int]]:
    """Every message of every history, in stream order: ``in_flight`` cases progress at
    once, a new case starting when one ends; each message's time is its position."""
    waiting = list(reversed(histories))
    active: list[tuple[History, int]] = []  # history, index of its next message
    order: list[tuple[History, int]] = []
    while waiting or active:
        while waiting and len(active) < in_flight:
            active.append((waiting.pop(), 0))
        slot = rng.randrange(len(active))
        h, k = active[slot]
        h.times_ms.append(start_ms + len(order) * step_ms)
        order.append((h, k))
        if k + 1 < len(h.statuses):
            active[slot] = (h, k + 1)
        else:
            active.pop(slot)
    return order


def stream_of(
    rng: random.Random, n_cases: int, *, prefix: str = "OR", now_ms: int, step_ms: int = 10
) -> tuple[list[History], list[dict[str, str]]]:
    """``n_cases`` histories and their messages in stream order; the last message's time is
    a minute before ``now_ms`` (the contract refuses times in the future)."""
    histories = make_histories(rng, n_cases, prefix=prefix)
    total = sum(len(h.statuses) for h in histories)
    order = interleave(rng, histories, start_ms=now_ms - 60_000 - total * step_ms, step_ms=step_ms)
    return histories, [h.message(k) for h, k in order]
