"""Responders on a case (联勤联动联处): applying `lq:assignments`, the console's actions on
assignments, the 督办 escalation sweep, and the JSON shape of an assignment.

Every function takes an explicit session and changes nothing outside it; the rules
themselves are dashboard/assignments.py's. What a responder's system must learn (a new
assignment, a transfer to it, a rework, an urge, an escalation) is written to the outbox
as an `lq:tasks` row in the same transaction (dashboard/contract/tasks.py,
dashboard/live/outbox.py), and published after the commit.

The console's actions (:func:`execute`) follow the rules of dashboard/services/dispatch.py in
the same order — role (403), input (422), case (404), version (409), lifecycle (409) — and
land on `lq:changes` the same way (a ``kind="change"`` timeline entry, an audit event, an
outbox row).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.assignments import (
    CALLBACK_RESULTS,
    ENDED,
    KIND_STATUSES,
    KINDS,
    WITHDRAWN,
    MoveEffect,
    apply_move,
    current_assignments,
    decide_move,
    default_role,
    escalation_level,
    follow,
    set_stage,
)
from dashboard.contract.assignments import AssignmentMessage
from dashboard.contract.changes import entry_fields, new_change_id
from dashboard.contract.entries import ID_RE, ContractError
from dashboard.contract.tasks import new_task_id, task_fields
from dashboard.live.outbox import TASKS, ChangeLog
from dashboard.models import Assignment, Case, CaseEvent, ChangeOutbox, Department, Unit, Zone
from dashboard.services.accounts import Principal, audit
from dashboard.services.cases import (
    assignments_of,
    case_assignments_api,
    case_extra_api,
    case_to_api,
    iso,
    ms,
    refresh_deadline,
)
from dashboard.services.dispatch import DispatchError, _load
from dashboard.sla import SlaPolicy
from dashboard.times import NO_DEADLINE
from dashboard.vocabulary import OPEN_STATUSES, TERMINAL

if TYPE_CHECKING:
    from dashboard.config import Settings
    from dashboard.runtime import Runtime

log = logging.getLogger(__name__)
NOTE_MAX = 1000
REASON_MAX = 300
_CONTROL = frozenset(chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127])


def _text(value: Any, name: str, limit: int, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return None
    text = value.strip()
    if len(text) > limit:
        errors[name] = f"at most {limit} characters (got {len(text)})"
    elif any(ch in _CONTROL for ch in text):
        errors[name] = "contains a control character"
    elif any("\ud800" <= ch <= "\udfff" for ch in text):
        errors[name] = "contains text that cannot be encoded (a lone UTF-16 surrogate)"
    return text or None


def _integer(value: Any) -> int | None:
    # JSON numbers only (true is not 1); a whole float such as 3.0 is accepted.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None
ESCALATION_STREAM = "escalation"  # CaseEvent.stream of a 督办 escalation (no stream entry)
MAX_ASSIGNEES = 20


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the assignment services need (from dashboard/config.py)."""

    accept_s: Mapping[str, int] = field(
        default_factory=lambda: {"department": 300, "station": 300, "unit": 60}
    )
    accept_by_assignee: Mapping[str, int] = field(default_factory=dict)
    exempt_categories: frozenset[str] = frozenset()
    exempt_sources: frozenset[str] = frozenset({"iot", "video_ai"})
    policy: SlaPolicy | None = None  # the case's resolution deadline: an assignment's done-by

    @classmethod
    def from_settings(cls, settings: Settings, policy: SlaPolicy | None = None) -> Rules:
        return cls(
            accept_s=dict(settings.accept_deadline_s),
            accept_by_assignee=dict(settings.accept_deadline_by_assignee),
            exempt_categories=frozenset(settings.callback_exempt_categories),
            exempt_sources=frozenset(settings.callback_exempt_sources),
            policy=policy,
        )

    def done_due(self, case: Case) -> datetime | None:
        """Done by the case's due time (its resolution deadline)."""
        if self.policy is None:
            return case.due_at if case.due_at is None or case.due_at < NO_DEADLINE else None
        return self.policy.resolution_deadline(
            category=case.category, priority=case.priority, reported_at=case.reported_at,
            due=case.due_at,
        )  # fmt: skip

    def accept_window_s(self, kind: str, assignee: str) -> int:
        if assignee in self.accept_by_assignee:
            return self.accept_by_assignee[assignee]
        return self.accept_s.get(kind, 300)

    def callback_exempt(self, case: Case) -> bool:
        return case.category in self.exempt_categories or case.source in self.exempt_sources


