"""Stage deadlines: the seeds' defaults, per-category/priority overrides, explicit due."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashboard.sla import SlaPolicy, load_policy

T = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def deadline(policy: SlaPolicy, status: str, **kw: object) -> datetime | None:
    args = {"status_since": T, "category": "dispute", "priority": 3, "reported_at": T, "due": None}
    args.update(kw)
    return policy.stage_deadline(status=status, **args)  # type: ignore[arg-type]


def test_seed_defaults_dispatch_in_one_minute_arrive_in_five() -> None:
    policy = SlaPolicy()
    assert deadline(policy, "registered") == T + timedelta(minutes=1)
    assert deadline(policy, "dispatched") == T + timedelta(minutes=5)


def test_resolution_deadline_depends_on_category_and_priority() -> None:
    policy = SlaPolicy()
    assert deadline(policy, "on_scene", category="public_security") == T + timedelta(hours=2)
    assert deadline(policy, "on_scene", category="dispute") == T + timedelta(hours=72)
    assert deadline(policy, "on_scene", category="dispute", priority=1) == T + timedelta(hours=18)
    assert deadline(policy, "on_scene", category="dispute", priority=4) == T + timedelta(hours=144)


def test_explicit_due_wins() -> None:
    due = T + timedelta(minutes=30)
    assert deadline(SlaPolicy(), "on_scene", due=due) == due


def test_terminal_statuses_have_no_deadline() -> None:
    assert deadline(SlaPolicy(), "closed") is None
    assert deadline(SlaPolicy(), "cancelled") is None


def test_policy_file_overrides(tmp_path: Path) -> None:
    path = tmp_path / "sla.json"
    path.write_text(
        json.dumps(
            {
                "dispatch_s": 120,
                "resolve_s": {"noise": 3600},
                "priority_factor": {"1": 0.5},
                "overrides": {"fire_hazard": {"arrive_s": 180}, "fire_hazard/1": {"arrive_s": 120}},
            }
        ),
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert deadline(policy, "registered") == T + timedelta(minutes=2)
    assert deadline(policy, "on_scene", category="noise") == T + timedelta(hours=1)
    assert deadline(policy, "on_scene", category="noise", priority=1) == T + timedelta(minutes=30)
    assert deadline(policy, "dispatched", category="fire_hazard") == T + timedelta(minutes=3)
    assert deadline(policy, "dispatched", category="fire_hazard", priority=1) == T + timedelta(
        minutes=2
    )
    assert deadline(policy, "dispatched", category="noise") == T + timedelta(minutes=5)
    assert load_policy(None) == SlaPolicy()
