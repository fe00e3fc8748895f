"""Cases read back (the JSON shapes of the API and of the live map) and their deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dashboard.assignments import A_STAGE_COLUMNS, escalation_level
from dashboard.models import Assignment, Case, CaseEvent
from dashboard.times import iso as iso  # every read path renders times with it: it never raises
from dashboard.vocabulary import STAGE_COLUMNS, TERMINAL

if TYPE_CHECKING:
    from dashboard.sla import SlaPolicy


def ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def is_overdue(case: Case, now: datetime) -> bool:
    return case.deadline_at is not None and case.status not in TERMINAL and now > case.deadline_at


def refresh_deadline(case: Case, policy: SlaPolicy, now: datetime) -> None:
    """Recompute a case's current stage deadline and overdue flag after it changed (the
    worker's ingest and the console's actions both call it; the sweep flags the rest)."""
    case.deadline_at = policy.stage_deadline(
        status=case.status,
        status_since=case.status_since,
        category=case.category,
        priority=case.priority,
        reported_at=case.reported_at,
        due=case.due_at,
    )
    case.overdue = case.deadline_at is not None and now > case.deadline_at


def case_to_api(case: Case, *, zone: tzinfo, now: datetime) -> dict[str, Any]:
    """A case with the stream contract's field names (README "Reading back", docs/contract.md)."""
    return {
        "id": case.id,
        "status": case.status,
        "ts": iso(case.status_ts, zone),
        "lat": case.lat,
        "lon": case.lon,
        "category": case.category,
        "priority": case.priority,
        "source": case.source,
        "title": case.title,
        "description": case.description,
        "address": case.address,
        "grid": case.grid_code,
        "unit": case.unit_id,
        "department": case.department_id,
        "due": iso(case.due_at, zone),
        "deadline": iso(case.deadline_at, zone),
        "overdue": is_overdue(case, now),
        "version": case.version,
        "rework_count": case.rework_count,
        "stages": {status: iso(getattr(case, col), zone) for status, col in STAGE_COLUMNS.items()},
    }


def event_to_api(event: CaseEvent, *, zone: tzinfo) -> dict[str, Any]:
    return {
        "ts": iso(event.ts, zone),
        "received_at": iso(event.received_at, zone),
        "kind": event.kind,
        "status": event.status,
        "effect": event.effect,
        "applied": event.applied,
        "detail": event.detail,
        "fields": event.fields,
        "stream": event.stream,
        "entry_id": event.entry_id,
        "actor": event.actor,
        "version": event.version,
    }


# -- responders (issue 13: dashboard/services/assignments.py writes them) ---------------
def assignment_to_api(row: Assignment, *, zone: tzinfo, now: datetime) -> dict[str, Any]:
    level = escalation_level(row, now)
    return {
        "id": row.id,
        "assignee": row.assignee_id,
        "kind": row.kind,
        "role": row.role,
        "required": row.required,
        "status": row.status,
        "times": {s: iso(getattr(row, col), zone) for s, col in A_STAGE_COLUMNS.items()},
        "accept_due": iso(row.accept_due_at, zone),
        "done_due": iso(row.done_due_at, zone),
        "overdue": level > 0,
        "escalation": max(level, row.escalation),
        "last_urged": iso(row.last_urged_at, zone),
        "urge_count": row.urge_count,
        "parent": row.parent_id,
        "transferred_to": row.transferred_to,
        "reason": row.reason,
        "result": row.result,
        "entered_by": row.entered_by,
        "version": row.version,
    }


def assignments_of(session: Session, case_id: str) -> list[Assignment]:
    return list(
        session.scalars(
            select(Assignment)
            .where(Assignment.case_id == case_id)
            .order_by(Assignment.dispatched_at, Assignment.id)
        )
    )


def case_assignments_api(
    session: Session, case_id: str, *, zone: tzinfo, now: datetime
) -> list[dict[str, Any]]:
    return [assignment_to_api(a, zone=zone, now=now) for a in assignments_of(session, case_id)]


