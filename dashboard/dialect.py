"""Every difference between SQLite and PostgreSQL, in one place.

The rest of the code writes portable SQLAlchemy and calls these helpers where the two
databases need different SQL (docs/architecture.md, "Databases"). Nothing outside this
module (but the column types in dashboard/models.py and the migrations) looks at the
dialect's name.

* ``create_engine_for``: the engine of a URL, set up for its database (SQLite: WAL, busy
  timeout, BEGIN IMMEDIATE for writers; PostgreSQL: psycopg, UTC sessions, a pool).
* ``name(session)`` — the dialect of a session's bind: ``"sqlite"`` or ``"postgresql"``.
* Expressions: ``epoch_s`` (seconds since 1970 of a UTC timestamp column, compared with a
  tolerance of ``EPSILON_S``) and ``floor_int`` (floor of a non-negative number, as an
  integer).
* ``percentiles`` / ``grouped_percentiles``: linearly interpolated percentiles — PostgreSQL's
  ``percentile_cont``; on SQLite the same interpolation from row numbers over one window.
* Writes: ``insert_ignore`` (INSERT … ON CONFLICT DO NOTHING of ORM-typed rows),
  ``insert_ignore_columns`` and ``update_newer_columns`` (the ingest hot path: one
  statement over arrays on PostgreSQL, a driver-level ``executemany`` on SQLite),
  ``bulk_load`` (``COPY`` through a temporary table on PostgreSQL, ``INSERT OR IGNORE``
  ``executemany`` on SQLite) with ``timestamp_texts``, the text form each stores.
* ``in_values``: ``col = ANY(:array)`` on PostgreSQL (one statement whatever the list's
  length), ``col IN (…)`` on SQLite.
* ``tune_for_analytics``: per-transaction settings for the trends page's aggregates;
  ``analyze``: planner statistics after a bulk load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    create_engine,
    event,
    extract,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import numpy as np

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
NAT = -(2**63)  # the int64 minimum: "no time" in the epoch arrays of timestamp_texts
# Times computed by epoch_s are compared to the millisecond: SQLite's julianday() carries
# ~0.1 ms of rounding (so that 09:00:00 falls in hour 9 and a deadline met to the second
# is met).
EPSILON_S = 0.001


def name(session: Session) -> str:
    """``"sqlite"`` or ``"postgresql"``: the database a session talks to."""
    dialect = session.get_bind().dialect.name
    if dialect not in (SQLITE, POSTGRESQL):  # pragma: no cover - only the two supported
        raise RuntimeError(f"unsupported database {dialect}")
    return dialect


# -- expressions ------------------------------------------------------------------------------
def epoch_s(column: Any, dialect: str) -> ColumnElement[Any]:
    """Seconds since 1970 of a UTC datetime column, in SQL."""
    if dialect == SQLITE:
        # SQLite stores the UTC columns as naive ISO text; julianday reads it (with ~0.1 ms
        # of rounding: callers compare with EPSILON_S).
        return (func.julianday(column) - 2440587.5) * 86400.0
    return extract("epoch", column)


def floor_int(expr: Any, dialect: str) -> ColumnElement[Any]:
    """floor() of a non-negative number as an integer (SQLite's CAST truncates;
    PostgreSQL's rounds, hence its floor())."""
    if dialect == SQLITE:
        return cast(expr, Integer)
    return cast(func.floor(expr), Integer)


def in_values(column: Any, values: Sequence[Any], dialect: str) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY(array)``, one statement for any length."""
    if dialect == POSTGRESQL:
        return column == any_(cast(literal(list(values), postgresql.ARRAY(column.type)),
                                   postgresql.ARRAY(column.type)))  # fmt: skip
    return column.in_(list(values))


# -- percentiles ------------------------------------------------------------------------------
def _interpolate(ranks: Mapping[int, float], n: int, ps: Sequence[float]) -> list[float | None]:
    out: list[float | None] = []
    for p in ps:
        pos = p * (n - 1)
        lo = math.floor(pos)
        low = ranks[lo + 1]
        high = ranks.get(lo + 2, low)
        out.append(round(low + (high - low) * (pos - lo), 1))
    return out


def grouped_percentiles(
    session: Session,
    value: ColumnElement[Any],
    key: ColumnElement[Any] | None,
    where: ColumnElement[bool],
    ps: Sequence[float] = (0.5, 0.9),
) -> dict[Any, list[float | None]]:
    """Linearly interpolated percentiles of ``value`` over the rows matching ``where``, for
    every group of ``key`` in one query (``key`` None: one group, keyed None), in seconds
    rounded to 0.1.

    PostgreSQL computes ``percentile_cont``; SQLite has no ordered-set aggregates, so the
    same interpolation is done from row numbers over one sorted window per group (the
    database sorts; only the rows at the wanted ranks come back).
    """
    keys: list[Any] = [] if key is None else [key]
    if name(session) == POSTGRESQL:
        stmt = select(*keys, *[func.percentile_cont(p).within_group(value) for p in ps])
        stmt = stmt.where(where)
        if key is not None:
            stmt = stmt.group_by(key)
        out: dict[Any, list[float | None]] = {}
        for row in session.execute(stmt).all():
            k, values = (row[0], row[1:]) if key is not None else (None, row)
            if key is None and all(v is None for v in values):
                continue  # no rows: no group
            out[k] = [None if v is None else round(float(v), 1) for v in values]
        return out
    inner = select(
        (key if key is not None else literal(None)).label("k"),
        value.label("v"),
        func.row_number().over(partition_by=key, order_by=value).label("rn"),
        func.count().over(partition_by=key).label("n"),
    ).where(where)
    sub = inner.subquery()
    wanted = []
    for p in ps:
        rank = floor_int(p * (sub.c.n - 1), SQLITE) + 1  # 1-based, at or below the position
        wanted += [sub.c.rn == rank, sub.c.rn == rank + 1]
    rows = session.execute(select(sub.c.k, sub.c.v, sub.c.rn, sub.c.n).where(or_(*wanted))).all()
    at: dict[Any, dict[int, float]] = {}
    sizes: dict[Any, int] = {}
    for k, v, rn, n in rows:
        at.setdefault(k, {})[int(rn)] = float(v)
        sizes[k] = int(n)
    return {k: _interpolate(ranks, sizes[k], ps) for k, ranks in at.items()}


def percentiles(
    session: Session,
    value: ColumnElement[Any],
    where: ColumnElement[bool],
    ps: Sequence[float] = (0.5, 0.9),
) -> list[float | None]:
    """grouped_percentiles over one group: a list of ``None`` when no row matches."""
    return grouped_percentiles(session, value, None, where, ps).get(None, [None for _ in ps])


# -- writes -----------------------------------------------------------------------------------
def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING of rows of Python values (the columns' types bind them)."""
    if not rows:
        return
    stmt: Any
    if name(session) == POSTGRESQL:
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    session.execute(stmt, list(rows))


def _pg_array_type(column: Any) -> str:
    """The PostgreSQL array type an ``unnest`` argument is cast to, for a column."""
    kind = column.type
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        return "timestamptz[]"
    if isinstance(kind, Float):
        return "float8[]"
    if isinstance(kind, Boolean):
        return "bool[]"
    if isinstance(kind, Integer):
        return "int8[]"
    return "varchar[]"


@lru_cache(maxsize=64)
def _pg_insert_ignore(table: Table, columns: tuple[str, ...]) -> Any:
    arrays = ", ".join(f"CAST(:{c} AS {_pg_array_type(table.c[c])})" for c in columns)
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - names from the model
        f"SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
    )


