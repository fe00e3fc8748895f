"""The case lifecycle (README "The lifecycle"): which status a message may move a case to.

The statuses themselves (rank, open, terminal, stage column) are dashboard/vocabulary.py's.

Pure decisions over a small view of the case, so they are tested without a
database. The rules, in the order they are checked:

* A message for an unknown case creates it (any status may create: a 110 CAD
  system may open a case directly as `dispatched`).
* A message older than what the case already knows (`ts` before the case's
  latest time, or before its last rework/reopen for a forward move) is *late*: it
  is kept in the timeline and may fill in a missing stage time, but never moves
  the case and never overwrites newer fields.
* Forward moves may skip stages; `cancelled` is a forward move from any open
  status.
* `resolved → dispatched` is rework (返工).
* Any other backwards move, and any move out of `closed` or `cancelled`, is an
  impossible transition: only a shift lead may reopen a case (a dashboard
  action, not a producer message). Such an entry is dead-lettered.
* The same status again, not late, updates the case's fields (a reassignment).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from dashboard.vocabulary import RANK, TERMINAL, Status

__all__ = ["TERMINAL", "CaseView", "Decision", "Effect", "decide", "may_reopen"]


class Effect(enum.StrEnum):
    CREATE = "created"
    ADVANCE = "advanced"
    UPDATE = "updated"
    REWORK = "rework"
    CANCEL = "cancelled"
    LATE = "late"
    REOPEN = "reopened"
    IMPOSSIBLE = "impossible"


@dataclass(frozen=True, slots=True)
class CaseView:
    """What the rules need to know of a case."""

    status: str
    status_ts: datetime  # the newest time of any applied message
    floor_ts: datetime | None = None  # the last rework / reopen


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    reason: str = ""

    @property
    def applies(self) -> bool:
        """Whether the message changes the case's status and fields."""
        return self.effect not in (Effect.LATE, Effect.IMPOSSIBLE)


def decide(case: CaseView | None, status: str, ts: datetime) -> Decision:
    """Decide what a producer message with ``status`` at ``ts`` does to ``case``."""
    if case is None:
        return Decision(Effect.CREATE)
    current = case.status
    if status == current:
        if ts < case.status_ts:
            return Decision(Effect.LATE, f"older than the case's latest message ({current})")
        return Decision(Effect.UPDATE)
    if current in TERMINAL:
        if ts <= case.status_ts:
            return Decision(Effect.LATE, f"older than the case's {current} message")
        return Decision(
            Effect.IMPOSSIBLE,
            f"impossible transition {current} → {status}: a {current} case is reopened only "
            "by a shift lead",
        )
    if status == Status.CANCELLED or RANK[status] > RANK[current]:
        if case.floor_ts is not None and ts < case.floor_ts:
            return Decision(Effect.LATE, "older than the case's last rework or reopen")
        return Decision(Effect.CANCEL if status == "cancelled" else Effect.ADVANCE)
    # A backwards move.
    if ts <= case.status_ts:
        return Decision(Effect.LATE, f"out of order: the case is already {current}")
    if current == Status.RESOLVED and status == Status.DISPATCHED:
        return Decision(Effect.REWORK)
    return Decision(
        Effect.IMPOSSIBLE,
        f"impossible transition {current} → {status}: only resolved → dispatched (rework) "
        "may move a case backwards",
    )


def may_reopen(status: str) -> bool:
    """A shift lead may reopen a closed (or wrongly cancelled) case."""
    return status in TERMINAL