# -- reading back: dashboard/services/cases.py (assignment_to_api, case_extra_api) ------
# -- shared writers ---------------------------------------------------------------------
def _new_row(
    case: Case,
    *,
    assignee: str,
    kind: str,
    role: str,
    required: bool,
    status: str,
    ts: datetime,
    rules: Rules,
    now: datetime,
    parent: Assignment | None = None,
    entered_by: str | None = None,
) -> Assignment:
    row = Assignment(
        case_id=case.id,
        assignee_id=assignee,
        kind=kind,
        role=role,
        required=required,
        status=status,
        dispatched_at=ts,
        status_ts=ts,
        accept_due_at=ts + timedelta(seconds=rules.accept_window_s(kind, assignee)),
        done_due_at=rules.done_due(case),
        escalation=0,
        urge_count=0,
        parent_id=None if parent is None else parent.id,
        entered_by=entered_by,
        version=1,
        created_at=now,
        updated_at=now,
    )
    set_stage(row, status, ts)
    return row


def _task(
    session: Session,
    case: Case,
    row: Assignment,
    action: str,
    *,
    now: datetime,
    by: str | None,
    note: str | None = None,
    reason: str | None = None,
    level: int | None = None,
) -> tuple[str, dict[str, str]]:
    """An `lq:tasks` row in the outbox: tells the assignee what happened to its assignment."""
    task_id = new_task_id()
    fields = task_fields(
        {
            "task": task_id,
            "case": case.id,
            "assignment": row.id,
            "assignee": row.assignee_id,
            "kind": row.kind,
            "role": row.role,
            "action": action,
            "ts": iso(now),
            "by": by,
            "accept_due": iso(row.accept_due_at) if row.status == "dispatched" else None,
            "done_due": iso(row.done_due_at),
            "level": level,
            "note": note,
            "reason": reason,
            "category": case.category,
            "priority": case.priority,
            "title": case.title,
            "address": case.address,
            "lat": case.lat,
            "lon": case.lon,
            "version": row.version,
        }
    )
    session.add(
        ChangeOutbox(id=task_id, case_id=case.id, fields=fields, created_at=now, stream=TASKS)
    )
    return task_id, fields


def _known(session: Session, kind: str, assignee: str) -> bool:
    model: Any = {"unit": Unit, "department": Department, "station": Zone}[kind]
    return session.get(model, assignee) is not None


def _known_bulk(session: Session, wanted: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (kind, id) pairs exist: one query per kind."""
    by_kind: dict[str, set[str]] = {}
    for kind, ident in wanted:
        by_kind.setdefault(kind, set()).add(ident)
    found: set[tuple[str, str]] = set()
    for kind, ids in by_kind.items():
        column: Any = {"unit": Unit.id, "department": Department.id, "station": Zone.code}[kind]
        for chunk in _chunks(sorted(ids), 500):
            found |= {(kind, i) for i in session.scalars(select(column).where(column.in_(chunk)))}
    return found


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pick(rows: Sequence[Assignment], kind: str, assignee: str, ts: datetime) -> Assignment | None:
    """The assignment an entry at ``ts`` is about: the assignee's newest one dispatched by
    then, else its oldest (an entry older than every one of them fills in their past)."""
    mine = [r for r in rows if r.kind == kind and r.assignee_id == assignee]
    if not mine:
        return None
    before = [r for r in mine if r.dispatched_at <= ts]
    return before[-1] if before else mine[0]


def _sync_case_fields(case: Case, rows: Iterable[Assignment]) -> None:
    """Keep the case's single unit/department columns (the v1 contract's fields, the list and
    map filters) pointing at its lead department and first unit still on the case."""
    current = current_assignments(rows)
    lead = next((r for r in current if r.role == "lead"), None)
    if lead is not None and lead.kind == "department":
        case.department_id = lead.assignee_id
    if case.unit_id is None or not any(
        r.kind == "unit" and r.assignee_id == case.unit_id for r in current
    ):
        unit = next((r for r in current if r.kind == "unit"), None)
        if unit is not None:
            case.unit_id = unit.assignee_id


def _transfer_in(
    session: Session,
    case: Case,
    rows: list[Assignment],
    row: Assignment,
    to: str,
    ts: datetime,
    *,
    rules: Rules,
    now: datetime,
    by: str | None,
    reason: str | None,
) -> tuple[Assignment, list[tuple[str, dict[str, str]]]]:
    """The receiving department's own assignment (the chain: ``parent_id``)."""
    if row.id is None:
        session.flush()  # the chain needs the transferring assignment's id
    row.transferred_to = to
    existing = [
        r for r in rows if r.kind == "department" and r.assignee_id == to
        and r.status not in WITHDRAWN
    ]  # fmt: skip
    if existing:
        target = existing[-1]
        if target.parent_id is None and target.id != row.id:
            target.parent_id = row.id
        if row.role == "lead":
            target.role = "lead"
        target.required = target.required or row.required
        return target, []
    target = _new_row(
        case, assignee=to, kind="department", role=row.role, required=row.required,
        status="dispatched", ts=ts, rules=rules, now=now, parent=row, entered_by=None,
    )  # fmt: skip
    session.add(target)
    session.flush()
    rows.append(target)
    return target, [_task(session, case, target, "transferred_in", now=now, by=by, reason=reason)]


