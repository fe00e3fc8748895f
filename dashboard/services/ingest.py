"""Applying validated stream messages to the database, idempotently.

Incidents: each entry becomes a timeline event keyed by (stream, entry id); an
entry whose event already exists was applied before and changes nothing. Pings:
each valid ping becomes a track row keyed by (unit, ts); the unit's latest
position moves only for a ping newer than the one it has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from dashboard import dialect
from dashboard.assignments import behind_responders
from dashboard.contract.entries import ContractError, IncidentMessage, PingMessage
from dashboard.geo import GridIndex
from dashboard.lifecycle import CaseView, Decision, Effect, decide
from dashboard.models import Assignment, Case, CaseEvent, Unit, UnitPing
from dashboard.services.cases import refresh_deadline
from dashboard.sla import SlaPolicy
from dashboard.vocabulary import STAGE_COLUMNS

log = logging.getLogger(__name__)
_CREATE_FIELDS = ("lat", "lon", "category")


@dataclass
class IncidentOutcome:
    touched: dict[str, Case] = field(default_factory=dict)  # case id → the row after the batch
    rejected: list[tuple[str, ContractError]] = field(default_factory=list)  # entry id, why
    effects: dict[str, str] = field(default_factory=dict)  # entry id → effect (for tests/metrics)


def _apply_fields(case: Case, msg: IncidentMessage, grids: GridIndex) -> list[str]:
    changed: list[str] = []
    updates = msg.updates()
    mapping = {
        "grid": "grid_code",
        "unit": "unit_id",
        "department": "department_id",
        "due": "due_at",
    }
    for name, value in updates.items():
        column = mapping.get(name, name)
        if getattr(case, column) != value:
            setattr(case, column, value)
            changed.append(name)
    if ("lat" in updates) and "grid" not in updates:
        located = grids.locate(case.lat, case.lon)
        if located != case.grid_code:
            case.grid_code = located
            changed.append("grid")
    return changed


def _assignments_of(session: Session, case_id: str) -> list[Assignment]:
    return list(session.scalars(select(Assignment).where(Assignment.case_id == case_id)))


def _set_stage(case: Case, status: str, ts: datetime, *, earliest: bool) -> bool:
    """Record the first time a stage was reached; with ``earliest``, an earlier time wins."""
    column = STAGE_COLUMNS[status]
    current = getattr(case, column)
    if current is None or (earliest and ts < current):
        setattr(case, column, ts)
        return True
    return False


def _create(msg: IncidentMessage, grids: GridIndex) -> Case:
    assert msg.lat is not None and msg.lon is not None and msg.category is not None
    case = Case(
        id=msg.id,
        status=msg.status,
        category=msg.category,
        priority=msg.priority or 3,
        source=msg.source or "other",
        title=msg.title or "",
        description=msg.description or "",
        address=msg.address or "",
        lat=msg.lat,
        lon=msg.lon,
        grid_code=msg.grid or grids.locate(msg.lat, msg.lon),
        unit_id=msg.unit,
        department_id=msg.department,
        due_at=msg.due,
        reported_at=msg.ts,
        status_since=msg.ts,
        status_ts=msg.ts,
        rework_count=0,
        version=1,
        overdue=False,
    )
    _set_stage(case, msg.status, msg.ts, earliest=True)
    return case


def _advance(case: Case, msg: IncidentMessage, decision: Decision) -> None:
    case.status = msg.status
    case.status_since = msg.ts
    if decision.effect is Effect.REWORK:
        case.rework_count += 1
        case.floor_ts = msg.ts
    _set_stage(case, msg.status, msg.ts, earliest=False)


def apply_incidents(
    session: Session,
    entries: Sequence[tuple[str, IncidentMessage]],
    *,
    stream: str,
    policy: SlaPolicy,
    grids: GridIndex,
    now: datetime,
) -> IncidentOutcome:
    """Apply `lq:incidents` entries in stream order inside the caller's transaction."""
    out = IncidentOutcome()
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
    case_ids = sorted({msg.id for _, msg in entries})  # sorted: a stable lock order on PostgreSQL
    cases: dict[str, Case] = {
        c.id: c
        for c in session.scalars(select(Case).where(Case.id.in_(case_ids)).with_for_update())
    }
    for entry_id, msg in entries:
        case = cases.get(msg.id)
        if entry_id in seen:
            out.effects[entry_id] = "duplicate"
            if case is not None:
                out.touched[case.id] = case
            continue
        view = None if case is None else CaseView(case.status, case.status_ts, case.floor_ts)
        decision = decide(view, msg.status, msg.ts)
        if (
            decision.effect in (Effect.IMPOSSIBLE, Effect.REWORK)
            and case is not None
            and behind_responders(case, msg.status, _assignments_of(session, case.id))
        ):
            # The responders moved the case past this stage: late, and its time counts (a
            # case its responders resolved goes back by a callback's rework, not this way).
            decision = Decision(Effect.LATE, f"behind the case's responders ({case.status})")
            case.status_ts = max(case.status_ts, msg.ts)
        detail = decision.reason
        if decision.effect is Effect.IMPOSSIBLE:
            out.rejected.append(
                (entry_id, ContractError("impossible_transition", decision.reason, "status"))
            )
            continue
        if decision.effect is Effect.CREATE:
            missing = [name for name in _CREATE_FIELDS if getattr(msg, name) is None]
            if missing:
                out.rejected.append(
                    (
                        entry_id,
                        ContractError(
                            "missing_on_create",
                            f"case {msg.id} does not exist yet and the entry lacks "
                            f"{', '.join(missing)}, required to create it",
                            missing[0],
                        ),
                    )
                )
                continue
            case = _create(msg, grids)
            session.add(case)
            cases[case.id] = case
        else:
            assert case is not None
            changed_stage = False
            if decision.applies:
                if decision.effect is not Effect.UPDATE:
                    _advance(case, msg, decision)
                changed = _apply_fields(case, msg, grids)
                if decision.effect is Effect.UPDATE and not changed:
                    detail = "no change"
                case.status_ts = max(case.status_ts, msg.ts)
            else:
                # Late: never moves the case, but may tell us when a stage really began.
                in_round = case.floor_ts is None or msg.ts >= case.floor_ts
                if msg.status != "cancelled" and in_round:
                    changed_stage = _set_stage(case, msg.status, msg.ts, earliest=True)
                    if changed_stage and msg.status == "reported":
                        case.reported_at = msg.ts
            if decision.applies or changed_stage:
                case.version += 1
                case.updated_at = now
        refresh_deadline(case, policy, now)
        session.add(
            CaseEvent(
                case_id=case.id,
                ts=msg.ts,
                received_at=now,
                kind="message",
                status=msg.status,
                effect=str(decision.effect),
                applied=decision.applies,
                detail=detail[:300],
                fields=dict(msg.raw),
                stream=stream,
                entry_id=entry_id,
                version=case.version,
            )
        )
        seen.add(entry_id)
        out.touched[case.id] = case
        out.effects[entry_id] = str(decision.effect)
    session.flush()
    return out


