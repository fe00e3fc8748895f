"""Migration 0005: existing single unit / department cases become one assignment each.

A database is populated at revision 0004 (the schema before assignments), then upgraded;
no case loses its responder, its times or its fields. SQLite by default; on PostgreSQL with
TEST_DATABASE_URL (a throwaway database of its own)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dashboard.config import Settings
from dashboard.db import make_engine, upgrade


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    name = f"lianqin_m_{secrets.token_hex(4)}"
    admin_url = make_url(server.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _case(case_id: str, status: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": case_id, "status": status, "category": "dispute", "priority": 3,
        "source": "hotline_12345", "title": f"t {case_id}", "description": "", "address": "",
        "grid_code": None, "lat": 30.0, "lon": 120.0, "unit_id": None, "department_id": None,
        "due_at": T0 + timedelta(hours=4), "reported_at": T0, "registered_at": None,
        "dispatched_at": None, "on_scene_at": None, "resolved_at": None, "closed_at": None,
        "cancelled_at": None, "status_since": T0, "status_ts": T0, "floor_ts": None,
        "rework_count": 0, "deadline_at": None, "overdue": False, "version": 3,
        "created_at": T0, "updated_at": T0 + timedelta(hours=1),
    }  # fmt: skip
    row.update(extra)
    return row


def _ts(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_upgrade_from_0004_keeps_every_responder(empty_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=empty_url, data_dir=tmp_path / "data")
    upgrade(settings, "0004")
    d, s, r = T0 + timedelta(minutes=2), T0 + timedelta(minutes=9), T0 + timedelta(minutes=40)
    rows = [
        _case("C-REP", "reported"),
        _case("C-DIS", "dispatched", unit_id="P-1", department_id="police", dispatched_at=d),
        _case("C-SCN", "on_scene", unit_id="P-2", dispatched_at=d, on_scene_at=s),
        _case("C-RES", "resolved", department_id="justice", dispatched_at=d, on_scene_at=s,
              resolved_at=r),
        _case("C-CLO", "closed", unit_id="P-3", department_id="police", dispatched_at=d,
              on_scene_at=s, resolved_at=r, closed_at=r + timedelta(hours=1), rework_count=1),
    ]  # fmt: skip
    engine = make_engine(empty_url)
    sqlite = engine.dialect.name == "sqlite"

    def bind(value: object) -> object:  # SQLite stores naive UTC text, as UTCDateTime does
        if sqlite and isinstance(value, datetime):
            return value.replace(tzinfo=None).isoformat(" ")
        return value

    try:
        with engine.begin() as conn:
            names = list(rows[0])
            sql = text(
                f"INSERT INTO cases ({', '.join(names)}) VALUES "
                f"({', '.join(':' + n for n in names)})"
            )
            for row in rows:
                conn.execute(sql, {k: bind(v) for k, v in row.items()})
        upgrade(settings, "0005")
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar_one() == (
                "0005"
            )
            got = {
                (row.case_id, row.kind): row
                for row in conn.execute(text("select * from assignments order by id"))
            }
            cases = {row.id: row for row in conn.execute(text("select * from cases"))}
    finally:
        engine.dispose()
    assert set(got) == {
        ("C-DIS", "unit"), ("C-DIS", "department"), ("C-SCN", "unit"),
        ("C-RES", "department"), ("C-CLO", "unit"), ("C-CLO", "department"),
    }  # fmt: skip
    dept = got[("C-DIS", "department")]
    assert (dept.assignee_id, dept.role, bool(dept.required), dept.status) == (
        "police", "lead", True, "dispatched",
    )  # fmt: skip
    assert _ts(dept.dispatched_at) == d
    unit = got[("C-SCN", "unit")]
    assert (unit.assignee_id, unit.role, unit.status) == ("P-2", "responder", "on_scene")
    assert _ts(unit.on_scene_at) == s
    done = got[("C-RES", "department")]
    assert (done.status, _ts(done.done_at), _ts(done.accepted_at)) == ("done", r, s)
    assert got[("C-CLO", "unit")].status == "done"
    assert _ts(got[("C-CLO", "department")].done_due_at) == T0 + timedelta(hours=4)
    # The cases themselves are untouched, and gain empty callback / closure fields.
    assert len(cases) == 5
    clo = cases["C-CLO"]
    assert (clo.status, clo.unit_id, clo.department_id, clo.rework_count, clo.version) == (
        "closed", "P-3", "police", 1, 3,
    )  # fmt: skip
    assert clo.callback_result is None and clo.close_reason is None
    # And back down again: 0004's schema, the cases intact.
    from alembic import command

    from dashboard.db import alembic_config

    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(empty_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from cases")).scalar_one() == 5
    finally:
        engine.dispose()
