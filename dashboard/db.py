"""The database engine and sessions; Alembic migrations run programmatically."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from dashboard.config import Settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Database:
    """The engine plus two session factories: reads, and writes that lock up front."""

    engine: Engine
    reader: sessionmaker[Session]
    writer: sessionmaker[Session]

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits at the end of the block (or rolls back)."""
        with self.writer() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_ms: int = 30000) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the pysqlite recipe), so
    # that writers can take the write lock at BEGIN instead of failing to upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def json_text(value: Any) -> str:
    """JSON columns' serializer: text kept as it is (not ``\\u`` escapes), and refused when it
    cannot be encoded as UTF-8 — a lone surrogate would otherwise be stored as ``\\ud800``
    and break whatever reads it back (Redis, Socket.IO). Plain text columns get the same
    guarantee from the drivers, which encode strictly."""
    text = json.dumps(value, ensure_ascii=False)
    text.encode("utf-8")  # UnicodeEncodeError: the statement fails, nothing is committed
    return text


def make_engine(
    url: str,
    *,
    echo: bool = False,
    sqlite_busy_s: float = 30.0,
    pg_idle_in_transaction_s: float = 0.0,
) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=json_text,
            connect_args={"timeout": sqlite_busy_s, "check_same_thread": False},
        )
        busy_ms = int(sqlite_busy_s * 1000)
        event.listen(engine, "connect", lambda conn, rec: _sqlite_pragmas(conn, rec, busy_ms))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # Sessions in UTC: psycopg returns timestamptz in the session's zone, and a time near
    # the end of year 9999 cannot be loaded in a zone east of UTC (dashboard/times.py).
    options = ["-c timezone=UTC"]
    if pg_idle_in_transaction_s > 0:
        ms = int(pg_idle_in_transaction_s * 1000)
        options.append(f"-c idle_in_transaction_session_timeout={ms}")
    return create_engine(
        url,
        echo=echo,
        json_serializer=json_text,
        connect_args={"options": " ".join(options)},
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
    )


def make_database(settings: Settings, *, worker: bool = False) -> Database:
    """The database; a worker's PostgreSQL sessions end when idle in a transaction for
    ``worker_idle_in_transaction_s`` (a frozen worker releases its locks to its successor)."""
    engine = make_engine(
        settings.effective_database_url,
        sqlite_busy_s=settings.sqlite_busy_s,
        pg_idle_in_transaction_s=settings.worker_idle_in_transaction_s if worker else 0.0,
    )
    write_engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    return Database(
        engine=engine,
        reader=sessionmaker(engine, expire_on_commit=False),
        writer=sessionmaker(write_engine, expire_on_commit=False),
    )


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic), creating the SQLite file if needed."""
    url = settings.effective_database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
    log.info("database schema at %s", revision)
