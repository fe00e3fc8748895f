"""The outbox of the `lq:changes` stream: every change the dashboard itself makes, with who
made it, published once (the entry's contract: dashboard/contract/changes.py).

Why an outbox. A change (a reassignment, a reopen …) is a database commit *and* an
entry on `lq:changes`; the two cannot share one transaction. Committing first and
then XADDing loses the entry if the process dies, or Redis is unreachable, between
the two; XADDing first announces a change that may then fail to commit. So the
change is written, in the same transaction as the case itself, to the table
``change_outbox`` (the transactional outbox). After the commit the web process
XADDs it at once (the fast path: every screen sees it within a second) and marks the
row published. Whatever is still unpublished after ``LIANQIN_OUTBOX_GRACE_S`` — the
web process died, Redis was down — is published by the workers, which drain the
outbox on their sweep tick. The audit trail on `lq:changes` therefore holds every
committed change, and never one that did not commit.

Both paths XADD through one Lua script that remembers each change id it wrote (for
``SENT_TTL_S``), so a change reaches the stream once even when the web process and
a worker race on it or a row's "published" mark was lost. Consumers should still
treat the entry's ``change`` field as its idempotency key, and order changes of one
case by ``version``: an entry published late by the relay can follow a newer one.

A row the relay cannot publish as it is (its JSON is not an object of contract fields
with text values, its text cannot be encoded as UTF-8, the worker's own parser would
refuse the entry, or Redis refuses it) is never retried: it is moved to the dead-letter
stream ``lq:dead`` (``stream`` lq:changes, ``code`` and ``reason``, the row's fields as
``f:<name>``), counted as ``dead:changes:<code>``, and its row is marked published with
``stream_id`` ``dead:<dead-letter id>``. Nothing in one row can stall the relay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Text, cast, select, update
from sqlalchemy.orm import Session

from dashboard.contract.changes import FIELDS, parse_change
from dashboard.contract.deadletters import dead_letter_fields
from dashboard.contract.entries import ContractError, show
from dashboard.contract.tasks import TASK_FIELDS, parse_task
from dashboard.db import Database
from dashboard.models import ChangeOutbox
from dashboard.streams import Keys, is_transient_redis
from dashboard.text import as_str

log = logging.getLogger(__name__)

SENT_TTL_S = 7 * 86_400
TASKS = "tasks"  # ChangeOutbox.stream of an lq:tasks row

_PUBLISH_LUA = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
return id
"""


def outbox_entry(stored_json: str | None, stream: str | None = None) -> dict[str, str]:
    """The `lq:changes` entry an outbox row holds (its fields' JSON text), checked as the
    worker will check it; ``ContractError`` when the row cannot be published as it is.
    With ``stream`` ``"tasks"``, an `lq:tasks` entry (dashboard/contract/tasks.py)."""
    try:
        stored = json.loads(stored_json) if stored_json is not None else None
    except ValueError:
        raise ContractError("bad_value", "the outbox row's fields are not valid JSON") from None
    if not isinstance(stored, dict):
        raise ContractError("bad_value", "the outbox row's fields are not a JSON object")
    out: dict[str, str] = {}
    allowed = TASK_FIELDS if stream == TASKS else FIELDS
    for name, value in stored.items():
        if name not in allowed:
            raise ContractError("unknown_field", f"not a lq:changes field: {show(name)}", name)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ContractError("bad_value", f"{name} is not text", name)
        out[name] = str(value)
    if stream == TASKS:
        parse_task(out)  # type: ignore[arg-type]
    else:
        parse_change(out)  # type: ignore[arg-type]  # strict UTF-8, sizes, case, action, version
    return out