@dataclass
class PingOutcome:
    latest: dict[str, PingMessage] = field(default_factory=dict)  # unit → its newest ping here
    new_units: list[str] = field(default_factory=list)
    # unit → kind, name and status as read before the update; a live record's status is
    # ``ping.status or info status``, which the update does not change (see units.py).
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def _unit_rows(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = session.execute(
        select(Unit.id, Unit.status, Unit.kind, Unit.name).where(
            dialect.in_values(Unit.id, ids, dialect.name(session))
        )
    ).tuples()
    return {uid: {"kind": kind, "name": name, "status": st} for uid, st, kind, name in rows}


def apply_pings(session: Session, pings: Iterable[PingMessage], *, now: datetime) -> PingOutcome:
    """Store the track and move each unit's latest position (bulk statements, no ORM objects)."""
    out = PingOutcome()
    plist = list(pings)
    if not plist:
        return out
    for ping in plist:
        best = out.latest.get(ping.unit)
        if best is None or ping.ts > best.ts:
            out.latest[ping.unit] = ping
    units_table: Table = Unit.__table__  # type: ignore[assignment]
    info = _unit_rows(session, list(out.latest))
    fresh = [u for u in out.latest if u not in info]
    if fresh:
        dialect.insert_ignore(
            session,
            units_table,
            [
                {
                    "id": u,
                    "name": u,
                    "kind": "unknown",
                    "status": "available",
                    "created_at": now,
                    "updated_at": now,
                }
                for u in fresh
            ],
        )
        out.new_units = fresh
        # A concurrent worker may have registered it first: read what is there now.
        info.update(_unit_rows(session, fresh))
    out.info = info
    latest_rows = [
        (unit, p, p.status or info.get(unit, {}).get("status") or "available")
        for unit, p in out.latest.items()
    ]
    dialect.insert_ignore_columns(
        session,
        UnitPing.__table__,  # type: ignore[arg-type]
        {
            "unit_id": [p.unit for p in plist],
            "ts": [p.ts for p in plist],
            "lat": [p.lat for p in plist],
            "lon": [p.lon for p in plist],
            "speed": [p.speed for p in plist],
            "heading": [p.heading for p in plist],
            "accuracy": [p.accuracy for p in plist],
            "status": [p.status for p in plist],
        },
    )
    dialect.update_newer_columns(
        session,
        units_table,
        {
            "id": [u for u, _, _ in latest_rows],
            "last_ts": [p.ts for _, p, _ in latest_rows],
            "last_lat": [p.lat for _, p, _ in latest_rows],
            "last_lon": [p.lon for _, p, _ in latest_rows],
            "last_speed": [p.speed for _, p, _ in latest_rows],
            "last_heading": [p.heading for _, p, _ in latest_rows],
            "last_accuracy": [p.accuracy for _, p, _ in latest_rows],
            "status": [st for _, _, st in latest_rows],
        },
        key="id",
        stamp="last_ts",
        constants={"updated_at": now},
    )
    return out
