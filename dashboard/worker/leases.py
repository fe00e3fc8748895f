"""One worker at a time applies an order-sensitive stream: a lease in Redis, a fence in the DB.

Why: a case's messages only make sense in order (an update before its create is
refused as `missing_on_create`; a rework `dispatched` before its `resolved` is an
impossible transition). A consumer group hands consecutive batches to different
workers, which apply them concurrently, and a dead worker's pending batch is
reclaimed after later entries were applied — both reorder a case's messages. So the
ordered streams (``Keys.ordered_streams``: `lq:incidents`) are applied by a single
lease holder, in stream order, while the commutative ones (pings, changes) stay shared
by every worker of the group.

The lease (Redis): ``<prefix>:lease:<stream>`` holds the holder's token (its consumer
name and a random suffix, so two processes under one name are never confused) with a
time to live of ``lease_ms``. Every worker calls ``StreamLease.tick`` once per loop: one
Lua script renews the lease when it holds the worker's token (compare-and-set), takes
it when it is free (SET NX PX), or leaves it. A worker that stops looping (killed, hung
in a lock wait, paused) stops renewing, and another worker takes over after the TTL.

The fence (database): the ``stream_leases`` row's epoch. Taking over increments it in
its own transaction, before the new holder reads anything; every transaction that
applies entries of the stream first reads the row under a row lock (``FOR UPDATE`` on
PostgreSQL; SQLite's single writer already serialises the transactions) and is refused
when the epoch is no longer its own. A holder paused past its lease therefore cannot
commit after its successor has started: what it read stays unacknowledged and the
successor applies it. The epoch is allocated by the database, not by Redis: a Redis
that lost its data (restarted without persistence) cannot hand out an old epoch.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.dialect import insert_ignore
from dashboard.models import StreamLease as FenceRow
from dashboard.streams import Keys
from dashboard.text import as_str

log = logging.getLogger(__name__)

# KEYS[1] the lease; ARGV[1] this worker's token, ARGV[2] the TTL in ms.
# 1: renewed (it was ours), 2: taken (it was free), 0: another worker holds it.
_TICK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The database fence holds another epoch: a newer holder has taken the stream over."""


def holder_of(token: bytes | str | None) -> str | None:
    """The consumer name in a lease token (``name/suffix``)."""
    if token is None:
        return None
    text = as_str(token, "replace")
    return text.rsplit("/", 1)[0]


@dataclass
class StreamLease:
    """This worker's view of the lease on one ordered stream."""

    client: redis.Redis
    stream: str
    key: str
    epoch_key: str
    consumer: str
    ttl_ms: int
    token: str = field(init=False)
    # The fence epoch this worker took over with; None while it does not hold the stream.
    epoch: int | None = None

    def __post_init__(self) -> None:
        self.token = f"{self.consumer}/{secrets.token_hex(4)}"
        self._tick: Any = self.client.register_script(_TICK)
        self._release: Any = self.client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        """Whether this worker applies the stream (it holds the lease and took the fence)."""
        return self.epoch is not None

    def tick(self) -> bool:
        """Renew or take the lease; True when this worker must take the stream over now."""
        state = int(self._tick(keys=[self.key], args=[self.token, self.ttl_ms]))
        if state == 0:
            if self.epoch is not None:
                log.warning(
                    "lease on %s lapsed; now held by %s",
                    self.stream,
                    holder_of(self.client.get(self.key)),
                )
            self.epoch = None
            return False
        if state == 2 and self.epoch is not None:
            # Ours expired and was free again: whoever held it meanwhile may have applied
            # entries, so take the fence again and catch up before reading.
            log.warning("lease on %s lapsed; taken again", self.stream)
            self.epoch = None
        return self.epoch is None

    def took_over(self, epoch: int) -> None:
        self.epoch = epoch
        try:
            self.client.set(self.epoch_key, epoch)  # for /readyz and /metrics only
        except redis.RedisError as exc:
            log.warning("lease epoch not published: %s", exc)
        log.info("took over %s (epoch %d) as %s", self.stream, epoch, self.consumer)

    def drop(self) -> None:
        """Stop applying the stream and free the lease if it is still ours."""
        self.epoch = None
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError as exc:
            log.warning("lease on %s not released: %s", self.stream, exc)


def take_fence(session: Session, *, stream: str, holder: str, now: datetime) -> int:
    """Increment the stream's epoch (in the caller's transaction) and return it."""
    table: Any = FenceRow.__table__
    insert_ignore(
        session, table, [{"stream": stream, "epoch": 0, "holder": holder, "acquired_at": now}]
    )
    row = session.scalars(select(FenceRow).where(FenceRow.stream == stream).with_for_update()).one()
    row.epoch += 1
    row.holder = holder
    row.acquired_at = now
    session.flush()
    return row.epoch


def check_fence(session: Session, *, stream: str, epoch: int) -> None:
    """Lock the stream's fence row for this transaction; raise LeaseLost unless it is ours."""
    stored = session.scalar(
        select(FenceRow.epoch).where(FenceRow.stream == stream).with_for_update()
    )
    if stored != epoch:
        raise LeaseLost(f"{stream}: epoch {stored} in the database, this worker has {epoch}")


@dataclass(frozen=True, slots=True)
class LeaseState:
    stream: str  # short name: incidents
    holder: str | None  # consumer name, None when nobody holds it
    epoch: int | None
    ttl_ms: int | None


def lease_states(client: redis.Redis, keys: Keys) -> list[LeaseState]:
    """Who holds each ordered stream's lease, for /readyz and /metrics (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for stream in keys.ordered_streams:
        pipe.get(keys.lease(stream))
        pipe.pttl(keys.lease(stream))
        pipe.get(keys.lease_epoch(stream))
    replies = pipe.execute()
    out = []
    for i, stream in enumerate(keys.ordered_streams):
        token, ttl, epoch = replies[3 * i : 3 * i + 3]
        out.append(
            LeaseState(
                stream=stream.rsplit(":", 1)[-1],
                holder=holder_of(token),
                epoch=int(epoch) if epoch is not None else None,
                ttl_ms=int(ttl) if token is not None and int(ttl) >= 0 else None,
            )
        )
    return out