@lru_cache(maxsize=64)
def _pg_update_newer(
    table: Table, key: str, stamp: str, columns: tuple[str, ...], constants: tuple[str, ...]
) -> Any:
    arrays = ", ".join(f"CAST(:{c} AS {_pg_array_type(table.c[c])})" for c in columns)
    sets = [f"{c} = v.{c}" for c in columns if c != key]
    sets += [f"{c} = CAST(:{c} AS {_pg_array_type(table.c[c])[:-2]})" for c in constants]
    return text(
        f"UPDATE {table.name} AS u SET {', '.join(sets)} "  # noqa: S608 - names from the model
        f"FROM unnest({arrays}) AS v({', '.join(columns)}) "
        f"WHERE u.{key} = v.{key} AND (u.{stamp} IS NULL OR u.{stamp} < v.{stamp})"
    )


def _execute_many(session: Session, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """executemany straight on the driver: ``rows`` hold database-ready values.

    SQLAlchemy's per-row parameter and type processing cost more than SQLite's own work
    at thousands of rows per batch, so the statement is compiled once per call and the
    driver gets the rows as they are.
    """
    if not rows:
        return
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect)
    params: list[Any] = rows
    if compiled.positional:
        order = compiled.positiontup or []
        params = [tuple(row[n] for n in order) for row in rows]
    conn.exec_driver_sql(compiled.string, params)


