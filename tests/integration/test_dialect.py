"""dashboard/dialect.py on the real database (SQLite, or PostgreSQL in .ci/run's server pass):
each helper gives the same answer on both, checked against Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helpers import make_case
from sqlalchemy import select

from dashboard import dialect
from dashboard.models import Case, Unit, UnitPing
from dashboard.runtime import Runtime

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def linear(values: list[float], p: float) -> float:
    """percentile_cont in Python: linear interpolation between ranks."""
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    lo = int(pos)
    high = ordered[min(lo + 1, len(ordered) - 1)]
    return round(ordered[lo] + (high - ordered[lo]) * (pos - lo), 1)


def test_epoch_floor_and_percentiles_agree_with_python(runtime: Runtime) -> None:
    spans = {"a": [5.0, 60.0, 61.5, 300.0, 7.25], "b": [42.0], "c": [1.0, 2.0]}
    with runtime.db.write() as session:
        for key, values in spans.items():
            for i, seconds in enumerate(values):
                session.add(make_case(f"{key}{i}", "dispatched", key, T0,
                                      dispatched_at=T0 + timedelta(seconds=seconds)))  # fmt: skip
    with runtime.db.read() as session:
        name = dialect.name(session)
        span = dialect.epoch_s(Case.dispatched_at, name) - dialect.epoch_s(Case.reported_at, name)
        ok = Case.dispatched_at.is_not(None)
        grouped = dialect.grouped_percentiles(session, span, Case.category, ok)
        assert grouped == {k: [linear(v, 0.5), linear(v, 0.9)] for k, v in spans.items()}
        everything = [s for v in spans.values() for s in v]
        assert dialect.percentiles(session, span, ok, (0.5,)) == [linear(everything, 0.5)]
        assert dialect.percentiles(session, span, Case.id == "none") == [None, None]
        assert dialect.grouped_percentiles(session, span, Case.category, Case.id == "x") == {}
        epoch = session.scalar(select(dialect.epoch_s(Case.reported_at, name)).limit(1))
        assert abs(float(epoch) - T0.timestamp()) < dialect.EPSILON_S
        minutes = dialect.floor_int((span + dialect.EPSILON_S) / 60.0, name)  # as the callers do
        got = sorted(int(m) for m in session.scalars(select(minutes).where(Case.category == "a")))
        assert got == sorted(int(s // 60) for s in spans["a"])


def test_bulk_ingest_inserts_once_and_moves_only_forward(runtime: Runtime) -> None:
    now = T0 + timedelta(hours=1)
    units = Unit.__table__
    pings = UnitPing.__table__
    with runtime.db.write() as session:
        dialect.insert_ignore(session, units, [  # type: ignore[arg-type]
            {"id": u, "name": u, "kind": "patrol", "status": "available",
             "created_at": now, "updated_at": now} for u in ("U1", "U2")
        ])  # fmt: skip
        dialect.insert_ignore(session, units, [  # type: ignore[arg-type]
            {"id": "U1", "name": "again", "kind": "x", "status": "busy",
             "created_at": now, "updated_at": now}
        ])  # fmt: skip
        rows = {
            "unit_id": ["U1", "U1", "U2"],
            "ts": [T0, T0 + timedelta(seconds=5), T0],
            "lat": [29.1, 29.2, 29.3],
            "lon": [106.1, 106.2, 106.3],
            "speed": [None, 1.5, 0.0],
            "heading": [None, None, 90.0],
            "accuracy": [5.0, None, None],
            "status": [None, "busy", None],
        }
        dialect.insert_ignore_columns(session, pings, rows)  # type: ignore[arg-type]
        dialect.insert_ignore_columns(session, pings, rows)  # type: ignore[arg-type]
        latest = {
            "id": ["U1", "U2"],
            "last_ts": [T0 + timedelta(seconds=5), T0],
            "last_lat": [29.2, 29.3],
            "last_lon": [106.2, 106.3],
            "status": ["busy", "available"],
        }
        update = {"key": "id", "stamp": "last_ts", "constants": {"updated_at": now}}
        dialect.update_newer_columns(session, units, latest, **update)  # type: ignore[arg-type]
        older = {**latest, "last_ts": [T0, T0 - timedelta(seconds=1)], "last_lat": [0.0, 0.0]}
        dialect.update_newer_columns(session, units, older, **update)  # type: ignore[arg-type]
    with runtime.db.read() as session:
        assert session.scalar(select(Unit.name).where(Unit.id == "U1")) == "U1"
        track = session.execute(
            select(UnitPing.unit_id, UnitPing.ts, UnitPing.speed).order_by(
                UnitPing.unit_id, UnitPing.ts
            )
        ).all()
        assert track == [("U1", T0, None), ("U1", T0 + timedelta(seconds=5), 1.5), ("U2", T0, 0.0)]
        got = {
            u.id: (u.last_ts, u.last_lat, u.status, u.updated_at)
            for u in session.scalars(
                select(Unit).where(dialect.in_values(Unit.id, ["U1", "U2"], dialect.name(session)))
            )
        }
        assert got == {
            "U1": (T0 + timedelta(seconds=5), 29.2, "busy", now),
            "U2": (T0, 29.3, "available", now),
        }
        assert (
            session.scalars(
                select(Unit.id).where(dialect.in_values(Unit.id, [], dialect.name(session)))
            ).all()
            == []
        )