def case_extra_api(case: Case, *, zone: tzinfo) -> dict[str, Any]:
    """The callback and closure fields of a case (GET /api/v1/cases/<id>)."""
    return {
        "callback": None
        if case.callback_result is None
        else {
            "result": case.callback_result,
            "at": iso(case.callback_at, zone),
            "by": case.callback_by,
            "note": case.callback_note,
        },
        "closed_by": case.closed_by,
        "close_reason": case.close_reason,
    }



def get_case(
    session: Session, *, case_id: str, zone: tzinfo, now: datetime
) -> dict[str, Any] | None:
    """One case with its whole timeline, oldest first."""
    case = session.get(Case, case_id)
    if case is None:
        return None
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.ts, CaseEvent.id)
    )
    data = case_to_api(case, zone=zone, now=now)
    data["timeline"] = [event_to_api(e, zone=zone) for e in events]
    data["assignments"] = case_assignments_api(session, case_id, zone=zone, now=now)
    data |= case_extra_api(case, zone=zone)
    return data


def list_cases(
    session: Session,
    *,
    zone: tzinfo,
    now: datetime,
    status: list[str] | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Cases newest first, by status and/or reported since a time."""
    query = select(Case)
    if status:
        query = query.where(Case.status.in_(status))
    if since is not None:
        query = query.where(Case.reported_at >= since)
    query = query.order_by(Case.reported_at.desc(), Case.id).limit(limit)
    return [case_to_api(c, zone=zone, now=now) for c in session.scalars(query)]


def case_to_live(case: Case, *, now: datetime) -> dict[str, Any]:
    """The compact shape the live map keeps per case (window.lianqin.cases)."""
    return {
        "id": case.id,
        "status": case.status,
        "lat": round(case.lat, 6),
        "lon": round(case.lon, 6),
        "overdue": is_overdue(case, now),
        "deadline": ms(case.deadline_at),
        "version": case.version,
        "category": case.category,
        "priority": case.priority,
        "source": case.source,
        "grid": case.grid_code,
        "title": case.title,
        "unit": case.unit_id,
        "department": case.department_id,  # the dispatch console filters by it
        "reported": ms(case.reported_at),
    }


def start_of_day(now: datetime, zone: tzinfo) -> datetime:
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


_LIVE_COLUMNS = (
    Case.id,
    Case.status,
    Case.lat,
    Case.lon,
    Case.deadline_at,
    Case.version,
    Case.category,
    Case.priority,
    Case.source,
    Case.grid_code,
    Case.title,
    Case.unit_id,
    Case.department_id,
    Case.reported_at,
)


def live_cases(session: Session, *, zone: tzinfo, now: datetime) -> list[dict[str, Any]]:
    """What the wall shows: every case reported today, plus older ones still open.

    The same shape as ``case_to_live`` (a test keeps them equal), read as plain
    columns: building ORM objects made a 50,000-case snapshot three times slower.
    """
    today = start_of_day(now, zone)
    query = select(*_LIVE_COLUMNS).where(
        or_(Case.reported_at >= today, Case.status.not_in(TERMINAL))
    )
    out = []
    for (
        case_id, status, lat, lon, deadline, version, category, priority, source, grid,
        title, unit, department, reported,
    ) in session.execute(query).tuples():  # fmt: skip
        out.append(
            {
                "id": case_id,
                "status": status,
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "overdue": deadline is not None and status not in TERMINAL and now > deadline,
                "deadline": ms(deadline),
                "version": version,
                "category": category,
                "priority": priority,
                "source": source,
                "grid": grid,
                "title": title,
                "unit": unit,
                "department": department,
                "reported": ms(reported),
            }
        )
    return out


def sweep_overdue(session: Session, *, now: datetime, limit: int = 5000) -> list[Case]:
    """Flag cases whose stage deadline has passed and return them: the clock drives this.

    The version is not bumped: overdue is derived, and a shift lead's edit should not
    be refused just because the clock ticked.
    """
    due = list(
        session.scalars(
            select(Case)
            .where(
                Case.overdue.is_(False),
                Case.deadline_at.is_not(None),
                Case.deadline_at < now,
                Case.status.not_in(TERMINAL),
            )
            .order_by(Case.deadline_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for case in due:
        case.overdue = True
    session.flush()
    return due