def _binders(session: Session, table: Table, columns: Iterable[str]) -> dict[str, Any]:
    """Per column, a function to its database form (as the column's type binds it);
    datetimes are converted once per distinct value (a batch repeats its timestamps)."""
    dialect = session.get_bind().dialect
    out: dict[str, Any] = {}
    for c in columns:
        processor = table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is None:
            continue
        if isinstance(table.c[c].type, DateTime) or isinstance(
            getattr(table.c[c].type, "impl", None), DateTime
        ):
            cache: dict[Any, Any] = {}

            def cached(value: Any, _p: Any = processor, _c: dict[Any, Any] = cache) -> Any:
                got = _c.get(value)
                if got is None:
                    got = _c[value] = _p(value)
                return got

            out[c] = cached
        else:
            out[c] = processor
    return out


def _rows(
    session: Session, table: Table, columns: Mapping[str, Sequence[Any]], prefix: str = ""
) -> list[dict[str, Any]]:
    binders = _binders(session, table, columns)
    names = list(columns)
    lists = [[binders[c](v) for v in columns[c]] if c in binders else columns[c] for c in names]
    return [dict(zip([prefix + c for c in names], values, strict=True))
            for values in zip(*lists, strict=True)]  # fmt: skip


def insert_ignore_columns(
    session: Session, table: Table, columns: Mapping[str, Sequence[Any]]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING of many rows given column-wise (equal-length lists of
    Python values): one statement over arrays (``unnest``) on PostgreSQL instead of a
    round of parse/bind/execute per row; a driver-level executemany on SQLite."""
    names = tuple(columns)
    if not names or not len(columns[names[0]]):
        return
    if name(session) == POSTGRESQL:
        session.execute(_pg_insert_ignore(table, names), {c: list(columns[c]) for c in names})
        return
    stmt = sqlite.insert(table).on_conflict_do_nothing()
    _execute_many(
        session, stmt.values({c: bindparam(c) for c in names}), _rows(session, table, columns)
    )


def update_newer_columns(
    session: Session,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    key: str,
    stamp: str,
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Update the rows whose ``key`` is given, setting every given column (and the
    ``constants``), only where the row's ``stamp`` is NULL or older than the given one.
    Column-wise values like insert_ignore_columns; ``key`` and ``stamp`` are among them."""
    names = tuple(columns)
    consts = dict(constants or {})
    if not names or not len(columns[names[0]]):
        return
    if name(session) == POSTGRESQL:
        stmt = _pg_update_newer(table, key, stamp, names, tuple(consts))
        session.execute(stmt, {**{c: list(columns[c]) for c in names}, **consts})
        return
    # SQLite: bind names are prefixed, a column's own name being reserved by update().values().
    t = table.c
    sets: dict[str, Any] = {c: bindparam("b_" + c, type_=t[c].type) for c in names if c != key}
    sets.update({c: bindparam("b_" + c, type_=t[c].type) for c in consts})
    stmt = (
        update(table)
        .where(
            and_(
                t[key] == bindparam("b_" + key),
                or_(t[stamp].is_(None), t[stamp] < bindparam("b_" + stamp, type_=t[stamp].type)),
            )
        )
        .values(sets)
    )
    rows = _rows(session, table, columns, prefix="b_")
    if consts:
        fixed = _rows(session, table, {c: [v] for c, v in consts.items()}, prefix="b_")[0]
        for row in rows:
            row.update(fixed)
    _execute_many(session, stmt, rows)


def timestamp_texts(epoch_us: np.ndarray, dialect: str) -> list[str | None]:
    """Epoch microseconds → the text each database reads as that UTC time (``NAT`` → NULL):
    for bulk_load, which hands the driver text rather than datetimes."""
    import numpy as np  # only the bulk loader needs it: kept off the CLI's start-up

    missing = epoch_us == NAT
    safe = np.where(missing, 0, epoch_us).astype("datetime64[us]")
    texts = np.datetime_as_string(safe, unit="us")
    # SQLAlchemy's SQLite format: "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC); PostgreSQL: +00.
    texts = np.char.replace(texts, "T", " ")
    if dialect == POSTGRESQL:
        texts = np.char.add(texts, "+00")
    out: list[str | None] = texts.tolist()
    for i in np.flatnonzero(missing):
        out[i] = None
    return out


def bulk_load(
    session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING of many rows of database-ready values (timestamps as
    timestamp_texts) through the driver's fastest path: ``executemany`` of plain tuples on
    SQLite, ``COPY`` into a temporary table and one INSERT … SELECT on PostgreSQL."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    names = ", ".join(columns)
    if name(session) == SQLITE:
        marks = ", ".join("?" for _ in columns)
        cursor = raw.cursor()
        cursor.executemany(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
        cursor.close()
        return
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _lq_load_{table} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        cursor.execute(f"TRUNCATE _lq_load_{table}")
        with cursor.copy(f"COPY _lq_load_{table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM _lq_load_{table} "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )


def tune_for_analytics(session: Session) -> None:
    """PostgreSQL, for this transaction: no JIT (it spent ~150 ms compiling each of the
    trends page's two dozen short aggregates, more than running them) and enough memory for
    the group-by sorts of a year to stay off disk. Nothing to do on SQLite."""
    if name(session) == POSTGRESQL:
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def analyze(engine: Engine) -> None:
    """What autovacuum does after a bulk load: planner statistics, and (PostgreSQL) the
    visibility map that lets a covering index answer alone."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == POSTGRESQL else "ANALYZE"))


# -- engines ----------------------------------------------------------------------------------
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
    # The write engine asks for BEGIN IMMEDIATE (execution option ``sqlite_begin``): SQLite
    # serialises writers at BEGIN, where PostgreSQL takes row locks (FOR UPDATE) instead.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine_for(
    url: str,
    *,
    json_serializer: Any,
    echo: bool = False,
    sqlite_busy_s: float = 30.0,
    pg_idle_in_transaction_s: float = 0.0,
) -> Engine:
    """An engine for a ``sqlite:///…`` or ``postgresql://…`` URL. SQLite: the file's directory
    created, WAL, foreign keys, a busy timeout, BEGIN emitted by SQLAlchemy (so a writer can
    take the lock up front). PostgreSQL: psycopg 3, sessions in UTC, an optional
    idle-in-transaction timeout, a connection pool checked before use."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=json_serializer,
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
        json_serializer=json_serializer,
        connect_args={"options": " ".join(options)},
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
    )
