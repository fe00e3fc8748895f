"""Deadlines (SLA) per lifecycle stage, configurable per category and priority.

Each active stage has a deadline counted from the moment the case entered it,
except `on_scene`, whose deadline is the case's resolution deadline (an explicit
`due` wins, else report time + the category's resolution time; a `due` of
``NO_DEADLINE`` — the contract's year-9999 "no deadline" — leaves none). Defaults are
the seeds': dispatched within 1 minute of registration, on scene within 5
minutes of dispatch.

A JSON file (``LIANQIN_SLA_FILE``) overrides any part::

    {"register_s": 300, "dispatch_s": 60, "arrive_s": 300, "close_s": 86400,
     "resolve_s": {"noise": 7200},
     "priority_factor": {"1": 0.5},
     "overrides": {"fire_hazard": {"arrive_s": 180}, "fire_hazard/1": {"arrive_s": 120}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dashboard.times import NO_DEADLINE

DEFAULT_RESOLVE_S: dict[str, int] = {
    "public_security": 2 * 3600,
    "traffic": 2 * 3600,
    "fire_hazard": 4 * 3600,
    "noise": 4 * 3600,
    "dispute": 72 * 3600,
    "environment": 24 * 3600,
    "market_order": 24 * 3600,
    "municipal_facility": 72 * 3600,
    "illegal_construction": 120 * 3600,
    "population": 72 * 3600,
    "public_service": 48 * 3600,
    "other": 72 * 3600,
}
# Urgent cases get a quarter of the resolution time, low-priority ones double.
DEFAULT_PRIORITY_FACTOR: dict[int, float] = {1: 0.25, 2: 0.5, 3: 1.0, 4: 2.0}
_STAGE_KEYS = ("register_s", "dispatch_s", "arrive_s", "close_s")


@dataclass(frozen=True, slots=True)
class StageLimits:
    register_s: int = 300  # reported → registered (verification)
    dispatch_s: int = 60  # registered → dispatched
    arrive_s: int = 300  # dispatched → on scene
    close_s: int = 86_400  # resolved → closed (核查结案)


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    stages: StageLimits = StageLimits()
    resolve_s: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RESOLVE_S))
    default_resolve_s: int = 72 * 3600
    priority_factor: Mapping[int, float] = field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_FACTOR)
    )
    # "category" or "category/priority" → StageLimits overrides (resolution too, as resolve_s)
    overrides: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def limits(self, category: str, priority: int) -> tuple[StageLimits, int]:
        """Stage limits and the resolution time (s) for a category and priority."""
        stages = self.stages
        resolve = int(
            self.resolve_s.get(category, self.default_resolve_s)
            * self.priority_factor.get(priority, 1.0)
        )
        for key in (category, f"{category}/{priority}"):
            extra = self.overrides.get(key)
            if extra:
                stages = replace(
                    stages, **{k: int(v) for k, v in extra.items() if k in _STAGE_KEYS}
                )
                if "resolve_s" in extra:
                    resolve = int(extra["resolve_s"])
        return stages, resolve

    def resolution_deadline(
        self, *, category: str, priority: int, reported_at: datetime, due: datetime | None
    ) -> datetime | None:
        """``due`` when given (None for "no deadline"), else report time + resolution time."""
        if due is not None:
            return None if due >= NO_DEADLINE else due
        _, resolve = self.limits(category, priority)
        return reported_at + timedelta(seconds=resolve)

    def stage_deadline(
        self,
        *,
        status: str,
        status_since: datetime,
        category: str,
        priority: int,
        reported_at: datetime,
        due: datetime | None,
    ) -> datetime | None:
        """The deadline of the stage the case is in now; None for closed/cancelled."""
        stages, _ = self.limits(category, priority)
        if status == "reported":
            return status_since + timedelta(seconds=stages.register_s)
        if status == "registered":
            return status_since + timedelta(seconds=stages.dispatch_s)
        if status == "dispatched":
            return status_since + timedelta(seconds=stages.arrive_s)
        if status == "on_scene":
            return self.resolution_deadline(
                category=category, priority=priority, reported_at=reported_at, due=due
            )
        if status == "resolved":
            return status_since + timedelta(seconds=stages.close_s)
        return None


def load_policy(path: Path | None) -> SlaPolicy:
    """The default policy, with the JSON file's overrides when one is given."""
    if path is None:
        return SlaPolicy()
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    stages = StageLimits(**{k: int(data[k]) for k in _STAGE_KEYS if k in data})
    resolve = dict(DEFAULT_RESOLVE_S)
    resolve.update({str(k): int(v) for k, v in data.get("resolve_s", {}).items()})
    factor = dict(DEFAULT_PRIORITY_FACTOR)
    factor.update({int(k): float(v) for k, v in data.get("priority_factor", {}).items()})
    overrides = {str(k): dict(v) for k, v in data.get("overrides", {}).items()}
    return SlaPolicy(stages=stages, resolve_s=resolve, priority_factor=factor, overrides=overrides)
