"""Responders on a case (联勤联动联处): the assignment lifecycle and how the case follows it.

Pure rules over small views (any object with the attributes named below: an ORM row of
``Assignment`` / ``Case`` or a plain dataclass in the tests), so that the worker, the
console's services and the property-based tests share one definition (README "Responders
(assignments)", the stage table).

An assignment's progress::

    dispatched → accepted → en_route → on_scene → done        (units, stations)
    dispatched → accepted → done                              (departments)
    dispatched | accepted | … → returned    (退回: not our remit, back to the center)
    dispatched | accepted     → transferred (转办: to another department, departments/stations)

The rules, in the order they are checked (:func:`decide_move`):

* An entry for an assignee with no assignment on the case creates one (any status may
  create it: a department system may claim a case it was not dispatched, 认领).
* A forward move (higher rank) applies whatever its time: progress only ever grows, so
  the outcome does not depend on the order the entries arrive in.
* A lower (or equal-ranked earlier) status is *late*: kept in the timeline, it may fill in
  the time a stage was first reached (the earliest time wins), never moves it back.
* ``done``, ``returned`` and ``transferred`` end an assignment; a different ending after
  one is an *illegal move* (dead-lettered): a returned assignment is not done.
* ``en_route`` / ``on_scene`` are a unit's or a station's; ``transferred`` is a
  department's or a station's: anything else is an illegal move.

The case follows its responders (:func:`derived_stage`): ``dispatched`` once it has an
assignment, ``on_scene`` once a responder is on scene, ``resolved`` once the lead and
every required co-handler are done (a case with neither, say units only, resolves by a
case-level entry or the console, not by its responders).
Only facts from the case's current round count (after its last rework or reopen: the
responders sent back in that round, when there are any, decide its resolution), only
each assignee's newest assignment counts (a rework's new one supersedes the done one),
and returned or transferred assignments do not count. The case moves only forward, only
while open (:func:`follow`); producers' case-level entries still apply as before.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from dashboard.vocabulary import OPEN_STATUSES, RANK, STAGE_COLUMNS


class AStatus(enum.StrEnum):
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    DONE = "done"
    RETURNED = "returned"
    TRANSFERRED = "transferred"


ASSIGNMENT_STATUSES: tuple[str, ...] = tuple(s.value for s in AStatus)
A_RANK: Mapping[str, int] = {
    "dispatched": 0, "accepted": 1, "en_route": 2, "on_scene": 3,
    "done": 4, "returned": 4, "transferred": 4,
}  # fmt: skip
ENDED: frozenset[str] = frozenset({"done", "returned", "transferred"})
WITHDRAWN: frozenset[str] = frozenset({"returned", "transferred"})  # no longer on the case
KINDS: tuple[str, ...] = ("unit", "department", "station")
ROLES: tuple[str, ...] = ("lead", "assist", "responder")
# Which statuses each kind of assignee may report.
KIND_STATUSES: Mapping[str, frozenset[str]] = {
    "unit": frozenset(ASSIGNMENT_STATUSES) - {"transferred"},
    "station": frozenset(ASSIGNMENT_STATUSES),
    "department": frozenset(ASSIGNMENT_STATUSES) - {"en_route", "on_scene"},
}
A_STAGE_COLUMNS: Mapping[str, str] = {s: f"{s}_at" for s in ASSIGNMENT_STATUSES}

# 回访 (callback) results; the reached ones count in the satisfaction rate.
CALLBACK_RESULTS: tuple[str, ...] = (
    "satisfied", "basically_satisfied", "unsatisfied", "unreachable",
)  # fmt: skip
CALLBACK_SATISFIED: frozenset[str] = frozenset({"satisfied", "basically_satisfied"})
CALLBACK_REACHED: frozenset[str] = frozenset(CALLBACK_RESULTS) - {"unreachable"}


def default_role(kind: str) -> str:
    return "responder" if kind == "unit" else "assist"


class AssignmentLike(Protocol):
    assignee_id: str
    kind: str
    role: str
    required: bool
    status: str
    status_ts: datetime
    dispatched_at: datetime
    accepted_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    done_at: datetime | None
    returned_at: datetime | None
    transferred_at: datetime | None


class MoveEffect(enum.StrEnum):
    CREATE = "created"
    ADVANCE = "advanced"
    UPDATE = "updated"
    LATE = "late"
    ILLEGAL = "illegal"


@dataclass(frozen=True, slots=True)
class Move:
    effect: MoveEffect
    reason: str = ""

    @property
    def applies(self) -> bool:
        return self.effect in (MoveEffect.CREATE, MoveEffect.ADVANCE, MoveEffect.UPDATE)


def kind_allows(kind: str, status: str) -> bool:
    return status in KIND_STATUSES.get(kind, frozenset())


def decide_move(current: AssignmentLike | None, kind: str, status: str, ts: datetime) -> Move:
    """What an entry reporting ``status`` at ``ts`` does to an assignment (README table)."""
    if not kind_allows(kind, status):
        return Move(MoveEffect.ILLEGAL, f"a {kind} does not report {status}")
    if current is None:
        return Move(MoveEffect.CREATE)
    now = current.status
    if status == now:
        if ts < current.status_ts:
            return Move(MoveEffect.LATE, f"older than the assignment's latest entry ({now})")
        return Move(MoveEffect.UPDATE)
    if now in ENDED and status in ENDED:
        return Move(
            MoveEffect.ILLEGAL,
            f"illegal move {now} → {status}: the assignment has already ended ({now})",
        )
    if A_RANK[status] > A_RANK[now]:
        return Move(MoveEffect.ADVANCE)
    return Move(MoveEffect.LATE, f"out of order: the assignment is already {now}")


def set_stage(row: Any, status: str, ts: datetime) -> bool:
    """Record when ``row`` first reached ``status`` (the earliest time wins)."""
    column = A_STAGE_COLUMNS[status]
    current = getattr(row, column)
    if current is None or ts < current:
        setattr(row, column, ts)
        return True
    return False


def apply_move(row: AssignmentLike, move: Move, status: str, ts: datetime) -> bool:
    """Apply a decided move to an existing assignment; whether anything changed."""
    changed = False
    if ts < row.dispatched_at:  # it was out there by then at least (an entry arrived late)
        row.dispatched_at = ts
        changed = True
    if move.effect is MoveEffect.ADVANCE:
        row.status = status
        changed = True
    if move.effect in (MoveEffect.ADVANCE, MoveEffect.UPDATE, MoveEffect.LATE):
        changed = set_stage(row, status, ts) or changed
    if move.applies and ts > row.status_ts:
        row.status_ts = ts
        changed = True
    return changed


# -- the case follows its responders -----------------------------------------------------
_A = TypeVar("_A", bound=AssignmentLike)


def current_assignments(assignments: Iterable[_A]) -> list[_A]:
    """Each assignee's newest assignment (by dispatch time) that is still on the case."""
    newest: dict[tuple[str, str], _A] = {}
    for a in assignments:
        key = (a.kind, a.assignee_id)
        seen = newest.get(key)
        if seen is None or a.dispatched_at >= seen.dispatched_at:
            newest[key] = a
    return [a for a in newest.values() if a.status not in WITHDRAWN]