class ChangeLog:
    """Publishes outbox rows to `lq:changes`, each change id at most once."""

    def __init__(
        self, client: redis.Redis, keys: Keys, maxlen: int, *, dead_maxlen: int = 100_000
    ) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self.dead_maxlen = dead_maxlen
        self._script = client.register_script(_PUBLISH_LUA)

    def target(self, stream: str | None) -> str:
        """The Redis stream of an outbox row (None: lq:changes; "tasks": lq:tasks)."""
        return self.keys.tasks if stream == TASKS else self.keys.changes

    def sent_key(self, change_id: str, stream: str | None = None) -> str:
        return f"{self.target(stream)}:sent:{change_id}"

    def xadd(self, change_id: str, fields: Mapping[str, str], stream: str | None = None) -> str:
        """XADD one change unless it was written before; return its stream entry id."""
        args: list[Any] = [self.maxlen, SENT_TTL_S]
        for name, value in fields.items():
            args += [name, value]
        entry_id = self._script(
            keys=[self.target(stream), self.sent_key(change_id, stream)], args=args
        )
        return as_str(entry_id)

    def publish(
        self,
        db: Database,
        changes: Sequence[tuple[str, Mapping[str, str]]],
        *,
        now: datetime,
        stream: str | None = None,
    ) -> int:
        """The fast path, right after the commit: XADD the changes (id, fields) and mark
        their outbox rows published.

        Never raises for Redis or the database: what is not published here is published
        by a worker's relay after the grace period.
        """
        done: dict[str, str] = {}
        for change_id, fields in changes:
            try:
                done[change_id] = self.xadd(change_id, fields, stream)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("lq:changes not written now (%s); a worker will publish it", exc)
                break
            except Exception as exc:  # this change's own fault: the relay will dead-letter it
                log.warning("change %s not written (%s); left to the relay", change_id, exc)
        if done:
            try:
                with db.write() as session:
                    _mark(session, done, now)
            except Exception:
                # Published but not marked: the relay will XADD again, and the script's
                # memory of the change id turns that into a no-op.
                log.exception("outbox rows not marked published")
        return len(done)

    @staticmethod
    def overdue(session: Session, *, now: datetime, grace_s: float) -> bool:
        """Whether any outbox row waits past the grace period (a cheap indexed read)."""
        first = session.scalar(
            select(ChangeOutbox.id)
            .where(
                ChangeOutbox.published_at.is_(None),
                ChangeOutbox.created_at <= now - timedelta(seconds=grace_s),
            )
            .limit(1)
        )
        return first is not None

    def relay(self, session: Session, *, now: datetime, grace_s: float, limit: int = 500) -> int:
        """The slow path (workers): publish outbox rows left unpublished past the grace
        period, oldest first, inside the caller's transaction; return how many were
        published. A row that cannot be published is dead-lettered (module docstring).

        Raises only when Redis is unreachable or refuses every write (the rows wait).
        """
        # The fields as text, decoded here row by row: one row's broken JSON must not
        # fail the query that reads all of them.
        rows = session.execute(
            select(ChangeOutbox.id, cast(ChangeOutbox.fields, Text), ChangeOutbox.stream)
            .where(
                ChangeOutbox.published_at.is_(None),
                ChangeOutbox.created_at <= now - timedelta(seconds=grace_s),
            )
            .order_by(ChangeOutbox.created_at, ChangeOutbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        done: dict[str, str] = {}
        refused: dict[str, str] = {}
        for change_id, text, stream in rows:
            try:
                fields = outbox_entry(text, stream)
                done[change_id] = self.xadd(change_id, fields, stream)
            except Exception as exc:
                if is_transient_redis(exc):
                    raise  # Redis is out: nothing more can be published now
                refused[change_id] = self._dead_letter(change_id, text, exc)
        _mark(session, done, now)
        _mark(session, refused, now)
        if done:
            log.warning("published %d change(s) the web process had not", len(done))
        return len(done)

    def _dead_letter(self, change_id: str, text: str | None, exc: Exception) -> str:
        """Move an unpublishable row to lq:dead; return its mark (``dead:<id>``)."""
        if isinstance(exc, ContractError):
            code, reason, field = exc.code, exc.reason, exc.field
        else:
            error = ContractError(
                "internal_error", f"cannot publish this change: {exc.__class__.__name__}: {exc}"
            )
            code, reason, field = error.code, error.reason, error.field
        try:
            stored = json.loads(text) if text is not None else None
        except ValueError:
            stored = None
        raw: dict[bytes, bytes] = {}
        if isinstance(stored, dict):
            raw = {_bytes(k): _bytes(v) for k, v in stored.items()}
        elif text is not None:
            raw = {b"outbox": _bytes(text)}
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self.keys.dead,
            dead_letter_fields(  # type: ignore[arg-type]
                stream=self.keys.changes,
                entry_id=change_id,
                code=code,
                reason=reason,
                field=field,
                raw=raw,
                consumer="outbox-relay",
            ),
            maxlen=self.dead_maxlen,
            approximate=True,
        )
        pipe.hincrby(self.keys.metrics, f"dead:changes:{code}", 1)
        dead_id, _ = pipe.execute()
        mark = "dead:" + as_str(dead_id)
        log.warning("change %s cannot be published (%s: %s): moved to %s", change_id, code,
                    reason, mark)  # fmt: skip
        return mark


def _bytes(value: Any) -> bytes:
    """A stored value byte for byte as far as possible (lone surrogates kept, as CESU)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _mark(session: Session, done: Mapping[str, str], now: datetime) -> None:
    for change_id, entry_id in done.items():
        session.execute(
            update(ChangeOutbox)
            .where(ChangeOutbox.id == change_id, ChangeOutbox.published_at.is_(None))
            .values(published_at=now, stream_id=entry_id)
        )


def pending(session: Session, ids: Iterable[str] | None = None) -> list[ChangeOutbox]:
    """Outbox rows not yet published (for tests and diagnostics)."""
    query = select(ChangeOutbox).where(ChangeOutbox.published_at.is_(None))
    if ids is not None:
        query = query.where(ChangeOutbox.id.in_(list(ids)))
    return list(session.scalars(query.order_by(ChangeOutbox.created_at)))
