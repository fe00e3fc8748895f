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
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dashboard import dialect
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
    """The engine for ``url``, set up for its database (dashboard/dialect.py)."""
    return dialect.create_engine_for(
        url,
        echo=echo,
        json_serializer=json_text,
        sqlite_busy_s=sqlite_busy_s,
        pg_idle_in_transaction_s=pg_idle_in_transaction_s,
    )


def make_database(settings: Settings, *, worker: bool = False) -> Database:
    """The database; a worker's PostgreSQL sessions end when idle in a transaction for
    ``worker_idle_in_transaction_s`` (a frozen worker releases its locks to its successor)."""
    engine = make_engine(
        settings.effective_database_url,
        sqlite_busy_s=settings.sqlite_busy_s,
        pg_idle_in_transaction_s=settings.worker_idle_in_transaction_s if worker else 0.0,
    )
    write_engine = engine.execution_options(sqlite_begin="IMMEDIATE")  # see dialect.py
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
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
    log.info("database schema at %s", revision)
