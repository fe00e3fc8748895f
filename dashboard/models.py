"""Typed ORM models. Every time is stored in UTC and read back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(32), default="department")


class Zone(Base):
    """A patrol zone (巡区) with its station."""

    __tablename__ = "zones"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100), default="")
    station_name: Mapped[str] = mapped_column(String(100), default="")
    station_lat: Mapped[float | None] = mapped_column(Float)
    station_lon: Mapped[float | None] = mapped_column(Float)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)


class Grid(Base):
    """A grid (网格) or a micro-grid (微网格, level ``micro``, with its parent)."""

    __tablename__ = "grids"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default="residential")
    level: Mapped[str] = mapped_column(String(10), default="grid")
    parent_code: Mapped[str | None] = mapped_column(String(64), index=True)
    zone_code: Mapped[str | None] = mapped_column(String(64), index=True)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    centroid_lat: Mapped[float] = mapped_column(Float)
    centroid_lon: Mapped[float] = mapped_column(Float)


class Facility(Base):
    """A fixed point on the map: a camera, an IoT sensor, a station."""

    __tablename__ = "facilities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(64))


class MapFeature(Base):
    """Background geometry for the offline base map (district outline, roads, water)."""

    __tablename__ = "map_features"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)


class Unit(Base):
    """A patrol unit, grid worker, vehicle or team; its latest position is denormalised here."""

    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(20), default="unknown")
    department_id: Mapped[str | None] = mapped_column(String(64))
    zone_code: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="available")
    last_lat: Mapped[float | None] = mapped_column(Float)
    last_lon: Mapped[float | None] = mapped_column(Float)
    last_ts: Mapped[datetime | None]
    last_speed: Mapped[float | None] = mapped_column(Float)
    last_heading: Mapped[float | None] = mapped_column(Float)
    last_accuracy: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnitPing(Base):
    """A unit's track: every valid ping, late ones included."""

    __tablename__ = "unit_pings"
    __table_args__ = (
        UniqueConstraint("unit_id", "ts", name="uq_unit_pings_unit_ts"),
        Index("ix_unit_pings_ts", "ts"),  # the replay of a shift reads every unit's track
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)
    heading: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str | None] = mapped_column(String(16))


# The briefing view's covering index (migration 0002): what trends group and count.
TRENDS_INDEX_COLUMNS: tuple[str, ...] = (
    "reported_at", "status", "category", "source", "grid_code", "department_id", "priority",
    "rework_count", "dispatched_at", "on_scene_at", "resolved_at", "closed_at", "due_at",
)  # fmt: skip


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_reported", "status", "reported_at"),
        Index("ix_cases_reported_at", "reported_at"),
        Index("ix_cases_open_deadline", "overdue", "deadline_at"),
        # The briefing view (/trends): every figure it groups is in this index, so its
        # queries over a month or a year read the index alone, in reported_at order
        # (SQLite: "USING COVERING INDEX"; PostgreSQL: index-only scans once vacuumed).
        Index("ix_cases_trends", *TRENDS_INDEX_COLUMNS),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=3)
    source: Mapped[str] = mapped_column(String(20), default="other")
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    grid_code: Mapped[str | None] = mapped_column(String(64), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    unit_id: Mapped[str | None] = mapped_column(String(64))
    department_id: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None]
    # First time each stage was reached (a skipped stage stays empty).
    reported_at: Mapped[datetime]
    registered_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    on_scene_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    status_since: Mapped[datetime]  # when the current status was entered
    status_ts: Mapped[datetime]  # the newest time of any applied message
    floor_ts: Mapped[datetime | None]  # the last rework or reopen
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    # 回访 (callback) after resolution, and the center's closure verification (核查结案).
    callback_result: Mapped[str | None] = mapped_column(String(24))
    callback_at: Mapped[datetime | None]
    callback_by: Mapped[str | None] = mapped_column(String(100))
    callback_note: Mapped[str | None] = mapped_column(String(1000))
    closed_by: Mapped[str | None] = mapped_column(String(100))
    close_reason: Mapped[str | None] = mapped_column(String(300))  # closed without a callback
    deadline_at: Mapped[datetime | None]  # the current stage's deadline
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Assignment(Base):
    """One responder on a case (联勤联动联处): a department or station (lead 主办 or co-handler
    协办) or a unit (responder), each with its own progress (dashboard/assignments.py).

    A transfer (转办) ends this assignment and starts the receiving department's own, whose
    ``parent_id`` points back here: the chain is kept. A rework (返工) starts a new
    assignment of the lead department; the done one stays as it was."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_case", "case_id", "dispatched_at"),
        Index("ix_assignments_assignee", "assignee_id", "status"),
        Index("ix_assignments_open", "status", "accept_due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(64), ForeignKey("cases.id", ondelete="CASCADE"))
    assignee_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))  # unit | department | station
    role: Mapped[str] = mapped_column(String(12))  # lead | assist | responder (units)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12))
    dispatched_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    en_route_at: Mapped[datetime | None]
    on_scene_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    transferred_at: Mapped[datetime | None]
    accept_due_at: Mapped[datetime | None]
    done_due_at: Mapped[datetime | None]
    escalation: Mapped[int] = mapped_column(Integer, default=0)  # 督办 level 0-3
    last_urged_at: Mapped[datetime | None]
    urge_count: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("assignments.id", ondelete="SET NULL")
    )  # the assignment this one was transferred from
    transferred_to: Mapped[str | None] = mapped_column(String(64))  # the receiving department
    reason: Mapped[str | None] = mapped_column(String(300))  # returned / transferred
    result: Mapped[str | None] = mapped_column(String(1000))  # the done note (办结)
    entered_by: Mapped[str | None] = mapped_column(String(100))  # recorded on its behalf by
    status_ts: Mapped[datetime]  # the newest time of any applied progress
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseEvent(Base):
    """One line of a case's timeline: a producer message (applied or late) or a change."""

    __tablename__ = "case_events"
    __table_args__ = (
        UniqueConstraint("stream", "entry_id", name="uq_case_events_entry"),
        Index("ix_case_events_case", "case_id", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(64), ForeignKey("cases.id", ondelete="CASCADE"))
    ts: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(10), default="message")
    status: Mapped[str | None] = mapped_column(String(16))
    effect: Mapped[str] = mapped_column(String(16))
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    detail: Mapped[str] = mapped_column(String(300), default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stream: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str | None] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=0)  # the case version after this event


