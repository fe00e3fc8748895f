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

from sqlalchemy import Table, and_, bindparam, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dashboard.contract.entries import ContractError, IncidentMessage, PingMessage
from dashboard.geo import GridIndex
from dashboard.lifecycle import CaseView, Decision, Effect, decide
from dashboard.models import Case, CaseEvent, Unit, UnitPing
from dashboard.sla import SlaPolicy
from dashboard.vocabulary import STAGE_COLUMNS

log = logging.getLogger(__name__)
_CREATE_FIELDS = ("lat", "lon", "category")


@dataclass
class IncidentOutcome:
    touched: dict[str, Case] = field(default_factory=dict)  # case id → the row after the batch
    rejected: list[tuple[str, ContractError]] = field(default_factory=list)  # entry id, why
    effects: dict[str, str] = field(default_factory=dict)  # entry id → effect (for tests/metrics)


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(stmt, list(rows))


def _refresh_deadline(case: Case, policy: SlaPolicy, now: datetime) -> None:
    case.deadline_at = policy.stage_deadline(
        status=case.status,
        status_since=case.status_since,
        category=case.category,
        priority=case.priority,
        reported_at=case.reported_at,
        due=case.due_at,
    )
    case.overdue = case.deadline_at is not None and now > case.deadline_at


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
        _refresh_deadline(case, policy, now)
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


# PostgreSQL: one statement per batch over arrays (unnest) instead of a row-by-row
# executemany, which costs a round of parse/bind/execute per row.
_PG_TRACK = text(
    "INSERT INTO unit_pings (unit_id, ts, lat, lon, speed, heading, accuracy, status) "
    "SELECT * FROM unnest(CAST(:unit AS varchar[]), CAST(:ts AS timestamptz[]), "
    "CAST(:lat AS float8[]), CAST(:lon AS float8[]), CAST(:speed AS float8[]), "
    "CAST(:heading AS float8[]), CAST(:accuracy AS float8[]), CAST(:status AS varchar[])) "
    "ON CONFLICT DO NOTHING"
)
_PG_LATEST = text(
    "UPDATE units AS u SET last_lat = v.lat, last_lon = v.lon, last_ts = v.ts, "
    "last_speed = v.speed, last_heading = v.heading, last_accuracy = v.accuracy, "
    "status = v.status, updated_at = CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:unit AS varchar[]), CAST(:ts AS timestamptz[]), "
    "CAST(:lat AS float8[]), CAST(:lon AS float8[]), CAST(:speed AS float8[]), "
    "CAST(:heading AS float8[]), CAST(:accuracy AS float8[]), CAST(:status AS varchar[])) "
    "AS v(id, ts, lat, lon, speed, heading, accuracy, status) "
    "WHERE u.id = v.id AND (u.last_ts IS NULL OR u.last_ts < v.ts)"
)
_PG_UNITS = text("SELECT id, status, kind, name FROM units WHERE id = ANY(CAST(:ids AS varchar[]))")


def _execute_many(session: Session, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """executemany straight on the driver: ``rows`` hold database-ready values.

    The hot path of ingest: SQLAlchemy's per-row parameter and type processing cost
    more than the database's own work at thousands of rows per batch, so the
    statement is compiled once per call and the driver gets the rows as they are.
    """
    if not rows:
        return
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect)
    params: list[Any] = rows
    if compiled.positional:
        order = compiled.positiontup or []
        params = [tuple(row[name] for name in order) for row in rows]
    conn.exec_driver_sql(compiled.string, params)


def _datetime_binder(session: Session) -> Any:
    """The database form of an aware UTC datetime, as UTCDateTime would bind it."""
    dialect = session.get_bind().dialect
    column_type = UnitPing.__table__.c.ts.type
    outer = column_type.dialect_impl(dialect).bind_processor(dialect)
    return outer if outer is not None else (lambda value: value)


def _unit_rows(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    if session.get_bind().dialect.name == "postgresql":
        rows: Any = session.execute(_PG_UNITS, {"ids": ids}).tuples()
    else:
        rows = session.execute(
            select(Unit.id, Unit.status, Unit.kind, Unit.name).where(Unit.id.in_(ids))
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
        insert_ignore(
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
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _PG_TRACK,
            {
                "unit": [p.unit for p in plist],
                "ts": [p.ts for p in plist],
                "lat": [p.lat for p in plist],
                "lon": [p.lon for p in plist],
                "speed": [p.speed for p in plist],
                "heading": [p.heading for p in plist],
                "accuracy": [p.accuracy for p in plist],
                "status": [p.status for p in plist],
            },
        )
        session.execute(
            _PG_LATEST,
            {
                "now": now,
                "unit": [u for u, _, _ in latest_rows],
                "ts": [p.ts for _, p, _ in latest_rows],
                "lat": [p.lat for _, p, _ in latest_rows],
                "lon": [p.lon for _, p, _ in latest_rows],
                "speed": [p.speed for _, p, _ in latest_rows],
                "heading": [p.heading for _, p, _ in latest_rows],
                "accuracy": [p.accuracy for _, p, _ in latest_rows],
                "status": [st for _, _, st in latest_rows],
            },
        )
        return out
    bind_ts = _datetime_binder(session)
    db_ts: dict[datetime, Any] = {}
    rows: list[dict[str, Any]] = []
    for ping in plist:
        ts = db_ts.get(ping.ts)
        if ts is None:
            ts = db_ts[ping.ts] = bind_ts(ping.ts)
        rows.append(
            {
                "unit_id": ping.unit,
                "ts": ts,
                "lat": ping.lat,
                "lon": ping.lon,
                "speed": ping.speed,
                "heading": ping.heading,
                "accuracy": ping.accuracy,
                "status": ping.status,
            }
        )
    columns = ("unit_id", "ts", "lat", "lon", "speed", "heading", "accuracy", "status")
    track = sqlite.insert(UnitPing.__table__).on_conflict_do_nothing()  # type: ignore[arg-type]
    _execute_many(session, track.values({c: bindparam(c) for c in columns}), rows)
    t = units_table.c
    stmt = (
        update(units_table)
        .where(
            and_(
                t.id == bindparam("b_id"),
                or_(t.last_ts.is_(None), t.last_ts < bindparam("b_ts", type_=t.last_ts.type)),
            )
        )
        .values(
            last_lat=bindparam("b_lat"),
            last_lon=bindparam("b_lon"),
            last_ts=bindparam("b_ts", type_=t.last_ts.type),
            last_speed=bindparam("b_speed"),
            last_heading=bindparam("b_heading"),
            last_accuracy=bindparam("b_accuracy"),
            status=bindparam("b_status"),
            updated_at=bindparam("b_now", type_=t.updated_at.type),
        )
    )
    db_now = bind_ts(now)
    params = [
        {
            "b_id": unit,
            "b_ts": db_ts[p.ts],
            "b_lat": p.lat,
            "b_lon": p.lon,
            "b_speed": p.speed,
            "b_heading": p.heading,
            "b_accuracy": p.accuracy,
            "b_status": status,
            "b_now": db_now,
        }
        for unit, p, status in latest_rows
    ]
    _execute_many(session, stmt, params)
    return out
