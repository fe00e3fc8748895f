"""The lifecycle rules (README "The lifecycle") as pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.lifecycle import RANK, CaseView, Effect, decide

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def view(status: str, minutes: float = 10, floor: float | None = None) -> CaseView:
    return CaseView(
        status=status, status_ts=at(minutes), floor_ts=None if floor is None else at(floor)
    )


@pytest.mark.parametrize(
    "status",
    ["reported", "registered", "dispatched", "on_scene", "resolved", "closed", "cancelled"],
)
def test_any_status_creates_an_unknown_case(status: str) -> None:
    assert decide(None, status, at(0)).effect is Effect.CREATE


@pytest.mark.parametrize(
    ("current", "new"),
    [(a, b) for a in RANK for b in RANK if RANK[b] > RANK[a]],
)
def test_forward_moves_apply_and_may_skip_stages(current: str, new: str) -> None:
    assert decide(view(current), new, at(11)).effect is Effect.ADVANCE


def test_forward_move_with_an_older_clock_still_applies() -> None:
    # Producers' clocks differ; a forward move never moves a case backwards.
    assert decide(view("registered", 10), "dispatched", at(9)).effect is Effect.ADVANCE


@pytest.mark.parametrize(
    "current", ["reported", "registered", "dispatched", "on_scene", "resolved"]
)
def test_cancel_from_any_open_status(current: str) -> None:
    assert decide(view(current), "cancelled", at(11)).effect is Effect.CANCEL


def test_resolved_to_dispatched_is_rework() -> None:
    assert decide(view("resolved", 10), "dispatched", at(12)).effect is Effect.REWORK


def test_late_backwards_message_is_kept_but_does_not_move() -> None:
    decision = decide(view("on_scene", 10), "dispatched", at(5))
    assert decision.effect is Effect.LATE and not decision.applies
    assert decide(view("resolved", 10), "dispatched", at(10)).effect is Effect.LATE  # same instant


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("on_scene", "registered"),
        ("dispatched", "reported"),
        ("resolved", "on_scene"),
        ("on_scene", "dispatched"),
    ],
)
def test_newer_backwards_move_other_than_rework_is_impossible(current: str, new: str) -> None:
    decision = decide(view(current, 10), new, at(11))
    assert decision.effect is Effect.IMPOSSIBLE
    assert "impossible transition" in decision.reason


@pytest.mark.parametrize("terminal", ["closed", "cancelled"])
@pytest.mark.parametrize("new", ["reported", "dispatched", "on_scene", "resolved"])
def test_leaving_a_terminal_status_is_for_shift_leads_only(terminal: str, new: str) -> None:
    assert decide(view(terminal, 10), new, at(11)).effect is Effect.IMPOSSIBLE
    assert decide(view(terminal, 10), new, at(9)).effect is Effect.LATE


def test_closed_cannot_be_cancelled_by_a_producer() -> None:
    assert decide(view("closed", 10), "cancelled", at(11)).effect is Effect.IMPOSSIBLE


def test_same_status_updates_fields_unless_late() -> None:
    assert decide(view("dispatched", 10), "dispatched", at(11)).effect is Effect.UPDATE
    assert decide(view("dispatched", 10), "dispatched", at(10)).effect is Effect.UPDATE
    assert decide(view("dispatched", 10), "dispatched", at(9)).effect is Effect.LATE


def test_after_rework_a_message_from_the_first_round_is_late() -> None:
    reworked = view("dispatched", 20, floor=20)
    assert decide(reworked, "on_scene", at(15)).effect is Effect.LATE
    assert decide(reworked, "on_scene", at(21)).effect is Effect.ADVANCE