class ChangeOutbox(Base):
    """A change made in the dashboard, written in the same transaction as the change itself
    and published to lq:changes after the commit (dashboard/live/outbox.py: the outbox)."""

    __tablename__ = "change_outbox"
    __table_args__ = (Index("ix_change_outbox_pending", "published_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the entry's `change`
    case_id: Mapped[str] = mapped_column(String(64), index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)  # the lq:changes entry, as sent
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    stream_id: Mapped[str | None] = mapped_column(String(40))  # the lq:changes entry id
    # Which stream the row goes to: None for lq:changes, "tasks" for lq:tasks (issue 13).
    stream: Mapped[str | None] = mapped_column(String(16))


class User(Base):
    """A person who signs in; the password is stored as a scrypt hash only."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped when the password changes or the user is disabled: old sessions stop working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    """A revocable bearer token (API clients, kiosk wall screens); only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12), default="")
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what, when, from where: logins, failures, token use, changes."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebSession(Base):
    """A browser session (a signed-in user or a kiosk wall screen), checked on every request
    and socket connection: deleting the row signs that browser out on every web instance.

    The cookie carries a random secret; only its SHA-256 is the key here (as for tokens), so
    the table does not hold anything that could be replayed as a cookie."""

    __tablename__ = "web_sessions"
    __table_args__ = (
        Index("ix_web_sessions_principal", "kind", "principal_key"),
        Index("ix_web_sessions_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "user" | "token" (a kiosk screen)
    principal_key: Mapped[int] = mapped_column(BigInteger)  # users.id or api_tokens.id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(64))


class StreamLease(Base):
    """The fence of an order-sensitive stream (dashboard/worker/leases.py): the epoch of the
    worker that last took over applying it. Every batch of that stream checks, inside its
    own transaction, that the epoch is still its own; a newer one means a successor has
    taken over and the batch is refused (neither committed nor acknowledged)."""

    __tablename__ = "stream_leases"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)  # the full key: lq:incidents
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(200))  # the consumer that took it over
    acquired_at: Mapped[datetime]


class BriefingDecision(Base):
    """A briefing's conclusions and follow-up actions (a 周研判 ends with decisions), typed on
    /trends and printed with the figures: one text per period and filters (``scope``, the
    SHA-256 of the canonical key, dashboard/services/trends/decisions.py)."""

    __tablename__ = "briefing_decisions"
    __table_args__ = (UniqueConstraint("scope", name="uq_briefing_decisions_scope"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    filters: Mapped[str] = mapped_column(Text, default="")  # the canonical filters, readable
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