# -- lq:assignments ---------------------------------------------------------------------
@dataclass
class AssignmentOutcome:
    touched: dict[str, Case] = field(default_factory=dict)
    rejected: list[tuple[str, ContractError]] = field(default_factory=list)
    effects: dict[str, str] = field(default_factory=dict)
    tasks: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def apply_assignment_entries(
    session: Session,
    entries: Sequence[tuple[str, AssignmentMessage]],
    *,
    stream: str,
    rules: Rules,
    policy: SlaPolicy,
    now: datetime,
) -> AssignmentOutcome:
    """Apply `lq:assignments` entries in stream order inside the caller's transaction
    (idempotent: an entry already in a case's timeline changes nothing)."""
    out = AssignmentOutcome()
    if not entries:
        return out
    entry_ids = [entry_id for entry_id, _ in entries]
    seen = set(
        session.scalars(
            select(CaseEvent.entry_id).where(
                CaseEvent.stream == stream, CaseEvent.entry_id.in_(entry_ids)
            )
        )
    )
    case_ids = sorted({msg.case for _, msg in entries})
    cases = {
        c.id: c
        for c in session.scalars(select(Case).where(Case.id.in_(case_ids)).with_for_update())
    }
    rows_by_case: dict[str, list[Assignment]] = {cid: [] for cid in cases}
    for loaded in session.scalars(
        select(Assignment)
        .where(Assignment.case_id.in_(list(cases)))
        .order_by(Assignment.dispatched_at, Assignment.id)
    ):
        rows_by_case[loaded.case_id].append(loaded)
    known = _known_bulk(
        session,
        [(m.kind, m.assignee) for _, m in entries]
        + [("department", m.to) for _, m in entries if m.to is not None],
    )

    def is_known(kind: str, ident: str) -> bool:
        return (kind, ident) in known

    for entry_id, msg in entries:
        case = cases.get(msg.case)
        if entry_id in seen:
            out.effects[entry_id] = "duplicate"
            if case is not None:
                out.touched[case.id] = case
            continue
        if case is None:
            out.rejected.append(
                (entry_id, ContractError("unknown_case", f"no case {msg.case!r}", "case"))
            )
            continue
        if not is_known(msg.kind, msg.assignee):
            out.rejected.append(
                (
                    entry_id,
                    ContractError(
                        "unknown_assignee", f"no {msg.kind} {msg.assignee!r}", "assignee"
                    ),
                )
            )
            continue
        if msg.to is not None and not is_known("department", msg.to):
            out.rejected.append(
                (entry_id, ContractError("unknown_assignee", f"no department {msg.to!r}", "to"))
            )
            continue
        rows = rows_by_case[case.id]
        row = _pick(rows, msg.kind, msg.assignee, msg.ts)
        move = decide_move(row, msg.kind, msg.status, msg.ts)
        if move.effect is MoveEffect.ILLEGAL:
            out.rejected.append((entry_id, ContractError("illegal_move", move.reason, "status")))
            continue
        actor = f"{msg.kind}:{msg.assignee}"
        if row is None:
            role = msg.role or default_role(msg.kind)
            row = _new_row(
                case, assignee=msg.assignee, kind=msg.kind, role=role, required=role == "lead",
                status=msg.status, ts=msg.ts, rules=rules, now=now,
            )  # fmt: skip
            session.add(row)
            rows.append(row)
            rows.sort(key=lambda r: r.dispatched_at)  # stable: equal times keep their order
            changed = True
        else:
            changed = apply_move(row, move, msg.status, msg.ts)
            if msg.role == "lead" and row.role != "lead":
                row.role, row.required, changed = "lead", True, True
        if move.applies:
            if msg.status in WITHDRAWN and msg.reason:
                row.reason = msg.reason
            if msg.status == "done" and msg.note:
                row.result = msg.note
        if msg.status == "transferred" and msg.to is not None and move.applies:
            _, tasks = _transfer_in(
                session, case, rows, row, msg.to, msg.ts, rules=rules, now=now, by=actor,
                reason=msg.reason,
            )  # fmt: skip
            out.tasks += tasks
        if changed:
            row.version += 1
            row.updated_at = now
        before = (case.status, case.version)
        moved = follow(case, rows, msg.ts if move.applies else None)
        _sync_case_fields(case, rows)
        if changed or moved:
            case.version += 1
            case.updated_at = now
            refresh_deadline(case, policy, now)
        detail = move.reason or (f"case → {moved}" if moved else "")
        session.add(
            CaseEvent(
                case_id=case.id,
                ts=msg.ts,
                received_at=now,
                kind="assignment",
                status=msg.status,
                effect=str(move.effect),
                applied=move.applies,
                detail=f"{actor} {msg.status} {detail}".strip()[:300],
                fields=dict(msg.raw),
                stream=stream,
                entry_id=entry_id,
                actor=actor[:100],
                version=case.version,
            )
        )
        seen.add(entry_id)
        out.touched[case.id] = case
        out.effects[entry_id] = str(move.effect)
        log.debug("assignment %s: %s %s → %s", entry_id, before, move.effect, case.status)
    session.flush()
    return out