def _since(value: datetime | None, floor: datetime | None) -> datetime | None:
    if value is None or (floor is not None and value < floor):
        return None
    return value


def derived_stage(
    assignments: Iterable[AssignmentLike], floor: datetime | None = None
) -> dict[str, datetime]:
    """The case stages its responders have reached, each with the time it was reached."""
    rows = list(assignments)
    current = current_assignments(rows)
    out: dict[str, datetime] = {}
    dispatched = [t for a in rows if (t := _since(a.dispatched_at, floor)) is not None]
    if dispatched:
        out["dispatched"] = min(dispatched)
    on_scene = [t for a in rows if (t := _since(a.on_scene_at, floor)) is not None]
    if on_scene:
        out["on_scene"] = min(on_scene)
    needed = [a for a in current if a.role == "lead" or a.required]
    if floor is not None:  # after a rework: the responders sent back in this round
        needed = [a for a in needed if a.dispatched_at >= floor] or needed
    if needed:
        done = [_since(a.done_at, floor) if a.status == "done" else None for a in needed]
        if all(t is not None for t in done):
            out["resolved"] = max(t for t in done if t is not None)
    return out


class CaseLike(Protocol):
    status: str
    status_since: datetime
    status_ts: datetime
    floor_ts: datetime | None


def behind_responders(case: CaseLike, status: str, assignments: Iterable[AssignmentLike]) -> bool:
    """A producer's case-level entry behind the stage the responders moved the case to is
    late, not an impossible transition: the responders got there first."""
    if case.status not in RANK or status not in RANK or RANK[status] >= RANK[case.status]:
        return False
    if case.status == "closed":
        return False
    return case.status in derived_stage(assignments, case.floor_ts)


def follow(
    case: CaseLike, assignments: Iterable[AssignmentLike], ts: datetime | None = None
) -> str | None:
    """Move an open case forward to the stage its responders reached; fill in earlier
    stage times. Returns the new status when the case moved, else None. Never moves a
    case backwards, never moves a resolved, closed or cancelled case. ``ts``: the time of
    the applied assignment entry that led here (the case's newest time moves to it)."""
    stages = derived_stage(assignments, case.floor_ts)
    moved: str | None = None
    for status, reached in sorted(stages.items(), key=lambda kv: RANK[kv[0]]):
        column = STAGE_COLUMNS[status]
        if case.status in OPEN_STATUSES and RANK[status] > RANK[case.status]:
            case.status = status
            case.status_since = reached
            moved = status
        if case.status != "cancelled" and RANK.get(case.status, -1) >= RANK[status]:
            recorded = getattr(case, column)
            if recorded is None or reached < recorded:
                setattr(case, column, reached)
    if moved is not None:
        case.status_ts = max(case.status_ts, stages[moved])
    if ts is not None and ts > case.status_ts:
        case.status_ts = ts
    return moved


# -- deadlines and 督办 ------------------------------------------------------------------
class DeadlineLike(Protocol):
    status: str
    dispatched_at: datetime
    accept_due_at: datetime | None
    done_due_at: datetime | None


def _level(start: datetime, due: datetime | None, now: datetime) -> int:
    if due is None or now <= due:
        return 0
    window = max((due - start).total_seconds(), 1.0)
    late = (now - due).total_seconds()
    return 1 if late < window else 2 if late < 2 * window else 3


def escalation_level(row: DeadlineLike, now: datetime) -> int:
    """督办 level of an assignment at ``now``: 0 on time; 1 once past its deadline (not
    accepted by its acceptance deadline, or not done by its done deadline); 2 when late by
    1× the deadline's window (from dispatch to the deadline); 3 when late by 2×."""
    if row.status in ENDED:
        return 0
    level = _level(row.dispatched_at, row.done_due_at, now)
    if row.status == "dispatched":
        level = max(level, _level(row.dispatched_at, row.accept_due_at, now))
    return level


def overdue(row: DeadlineLike, now: datetime) -> bool:
    return escalation_level(row, now) > 0