# -- the escalation sweep (督办) ---------------------------------------------------------
def sweep_escalations(
    session: Session, *, now: datetime, limit: int = 2000
) -> tuple[list[Case], list[tuple[str, dict[str, str]]]]:
    """Raise the 督办 level of late assignments of open cases (1 / 2 / 3: README
    "Deadlines and 督办"); each raise is a timeline entry, an audit event and an lq:tasks
    entry for the assignee. Returns the cases changed and the tasks written."""
    candidates = session.scalars(
        select(Assignment)
        .join(Case, Case.id == Assignment.case_id)
        .where(
            Assignment.status.not_in(list(ENDED)),
            Assignment.escalation < 3,
            Case.status.in_(list(OPEN_STATUSES)),  # a resolved case needs no one chased
            (Assignment.accept_due_at < now) | (Assignment.done_due_at < now),
        )
        .order_by(Assignment.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    changed: dict[str, Case] = {}
    tasks: list[tuple[str, dict[str, str]]] = []
    for row in candidates:
        level = escalation_level(row, now)
        if level <= row.escalation:
            continue
        case = session.get(Case, row.case_id)
        if case is None:
            continue
        row.escalation = level
        row.version += 1
        row.updated_at = now
        case.version += 1
        case.updated_at = now
        what = "acceptance" if row.status == "dispatched" and row.accept_due_at and (
            now > row.accept_due_at
        ) else "completion"
        session.add(
            CaseEvent(
                case_id=case.id, ts=now, received_at=now, kind="assignment", status=row.status,
                effect="escalated", applied=True,
                detail=f"{row.kind}:{row.assignee_id} late ({what}): 督办 level {level}",
                fields={"assignment": str(row.id), "level": str(level)},
                stream=ESCALATION_STREAM, entry_id=f"esc-{row.id}-{level}", actor="system",
                version=case.version,
            )
        )  # fmt: skip
        audit(
            session, actor="system", action="assignment.escalate", target=case.id,
            detail={"assignment": row.id, "assignee": row.assignee_id, "level": level},
        )  # fmt: skip
        tasks.append(_task(session, case, row, "escalated", now=now, by="system", level=level))
        changed[case.id] = case
    session.flush()
    return list(changed.values()), tasks


# -- the console's actions --------------------------------------------------------------
# Which permission each action needs (dashboard/policy.py PERMISSIONS).
ACTION_PERMISSION: Mapping[str, str] = {
    "dispatch": "dispatch_responders",
    "transfer": "transfer",
    "return": "return",
    "urge": "urge",  # 督办 is a lead's
    "progress": "progress",  # recorded on a responder's behalf (radio, phone)
    "callback": "callback",
    "close": "close",
}
ASSIGNMENT_ACTIONS: tuple[str, ...] = tuple(ACTION_PERMISSION)
BODY_FIELDS: Mapping[str, frozenset[str]] = {
    "dispatch": frozenset({"assignees", "note", "version"}),
    "transfer": frozenset({"assignment", "to", "reason", "note", "version"}),
    "return": frozenset({"assignment", "reason", "note", "version"}),
    "urge": frozenset({"assignment", "note", "version"}),
    "progress": frozenset({"assignment", "status", "note", "reason", "to", "version"}),
    "callback": frozenset({"result", "note", "version"}),
    "close": frozenset({"reason", "note", "version"}),
}


@dataclass(frozen=True, slots=True)
class AssigneeSpec:
    id: str
    kind: str
    role: str
    required: bool


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action: str
    version: int
    assignees: tuple[AssigneeSpec, ...] = ()
    assignment: int | None = None
    status: str | None = None
    to: str | None = None
    reason: str | None = None
    note: str | None = None
    result: str | None = None


@dataclass
class ActionOutcome:
    change_id: str
    fields: dict[str, str]
    effect: str
    case: dict[str, Any]
    tasks: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def check_permission(principal: Principal | None, action: str) -> None:
    if action not in ACTION_PERMISSION:
        raise DispatchError(404, f"unknown action {action[:40]!r}", code="unknown_action")
    if principal is None:
        raise DispatchError(401, "authentication required", code="unauthenticated")
    if not principal.can(ACTION_PERMISSION[action]):
        raise DispatchError(
            403, f"the role {principal.role!r} may not {action} cases", code="forbidden"
        )


def _bad(errors: Mapping[str, str]) -> DispatchError:
    return DispatchError(
        422, "invalid input: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
        errors, code="bad_input",
    )  # fmt: skip


def _assignees(value: Any, errors: dict[str, str]) -> tuple[AssigneeSpec, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ASSIGNEES:
        errors["assignees"] = f"a list of 1-{MAX_ASSIGNEES} assignees ({{id, kind, role}})"
        return ()
    out: list[AssigneeSpec] = []
    for n, item in enumerate(value):
        where = f"assignees[{n}]"
        if not isinstance(item, Mapping):
            errors[where] = "must be an object {id, kind, role, required}"
            continue
        extra = sorted(set(item) - {"id", "kind", "role", "required"})
        ident, kind = item.get("id"), item.get("kind")
        role, required = item.get("role"), item.get("required", False)
        if extra:
            errors[where] = f"unknown field {str(extra[0])[:40]!r}"
        elif not isinstance(ident, str) or not ID_RE.fullmatch(ident):
            errors[where] = "id must be 1-64 characters of A-Z a-z 0-9 . _ : -"
        elif kind not in KINDS:
            errors[where] = f"kind must be one of {', '.join(KINDS)}"
        elif role is not None and (
            (kind == "unit" and role != "responder")
            or (kind != "unit" and role not in ("lead", "assist"))
        ):
            errors[where] = "role: lead | assist for departments and stations; a unit responds"
        elif not isinstance(required, bool):
            errors[where] = "required must be true or false"
        else:
            role = role or default_role(str(kind))
            out.append(AssigneeSpec(ident, str(kind), role, bool(required) or role == "lead"))
    keys = [(a.kind, a.id) for a in out]
    if len(set(keys)) != len(keys):
        errors["assignees"] = "an assignee is listed twice"
    if sum(1 for a in out if a.role == "lead") > 1:
        errors["assignees"] = "at most one lead (主办)"
    return tuple(out)


def parse_action(action: str, body: Any) -> ActionRequest:
    """Validate an action's body; every problem reported under its field (422)."""
    if not isinstance(body, Mapping):
        raise DispatchError(
            422, "the body must be a JSON object", {"body": "not an object"}, code="bad_input"
        )
    errors: dict[str, str] = {}
    allowed = BODY_FIELDS[action]
    for name in sorted(set(body) - allowed):
        errors[str(name)[:64]] = f"unknown field (allowed: {', '.join(sorted(allowed))})"
    version = _integer(body.get("version"))
    if "version" not in body:
        errors["version"] = "required: the case's version as you saw it"
    elif version is None or version < 1:
        errors["version"] = "must be a positive integer"
    req: dict[str, Any] = {
        "note": _text(body.get("note"), "note", NOTE_MAX, errors),
        "reason": _text(body.get("reason"), "reason", REASON_MAX, errors),
    }
    if action == "dispatch":
        req["assignees"] = _assignees(body.get("assignees"), errors)
    if "assignment" in allowed:
        assignment = _integer(body.get("assignment"))
        if assignment is None or assignment < 1:
            errors["assignment"] = "required: the id of one of the case's assignments"
        req["assignment"] = assignment
    if action == "progress":
        status = body.get("status")
        if status not in ("accepted", "en_route", "on_scene", "done", "returned", "transferred"):
            errors["status"] = "accepted | en_route | on_scene | done | returned | transferred"
        req["status"] = status if isinstance(status, str) else None
    if action == "transfer" or (action == "progress" and body.get("status") == "transferred"):
        to = body.get("to")
        if not isinstance(to, str) or not ID_RE.fullmatch(to):
            errors["to"] = "required: the receiving department's code"
        req["to"] = to if isinstance(to, str) else None
    elif "to" in body and action == "progress":
        errors["to"] = "only for status transferred"
    status = {"transfer": "transferred", "return": "returned"}.get(action, req.get("status"))
    if status in ("returned", "transferred") and req["reason"] is None and "reason" not in errors:
        errors["reason"] = "required: why (for the center and the audit trail)"
    if action == "urge" and req["note"] is None and "note" not in errors:
        errors["note"] = "required: what the lead asks of the responder (督办)"
    if action == "callback":
        result = body.get("result")
        if result not in CALLBACK_RESULTS:
            errors["result"] = f"required: one of {', '.join(CALLBACK_RESULTS)}"
        req["result"] = result if isinstance(result, str) else None
    if errors:
        raise _bad(errors)
    return ActionRequest(action=action, version=version or 0, **req)


def _conflict(case: Case, why: str, code: str) -> DispatchError:
    return DispatchError(409, why, {"status": case.status}, code=code, current_version=case.version)


def _event(
    session: Session,
    case: Case,
    row: Assignment,
    *,
    status: str,
    effect: str,
    detail: str,
    entry_id: str,
    stream: str,
    actor: str,
    now: datetime,
) -> None:
    session.add(
        CaseEvent(
            case_id=case.id, ts=now, received_at=now, kind="assignment", status=status,
            effect=effect, applied=True, detail=detail[:300],
            fields={"assignment": str(row.id), "assignee": row.assignee_id, "kind": row.kind,
                    "role": row.role, "entered_by": actor},
            stream=stream, entry_id=entry_id[:40], actor=actor[:100], version=case.version,
        )
    )  # fmt: skip


def _rework(
    session: Session,
    case: Case,
    rows: list[Assignment],
    *,
    rules: Rules,
    now: datetime,
    actor: str,
    why: str,
) -> list[tuple[Assignment, tuple[str, dict[str, str]]]]:
    """Back to the lead department (返工): a new assignment for it; the case → dispatched."""
    case.status = "dispatched"
    case.status_since = now
    case.rework_count += 1
    case.floor_ts = now
    leads = [r for r in current_assignments(rows) if r.role == "lead"] or [
        r for r in rows if r.role == "lead"
    ]
    out = []
    for lead in leads[-1:]:
        row = _new_row(
            case, assignee=lead.assignee_id, kind=lead.kind, role="lead", required=True,
            status="dispatched", ts=now, rules=rules, now=now, parent=lead, entered_by=actor,
        )  # fmt: skip
        session.add(row)
        session.flush()
        rows.append(row)
        out.append((row, _task(session, case, row, "rework", now=now, by=actor, note=why)))
    return out


def _find(rows: Sequence[Assignment], assignment_id: int | None, case: Case) -> Assignment:
    row = next((r for r in rows if r.id == assignment_id), None)
    if row is None:
        raise DispatchError(
            404, f"case {case.id} has no assignment {assignment_id}", {"assignment": "unknown"},
            code="not_found",
        )  # fmt: skip
    return row


def _apply_action(
    session: Session,
    case: Case,
    req: ActionRequest,
    *,
    actor: str,
    change_id: str,
    stream: str,
    rules: Rules,
    now: datetime,
) -> tuple[str, dict[str, Any], list[tuple[str, dict[str, str]]]]:
    """Change the case and its assignments; return the effect, the change entry's extra
    fields and the tasks written."""
    rows = assignments_of(session, case.id)
    tasks: list[tuple[str, dict[str, str]]] = []
    values: dict[str, Any] = {"prev_status": case.status}
    terminal = case.status in TERMINAL
    action = req.action
    if action == "dispatch":
        if terminal:
            raise _conflict(case, f"the case is {case.status}: reopen it first", "case_closed")
        errors: dict[str, str] = {}
        for n, spec in enumerate(req.assignees):
            if not _known(session, spec.kind, spec.id):
                errors[f"assignees[{n}]"] = f"no {spec.kind} {spec.id!r}"
        if errors:
            raise DispatchError(422, "; ".join(errors.values()), errors, code="unknown_reference")
        current = current_assignments(rows)
        on_case = {(r.kind, r.assignee_id) for r in current if r.status not in ENDED}
        again = [s.id for s in req.assignees if (s.kind, s.id) in on_case]
        if again:
            raise _conflict(case, f"already on the case: {', '.join(again)}", "already_assigned")
        has_lead = any(r.role == "lead" for r in current) or any(
            s.role == "lead" for s in req.assignees
        )
        if any(s.role == "lead" for s in req.assignees) and any(
            r.role == "lead" and r.status not in ENDED for r in current
        ):
            raise _conflict(case, "the case already has a lead (主办): transfer it", "has_lead")
        specs = list(req.assignees)
        if not has_lead:  # the first department or station leads
            first = next((s for s in specs if s.kind != "unit"), None)
            if first is not None:
                specs[specs.index(first)] = AssigneeSpec(first.id, first.kind, "lead", True)
                has_lead = True
        effect = "dispatched"
        if case.status == "resolved":
            case.status, case.status_since = "dispatched", now
            case.rework_count += 1
            case.floor_ts = now
            effect = "rework"
        for n, spec in enumerate(specs):
            row = _new_row(
                case, assignee=spec.id, kind=spec.kind, role=spec.role,
                # A case with units only resolves when every unit is done.
                required=spec.required or (spec.kind == "unit" and not has_lead),
                status="dispatched", ts=now, rules=rules, now=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            rows.append(row)
            tasks.append(_task(session, case, row, "dispatched", now=now, by=actor, note=req.note))
            _event(
                session, case, row, status="dispatched", effect="created",
                detail=f"{spec.kind}:{spec.id} dispatched as {spec.role}",
                entry_id=f"{change_id}:{n}", stream=stream, actor=actor, now=now,
            )  # fmt: skip
        values["assignees"] = ",".join(f"{s.kind}:{s.id}:{s.role}" for s in specs)
    elif action in ("progress", "transfer", "return"):
        row = _find(rows, req.assignment, case)
        status = {"transfer": "transferred", "return": "returned"}.get(action, req.status or "")
        if terminal:
            raise _conflict(case, f"the case is {case.status}", "case_closed")
        if status not in KIND_STATUSES[row.kind]:
            raise _conflict(case, f"a {row.kind} does not report {status}", "illegal_move")
        if status == "transferred" and session.get(Department, req.to or "") is None:
            raise DispatchError(
                422, f"no department {req.to!r}", {"to": "unknown"}, code="unknown_reference"
            )
        move = decide_move(row, row.kind, status, now)
        if move.effect is not MoveEffect.ADVANCE:
            raise _conflict(
                case,
                move.reason or f"the assignment is already {row.status}",
                "illegal_move",
            )
        apply_move(row, move, status, now)
        row.entered_by = actor
        row.version += 1
        row.updated_at = now
        if status in WITHDRAWN:
            row.reason = req.reason
        if status == "done":
            row.result = req.note
        _event(
            session, case, row, status=status, effect="advanced",
            detail=f"{row.kind}:{row.assignee_id} {status} (entered by {actor})",
            entry_id=f"{change_id}:0", stream=stream, actor=actor, now=now,
        )  # fmt: skip
        if status == "transferred" and req.to is not None:
            _, more = _transfer_in(
                session, case, rows, row, req.to, now, rules=rules, now=now, by=actor,
                reason=req.reason,
            )  # fmt: skip
            tasks += more
            values["to"] = req.to
        values |= {
            "assignment": row.id,
            "assignee": row.assignee_id,
            "kind": row.kind,
            "entered_by": actor,
            "result": row.result if status == "done" else None,
        }
        effect = status
    elif action == "urge":
        row = _find(rows, req.assignment, case)
        if terminal or row.status in ENDED:
            raise _conflict(case, f"the assignment is {row.status}: nothing to urge", "not_open")
        row.last_urged_at = now
        row.urge_count += 1
        row.version += 1
        row.updated_at = now
        tasks.append(_task(session, case, row, "urged", now=now, by=actor, note=req.note))
        _event(
            session, case, row, status=row.status, effect="urged",
            detail=f"督办 {row.kind}:{row.assignee_id}: {req.note or ''}",
            entry_id=f"{change_id}:0", stream=stream, actor=actor, now=now,
        )  # fmt: skip
        values |= {"assignment": row.id, "assignee": row.assignee_id, "kind": row.kind}
        effect = "urged"
    elif action == "callback":
        if case.status != "resolved":
            raise _conflict(
                case, f"a callback follows resolution; the case is {case.status}", "not_resolved"
            )
        case.callback_result = req.result
        case.callback_at = now
        case.callback_by = actor[:100]
        case.callback_note = req.note
        values["result"] = req.result
        effect = "callback"
        if req.result == "unsatisfied":
            for row, task in _rework(
                session, case, rows, rules=rules, now=now, actor=actor,
                why=req.note or "callback: unsatisfied (不满意)",
            ):  # fmt: skip
                tasks.append(task)
                _event(
                    session, case, row, status="dispatched", effect="rework",
                    detail=f"返工: back to {row.kind}:{row.assignee_id}",
                    entry_id=f"{change_id}:0", stream=stream, actor=actor, now=now,
                )  # fmt: skip
            effect = "rework"
    else:  # close: 核查结案
        if case.status != "resolved":
            raise _conflict(
                case, f"only a resolved case is closed; this one is {case.status}", "not_resolved"
            )
        # An unsatisfied callback sent the case back: its new round needs its own callback.
        called = case.callback_result not in (None, "unsatisfied")
        if not called and req.reason is None and not rules.callback_exempt(case):
            raise DispatchError(
                422, "closing without a callback (回访) needs a reason",
                {"reason": "required: no callback was recorded"}, code="bad_input",
            )  # fmt: skip
        case.status, case.status_since = "closed", now
        if case.closed_at is None:
            case.closed_at = now
        case.closed_by = actor[:100]
        case.close_reason = req.reason
        effect = "closed"
    moved = follow(case, rows)
    if moved:
        values["moved"] = moved
    _sync_case_fields(case, rows)
    case.status_ts = max(case.status_ts, now)
    values |= {"status": case.status, "note": req.note, "reason": req.reason}
    values.pop("moved", None)
    return effect, values, tasks


def execute(
    session: Session,
    *,
    principal: Principal | None,
    action: str,
    case_id: str,
    body: Any,
    now: datetime,
    policy: SlaPolicy,
    rules: Rules,
    stream: str,
    zone: tzinfo,
    ip: str | None = None,
) -> ActionOutcome:
    """Check and apply one assignment action to one case inside the caller's transaction."""
    check_permission(principal, action)
    assert principal is not None
    req = parse_action(action, body)
    case = _load(session, case_id)
    if case.version != req.version:
        raise DispatchError(
            409,
            f"case {case.id} was changed by someone else since you loaded it (you sent "
            f"version {req.version}, it is now at {case.version}): reload it and try again",
            {"version": f"stale: the case is at version {case.version}"},
            code="stale_version",
            current_version=case.version,
        )
    change_id = new_change_id()
    effect, values, tasks = _apply_action(
        session, case, req, actor=principal.actor, change_id=change_id, stream=stream,
        rules=rules, now=now,
    )  # fmt: skip
    case.version += 1
    case.updated_at = now
    refresh_deadline(case, policy, now)
    fields = entry_fields(
        {
            "change": change_id,
            "case": case.id,
            "action": action,
            "actor": principal.actor,
            "ts": iso(now),
            "version": case.version,
            "base_version": req.version,
            **values,
        }
    )
    session.add(
        CaseEvent(
            case_id=case.id, ts=now, received_at=now, kind="change", status=case.status,
            effect=effect, applied=True,
            detail=" ".join(f"{k}={v}" for k, v in fields.items()
                            if k in ("assignees", "assignee", "to", "result", "reason"))[:300]
            or effect,
            fields=fields, stream=stream, entry_id=change_id, actor=principal.actor[:100],
            version=case.version,
        )
    )  # fmt: skip
    session.add(ChangeOutbox(id=change_id, case_id=case.id, fields=fields, created_at=now))
    audit(
        session, actor=principal.actor, action=f"case.{action}", target=case.id, ip=ip,
        detail={"change": change_id, "version": case.version, "effect": effect},
    )  # fmt: skip
    session.flush()
    data = case_to_api(case, zone=zone, now=now)
    data["assignments"] = case_assignments_api(session, case.id, zone=zone, now=now)
    data |= case_extra_api(case, zone=zone)
    return ActionOutcome(change_id, fields, effect, data, tasks)


def assignment_live(rows: Iterable[Assignment], now: datetime) -> dict[str, Any]:
    """A compact summary of a case's responders (for a live record or a list row)."""
    current = current_assignments(rows)
    departments = [r for r in current if r.kind != "unit"]
    return {
        "responders": len(current),
        "departments": len(departments),
        "unaccepted": sum(1 for r in current if r.status == "dispatched"),
        "escalation": max((max(r.escalation, escalation_level(r, now)) for r in current),
                          default=0),
        "next_due": ms(min((r.accept_due_at for r in current
                            if r.status == "dispatched" and r.accept_due_at), default=None)),
    }  # fmt: skip


def perform(
    rt: Runtime,
    *,
    principal: Principal | None,
    action: str,
    case_id: str,
    body: Any,
    ip: str | None = None,
) -> ActionOutcome:
    """Run one assignment action in its own transaction, then publish its change to
    lq:changes and its tasks to lq:tasks (after the commit: dashboard/live/outbox.py)."""
    now = rt.now()
    with rt.db.write() as session:
        outcome = execute(
            session, principal=principal, action=action, case_id=case_id, body=body, now=now,
            policy=rt.policy, rules=Rules.from_settings(rt.settings, rt.policy),
            stream=rt.keys.changes, zone=rt.settings.zone, ip=ip,
        )  # fmt: skip
    log_ = ChangeLog(rt.redis, rt.keys, rt.settings.changes_maxlen)
    log_.publish(rt.db, [(outcome.change_id, outcome.fields)], now=now)
    if outcome.tasks:
        log_.publish(rt.db, outcome.tasks, now=now, stream=TASKS)
    return outcome


def ensure_lead_assignment(session: Session, case: Case, *, now: datetime) -> Assignment | None:
    """A v1 case's department as its one lead assignment (the 311 importers: a request's
    agency), its progress taken from the case's stages; nothing when the case has no
    department or already has an assignment for it."""
    if case.department_id is None:
        return None
    have = session.scalar(
        select(Assignment.id).where(
            Assignment.case_id == case.id, Assignment.assignee_id == case.department_id
        )
    )
    if have is not None:
        return None
    start = case.dispatched_at or case.registered_at or case.reported_at
    done = case.resolved_at or case.closed_at
    status = "done" if done else "accepted" if case.on_scene_at else "dispatched"
    row = Assignment(
        case_id=case.id, assignee_id=case.department_id, kind="department", role="lead",
        required=True, status=status, dispatched_at=start, accepted_at=case.on_scene_at,
        done_at=done, status_ts=done or case.on_scene_at or start, done_due_at=case.due_at,
        escalation=0, urge_count=0, version=1, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    return row
