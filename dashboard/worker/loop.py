"""The ingest worker: a consumer-group member that validates, applies, pushes, then acknowledges.

One cycle: XREADGROUP a batch from the input streams → validate each entry
(contract) → apply the valid ones in one database transaction (lifecycle,
idempotent) → move the units' latest positions in Redis → in one Redis MULTI:
append the delta to the delta log, dead-letter the invalid entries with their
reasons, count them, and XACK the batch → publish the delta to the browsers.

Nothing is acknowledged before its database commit. A database or Redis outage
leaves the batch pending; the worker backs off, then re-reads its own pending
entries before new ones.

No entry can stop the worker or stall a stream (``handle``): an entry the contract
refuses is dead-lettered with its reason code; a batch that fails for any other
reason — while it is parsed, applied, encoded, pushed or acknowledged — is handled
again entry by entry, and an entry that still fails alone is dead-lettered with code
``internal_error`` naming the exception. Only an outage (the database or Redis
unreachable, Redis refusing writes) leaves entries pending, to be retried.

Order: the ordered streams (`lq:incidents`) are read by one worker at a time, the
holder of the stream's lease (dashboard/worker/leases.py), and applied in stream order.
On taking over, the holder fences the database (a newer epoch: its predecessor can
no longer commit) and applies every entry pending in the group on that stream —
on any consumer, dead or alive, under any name — in id order before reading new
ones. After each read it checks that the group's pending entries of the stream are
exactly the batch it read; otherwise (a paused ex-holder read after it) it applies
all of them in id order. The shared streams (pings, changes) are read by every
worker; their entries pending on a consumer that died are claimed with XAUTOCLAIM
after ``claim_idle_ms``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from dashboard.contract.assignments import AssignmentMessage, parse_assignment
from dashboard.contract.changes import parse_change
from dashboard.contract.deadletters import dead_letter_fields
from dashboard.contract.entries import (
    ContractError,
    IncidentMessage,
    PingMessage,
    parse_incident,
    parse_ping,
)
from dashboard.geo import GridIndex, GridShape
from dashboard.live.deltas import body, body_encoded
from dashboard.live.latency import record_latencies
from dashboard.live.outbox import TASKS, ChangeLog
from dashboard.live.publisher import Publisher
from dashboard.models import Case, Grid
from dashboard.runtime import Runtime
from dashboard.services import kpis as kpi_service
from dashboard.services.assignments import Rules, apply_assignment_entries, sweep_escalations
from dashboard.services.cases import case_to_live, sweep_overdue
from dashboard.services.ingest import apply_incidents, apply_pings
from dashboard.services.units import encode_record, unit_live_record
from dashboard.streams import ensure_groups, is_transient_redis
from dashboard.text import as_str
from dashboard.worker.jobs import PeriodicJob, run_due
from dashboard.worker.leases import LeaseLost, StreamLease, check_fence, take_fence

log = logging.getLogger(__name__)
Entry = tuple[str, dict[bytes, bytes]]
CONSUMER_COUNTS_TTL_S = 7 * 86400  # the per-consumer counts outlive the last worker by a week


class TransientError(Exception):
    """The database or Redis is unreachable: retry later, acknowledge nothing."""


class Fenced(TransientError):
    """A newer holder has taken over an ordered stream: the batch is refused, neither
    acknowledged nor dead-lettered (the successor applies it, in order)."""

    def __init__(self, stream: str, reason: str) -> None:
        super().__init__(f"{stream}: {reason}")
        self.stream = stream


@dataclass
class BatchResult:
    applied: int = 0
    dead: list[tuple[str, str, str]] = field(default_factory=list)  # stream, entry id, code
    seq: int | None = None
    cursor: str | None = None


# SQLSTATE classes an OperationalError can carry that mean "this statement", not "the
# database": 54, program limit exceeded (e.g. an index row too large for its B-tree).
_STATEMENT_SQLSTATES = ("54",)


def _is_transient_db(exc: BaseException) -> bool:
    """The database is unreachable, locked or restarting: retry later, blame no entry.

    A value the database refuses (DataError, IntegrityError, a program limit) is not
    transient: retrying it forever would stall the stream, so its batch is split.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return not (isinstance(sqlstate, str) and sqlstate[:2] in _STATEMENT_SQLSTATES)
    return False


def _is_outage(exc: BaseException) -> bool:
    """Retry the batch later (acknowledge nothing) rather than blame one of its entries."""
    return isinstance(exc, TransientError) or is_transient_redis(exc)


def _pauses(exc: BaseException) -> bool:
    """A periodic job's exception that stops the round and goes to the loop, which backs off
    (an outage, a newer lease holder, Redis refusing); anything else is the job's own."""
    return isinstance(exc, TransientError | redis.RedisError | OSError)


def _describe(exc: BaseException) -> str:
    """The exception's class and the first line of its message (a DBAPIError's driver
    error, not its SQL and parameters), for a reason or a log line."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = str(inner).split("\n", 1)[0]
    return f"{inner.__class__.__name__}: {first[:200]}" if first else inner.__class__.__name__


def internal_error(exc: BaseException) -> ContractError:
    return ContractError("internal_error", f"the worker failed on this entry: {_describe(exc)}")


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        publisher: Publisher | None,
        *,
        consumer: str | None = None,
    ) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.keys = runtime.keys
        self.publisher = publisher
        self.group = self.settings.consumer_group
        self.consumer = consumer or default_consumer_name()
        self.grids = GridIndex([])
        self._grids_version: Any = b"unset"
        self._retry_pending = True  # after a start or a failure, our own pending entries first
        self._last_kpis = 0.0
        self._kpis_dirty = True  # cases changed since the wall's KPIs were last pushed
        self._kpis_cost = 0.0  # seconds the last computation took
        # Yesterday's figures move only with the time of day: reused for a minute.
        self._yesterday: tuple[float, int, dict[str, Any]] | None = None
        self._short = {
            self.keys.incidents: "incidents",
            self.keys.pings: "pings",
            self.keys.changes: "changes",
            self.keys.assignments: "assignments",
        }
        # Streams applied under another stream's lease, in the same transactions: the
        # responders' progress goes with the cases it moves (README "Order").
        self.guarded = {self.keys.assignments: self.keys.incidents}
        self.rules = Rules.from_settings(self.settings, runtime.policy)
        self.leases = {
            stream: StreamLease(
                runtime.redis,
                stream=stream,
                key=self.keys.lease(stream),
                epoch_key=self.keys.lease_epoch(stream),
                consumer=self.consumer,
                ttl_ms=self.settings.lease_ms,
            )
            for stream in self.keys.ordered_streams
        }
        self.jobs = self._housekeeping_jobs()

    def _housekeeping_jobs(self) -> list[PeriodicJob]:
        """Between batches, in this order (dashboard/worker/jobs.py): renew or take the leases
        (every round, first: the rest may take a while), then on the sweep tick reload the grid
        index if it changed, flag overdue cases, relay the outbox, raise the 督办 level of late
        assignments (every LIANQIN_ESCALATION_INTERVAL_S) and tell the screens the pipeline is
        alive; the wall's KPIs when cases changed; dead consumers' entries."""
        sweep_s = self.settings.sweep_interval_s
        return [
            PeriodicJob("leases", 0.0, self._tick_leases),
            PeriodicJob("grids", sweep_s, self.reload_grids),
            PeriodicJob("sweep", sweep_s, self.sweep),
            PeriodicJob("outbox", sweep_s, self.relay_changes),
            # issue 13: raise the 督办 level of late assignments (a clock drives it)
            PeriodicJob("escalation", self.settings.escalation_interval_s, self.escalate),
            PeriodicJob("clock", sweep_s, self._clock_tick),
            # At most once per interval, and never more than ~20 % of the worker's time (a
            # day with tens of thousands of cases takes the database most of a second).
            PeriodicJob(
                "kpis",
                lambda: max(self.settings.kpi_interval_s, 5 * self._kpis_cost),
                self.push_kpis,
                when=lambda: self._kpis_dirty,
            ),
            PeriodicJob("reclaim", max(1.0, self.settings.claim_idle_ms / 2000), self.reclaim),
        ]

    # -- set-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        ensure_groups(self.rt.redis, self.keys, self.group)
        self.reload_grids(force=True)

    def reload_grids(self, *, force: bool = False) -> None:
        version: Any = self.rt.redis.get(self.keys.grids_version)
        if not force and version == self._grids_version:
            return
        with self.rt.db.read() as session:
            rows = session.execute(
                select(Grid.code, Grid.geometry).where(Grid.level == "grid")
            ).tuples()
            self.grids = GridIndex(GridShape(code, geom) for code, geom in rows)
        self._grids_version = version
        log.info("grid index: %d grids", len(self.grids))

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; finish the batch at hand first (graceful shutdown)."""
        backoff = 0.5
        prepared = False
        while not stop.is_set():
            try:
                if not prepared:
                    self.prepare()
                    prepared = True
                self.housekeeping()  # the leases first, then the periodic jobs that are due
                self.step()
                backoff = 0.5
            except Fenced as exc:  # from the housekeeping's catch-up; step() handles its own
                self._fenced(exc)
            except (TransientError, redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("worker paused (%s); retrying in %.1f s", exc, backoff)
                self._retry_pending = True
                if isinstance(exc, TransientError):
                    self._tell_degraded("database")
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream or group was deleted under us
                    prepared = False
                    continue
                log.exception("unexpected Redis error")
                stop.wait(backoff)
            except Exception:
                # No entry gets here (``handle`` dead-letters what fails); this is the last
                # line against a bug in a periodic job: log it, back off, never exit.
                log.exception("worker cycle failed; retrying in %.1f s", backoff)
                self._retry_pending = True
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self.release_leases()  # a successor need not wait for the TTL
        log.info("worker %s stopped", self.consumer)

    def release_leases(self) -> None:
        for lease in self.leases.values():
            lease.drop()

    def housekeeping(self) -> list[str]:
        """Run the periodic jobs that are due (``self.jobs``); returns their names. A job that
        fails is logged and the others still run; an outage stops the round (the loop backs
        off) and the jobs not reached run in the next one."""
        return run_due(self.jobs, time.monotonic(), pauses=_pauses)

    def job(self, name: str) -> PeriodicJob:
        return next(j for j in self.jobs if j.name == name)

    def _clock_tick(self) -> None:
        """The clock moves live figures (overdue, units online): the KPIs are due again; and
        the heartbeat, so an idle screen knows the pipeline is alive."""
        self._kpis_dirty = True
        if self.publisher is not None:
            try:
                self.publisher.tick(self.rt.deltas.head())
            except (redis.RedisError, OSError) as exc:
                log.warning("tick not published: %s", exc)

    def _tell_degraded(self, reason: str) -> None:
        """The database is out: tell the screens (a tick flagged degraded), so the wall shows
        the outage and the data's age instead of numbers that silently stopped moving."""
        if self.publisher is None:
            return
        try:
            self.publisher.tick(self.rt.deltas.head(), degraded=reason)
        except (redis.RedisError, OSError) as exc:
            log.warning("degraded tick not published: %s", exc)

    def step(self) -> int:
        """Renew or take the leases, then read one batch (our pending entries first, then
        new ones) and handle it; returns how many entries were handled."""
        try:
            handled = self._tick_leases()
            return handled + self._read_and_handle()
        except Fenced as exc:
            self._fenced(exc)
            return 0

    def _fenced(self, exc: Fenced) -> None:
        log.warning("batch refused, a newer worker holds the lease (%s)", exc)
        self.leases[exc.stream].drop()
        self._retry_pending = True  # the shared streams' part of it is still ours to apply

    def _tick_leases(self) -> int:
        handled = 0
        for stream, lease in self.leases.items():
            if lease.tick():
                handled += self._take_over(stream, lease)
        return handled

    def _take_over(self, stream: str, lease: StreamLease) -> int:
        """Fence the database with a new epoch, then apply what is pending, in order."""
        try:
            with self.rt.db.write() as session:
                epoch = take_fence(session, stream=stream, holder=self.consumer, now=self.rt.now())
        except DBAPIError as exc:
            if _is_transient_db(exc):
                raise TransientError(f"database: {exc.__class__.__name__}") from exc
            log.error(
                "cannot take the fence of %s (is the schema current? `lianqin db upgrade`)", stream
            )
            raise
        lease.took_over(epoch)
        handled = self._catch_up(stream)
        for guarded, owner in self.guarded.items():
            if owner == stream:
                handled += self._catch_up(guarded)
        return handled

    def _holds(self, stream: str) -> bool:
        """Whether this worker may apply ``stream`` now (shared, or its lease is ours)."""
        owner = self.guarded.get(stream, stream)
        return owner not in self.leases or self.leases[owner].held

    def _read_and_handle(self) -> int:
        streams = [s for s in self.keys.input_streams if self._holds(s)]
        start_id = "0" if self._retry_pending else ">"
        response: Any = self.rt.redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(streams, start_id),
            count=self.settings.worker_batch,
            block=None if self._retry_pending else self.settings.worker_block_ms,
        )
        batches: dict[str, list[Entry]] = {}
        for stream, entries in response or []:
            name = as_str(stream)
            if entries:
                batches[name] = [(as_str(eid), fields) for eid, fields in entries]
        if self._retry_pending and not batches:
            self._retry_pending = False
            return 0
        if not batches:
            return 0
        # An ordered stream's batch is applied now only if nothing else of it is pending;
        # otherwise everything pending (ours and a paused ex-holder's) goes in id order.
        ordered = [*self.leases, *self.guarded]
        behind = [s for s in ordered if s in batches and not self._alone(s, len(batches[s]))]
        for stream in behind:
            del batches[stream]
        handled = 0
        if batches:
            result = self.handle(batches)
            handled = result.applied + len(result.dead)
            # Per consumer (counted in Redis too: ``Keys.consumer_counts``).
            log.debug(
                "consumer %s handled %d entries (%d dead-lettered)",
                self.consumer,
                handled,
                len(result.dead),
            )
        for stream in behind:
            handled += self._catch_up(stream)
        return handled

    def _alone(self, stream: str, count: int) -> bool:
        """Whether the group's pending entries of ``stream`` are exactly the ``count`` we
        just read (they are all ours, and none is older)."""
        summary: Any = self.rt.redis.xpending(stream, self.group)
        if int(summary["pending"]) != count:
            return False
        return all(as_str(c["name"]) == self.consumer for c in summary["consumers"])

    def _catch_up(self, stream: str) -> int:
        """Apply every entry pending in the group on an ordered stream, whoever it was
        delivered to (dead consumers, ones from before a restart under another name, a
        paused ex-holder), in id order. Claimed with min-idle 0: the lease and the fence
        make that safe. Entries trimmed from the stream meanwhile are acknowledged."""
        total = 0
        batch = self.settings.worker_batch
        while True:
            rows: Any = self.rt.redis.xpending_range(
                stream, self.group, min="-", max="+", count=batch
            )
            if not rows:
                break
            ids: list[Any] = [as_str(row["message_id"]) for row in rows]
            claimed: Any = self.rt.redis.xclaim(
                stream, self.group, self.consumer, min_idle_time=0, message_ids=ids
            )
            entries = [(as_str(eid), fields) for eid, fields in claimed if eid is not None]
            gone = set(ids) - {eid for eid, _ in entries}
            if gone:
                log.error(
                    "%d pending entries of %s were trimmed before being applied: "
                    "raise the stream MAXLEN",
                    len(gone),
                    stream,
                )
                self.rt.redis.xack(stream, self.group, *sorted(gone))
            if entries:
                log.info("claimed %d pending entries of %s", len(entries), stream)
                result = self.handle({stream: entries})
                total += result.applied + len(result.dead)
            total += len(gone)
            if len(rows) < batch:
                break
        return total

    def reclaim(self) -> int:
        """Claim entries of the shared streams left pending by dead consumers (XAUTOCLAIM)
        and handle them; as the holder of an ordered stream, apply what is pending on it
        (a paused ex-holder may have read entries after our last read)."""
        total = 0
        for stream, lease in self.leases.items():
            if lease.held and int(self.rt.redis.xpending(stream, self.group)["pending"]):
                total += self._catch_up(stream)
        for stream, owner in self.guarded.items():
            held = self.leases[owner].held
            if held and int(self.rt.redis.xpending(stream, self.group)["pending"]):
                total += self._catch_up(stream)
        for stream in self.keys.input_streams:
            if stream in self.leases or stream in self.guarded:
                continue
            start = "0-0"
            while True:
                reply: Any = self.rt.redis.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    min_idle_time=self.settings.claim_idle_ms,
                    start_id=start,
                    count=self.settings.worker_batch,
                )
                start = as_str(reply[0])
                entries = [(as_str(eid), fields) for eid, fields in reply[1] if eid is not None]
                if entries:
                    log.info("claimed %d pending entries of %s", len(entries), stream)
                    self.handle({stream: entries})
                    total += len(entries)
                if start == "0-0" or not entries:
                    break
        return total

    def relay_changes(self) -> int:
        """Publish dashboard changes still in the outbox after the grace period (the web
        process died or Redis was down between its commit and its XADD:
        dashboard/live/outbox.py)."""
        changes = ChangeLog(
            self.rt.redis,
            self.keys,
            self.settings.changes_maxlen,
            dead_maxlen=self.settings.dead_maxlen,
        )
        grace_s = self.settings.outbox_grace_s
        try:
            with self.rt.db.read() as session:  # the usual answer, without a write lock
                if not changes.overdue(session, now=self.rt.now(), grace_s=grace_s):
                    return 0
            with self.rt.db.write() as session:
                return changes.relay(session, now=self.rt.now(), grace_s=grace_s)
        except Exception as exc:
            if isinstance(exc, DBAPIError) and _is_transient_db(exc):
                raise TransientError(f"database: {exc.__class__.__name__}") from exc
            if is_transient_redis(exc):
                raise
            # Rows it cannot publish are dead-lettered by the relay itself; anything else
            # must not keep this worker from ingesting: the relay runs again next tick.
            log.error("outbox relay failed: %s", _describe(exc), exc_info=True)
            return 0

    def sweep(self) -> None:
        """Flag newly overdue cases and push them (a clock, not a message, drives this)."""
        try:
            with self.rt.db.write() as session:
                now = self.rt.now()
                due = sweep_overdue(session, now=now)
                live = [case_to_live(c, now=now) for c in due]
        except DBAPIError as exc:
            raise TransientError(f"database: {exc.__class__.__name__}") from exc
        if live:
            pipe = self.rt.redis.pipeline(transaction=True)
            payload = body(live, [])
            self.rt.deltas.append(payload, pipe)
            seq, cursor = pipe.execute()[0]
            self._publish(int(seq), as_str(cursor), payload)

    def escalate(self) -> int:
        """Raise the 督办 level of late assignments (a clock, not a message, drives this);
        push the cases and publish the assignees' tasks. Any worker may run it: the rows
        are locked (skip locked) and a level is only ever raised once."""
        try:
            with self.rt.db.write() as session:
                now = self.rt.now()
                cases, tasks = sweep_escalations(session, now=now)
                live = [case_to_live(c, now=now) for c in cases]
        except DBAPIError as exc:
            raise TransientError(f"database: {exc.__class__.__name__}") from exc
        self._publish_tasks(tasks, now)
        if live:
            pipe = self.rt.redis.pipeline(transaction=True)
            payload = body(live, [])
            self.rt.deltas.append(payload, pipe)
            seq, cursor = pipe.execute()[0]
            self._publish(int(seq), as_str(cursor), payload)
        return len(cases)

    def push_kpis(self, *, force: bool = False) -> dict[str, Any] | None:
        """Recompute the wall's KPI summary (SQL aggregates over today), keep a copy in Redis
        for snapshots and push it to the browsers. Several workers share one computation per
        interval through a short Redis lock; returns the summary when this worker made it."""
        self._last_kpis = time.monotonic()
        interval_ms = int(self.settings.kpi_interval_s * 1000)
        try:
            if not force and not self.rt.redis.set(
                self.keys.kpis_lock, self.consumer, nx=True, px=max(100, interval_ms - 50)
            ):
                return None  # another worker pushed them just now
            self._kpis_dirty = False
            options = kpi_service.options_for(self.settings, self.rt.policy)
            now = self.rt.now()
            day_ms = int(kpi_service.today_period(now, self.settings.zone).start.timestamp() * 1000)
            cached = self._yesterday
            reuse = (
                cached[2]
                if cached and cached[1] == day_ms and self._last_kpis - cached[0] < 60
                else None
            )
            with self.rt.db.read() as session:
                summary = kpi_service.wall_summary(
                    session, now=now, zone=self.settings.zone, options=options, yesterday_part=reuse
                )
            if reuse is None:
                self._yesterday = (self._last_kpis, day_ms, kpi_service.yesterday_of(summary))
            self._kpis_cost = time.monotonic() - self._last_kpis
            payload = json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
            self.rt.redis.set(self.keys.kpis, payload)
        except DBAPIError as exc:
            self._kpis_dirty = True
            log.warning("KPIs not computed: %s", exc.__class__.__name__)
            return None
        if self.publisher is not None:
            try:
                self.publisher.kpis(payload)
            except (redis.RedisError, OSError) as exc:
                log.warning("KPIs not published: %s", exc)
        return summary

    # -- one batch ------------------------------------------------------------------------
    def handle(
        self, batches: dict[str, list[Entry]], *, split_on_error: bool = True
    ) -> BatchResult:
        """Validate, apply, push and acknowledge a batch: every entry ends applied or
        dead-lettered, whatever it holds.

        If anything fails that is not an outage, the batch is handled again entry by
        entry (earlier entries' effects are idempotent), and an entry that fails alone is
        dead-lettered with code ``internal_error``. Raises only for an outage (database
        or Redis), having acknowledged nothing of what it could not finish.
        """
        try:
            return self._handle(batches)
        except Exception as exc:
            if _is_outage(exc):
                raise
            n = sum(1 for entries in batches.values() for _, fields in entries if fields)
            if split_on_error and n > 1:
                log.warning(
                    "a batch of %d entries failed (%s); handling them one by one",
                    n,
                    _describe(exc),
                    exc_info=exc,
                )
                return self._one_by_one(batches)
            log.error("an entry failed (%s); dead-lettering it", _describe(exc), exc_info=exc)
            return self._dead_letter_failed(batches, exc)

    def _handle(self, batches: dict[str, list[Entry]]) -> BatchResult:
        now = self.rt.now()
        incidents: list[tuple[str, IncidentMessage]] = []
        assignments: list[tuple[str, AssignmentMessage]] = []
        pings: list[PingMessage] = []
        changes: list[tuple[str, str]] = []
        dead: list[tuple[str, str, dict[bytes, bytes], ContractError]] = []
        empty = 0
        raw_by_id: dict[tuple[str, str], dict[bytes, bytes]] = {}
        skew = self.settings.max_clock_skew_s
        categories = self.settings.categories
        for stream, entries in batches.items():
            for entry_id, fields in entries:
                if not fields:
                    empty += 1  # trimmed from the stream before it was read
                    continue
                raw_by_id[(stream, entry_id)] = fields
                try:
                    if stream == self.keys.incidents:
                        msg = parse_incident(fields, categories=categories, now=now, skew_s=skew)  # type: ignore[arg-type]
                        incidents.append((entry_id, msg))
                    elif stream == self.keys.pings:
                        pings.append(parse_ping(fields, now=now, skew_s=skew))  # type: ignore[arg-type]
                    elif stream == self.keys.assignments:
                        msg_a = parse_assignment(fields, now=now, skew_s=skew)  # type: ignore[arg-type]
                        assignments.append((entry_id, msg_a))
                    else:
                        changes.append((entry_id, self._parse_change(fields)))
                except ContractError as exc:
                    dead.append((stream, entry_id, fields, exc))
                except Exception as exc:  # the parser failed: this entry, not the batch
                    log.error("parsing %s failed: %s", entry_id, _describe(exc), exc_info=exc)
                    dead.append((stream, entry_id, fields, internal_error(exc)))
        if empty:
            log.error("%d entries were trimmed before being read: raise the stream MAXLEN", empty)
        cases_live, units_live, rejected = self._apply(incidents, pings, changes, now, assignments)
        for stream, entry_id, error in rejected:
            dead.append((stream, entry_id, raw_by_id[(stream, entry_id)], error))
        return self._finish(batches, cases_live, units_live, dead)

    def _one_by_one(self, batches: dict[str, list[Entry]]) -> BatchResult:
        total = BatchResult()
        for stream, entries in batches.items():
            for entry in entries:
                res = self.handle({stream: [entry]}, split_on_error=False)
                total.applied += res.applied
                total.dead.extend(res.dead)
        return total

    def _dead_letter_failed(self, batches: dict[str, list[Entry]], exc: Exception) -> BatchResult:
        """Dead-letter the entries of a batch that failed alone, and acknowledge them."""
        error = internal_error(exc)
        dead = [(s, eid, f, error) for s, entries in batches.items() for eid, f in entries if f]
        try:
            return self._finish(batches, [], [], dead)
        except Exception as again:
            if _is_outage(again):
                raise
            # Even the copy of its fields failed: a dead letter without them (the entry
            # itself stays in its stream until the stream's MAXLEN trims it).
            log.error("dead letter refused (%s); writing one without the fields", _describe(again))
            bare = ContractError(
                "internal_error",
                f"{error.reason}; its fields could not be copied ({_describe(again)}): "
                "read them from the source stream by the entry id",
            )
            return self._finish(batches, [], [], [(s, eid, {}, bare) for s, eid, _, _ in dead])

    def _apply(
        self,
        incidents: Sequence[tuple[str, IncidentMessage]],
        pings: Sequence[PingMessage],
        changes: Sequence[tuple[str, str]],
        now: datetime,
        assignments: Sequence[tuple[str, AssignmentMessage]] = (),
    ) -> tuple[list[str], list[str], list[tuple[str, str, ContractError]]]:
        """Apply in one transaction; return the encoded live records of the cases and of the
        units that moved, and the entries the lifecycle refused.

        Everything that depends on the entries' content — the database's checks, the live
        records and their JSON — happens before the commit, so that it fails with nothing
        applied; after the commit only Redis is written (the units' positions)."""
        if not (incidents or pings or changes or assignments):
            return [], [], []
        try:
            with self.rt.db.write() as session:
                if incidents or assignments:
                    self._fence(session, self.keys.incidents)
                inc = apply_incidents(
                    session,
                    incidents,
                    stream=self.keys.incidents,
                    policy=self.rt.policy,
                    grids=self.grids,
                    now=now,
                )
                touched = dict(inc.touched)
                asg = apply_assignment_entries(
                    session,
                    assignments,
                    stream=self.keys.assignments,
                    rules=self.rules,
                    policy=self.rt.policy,
                    now=now,
                )
                touched.update(asg.touched)
                if changes:
                    ids = sorted({case_id for _, case_id in changes} - set(touched))
                    for case in session.scalars(select(Case).where(Case.id.in_(ids))):
                        touched[case.id] = case
                cases_live = [encode_record(case_to_live(c, now=now)) for c in touched.values()]
                pout = apply_pings(session, pings, now=now)
                # Each unit's live record is encoded once: for the Redis hash and the delta.
                records = {
                    u: unit_live_record(p, pout.info.get(u, {})) for u, p in pout.latest.items()
                }
                encoded = {u: encode_record(r) for u, r in records.items()}
        except DBAPIError as exc:
            if _is_transient_db(exc):
                raise TransientError(f"database: {exc.__class__.__name__}: {exc.orig}") from exc
            raise
        moved = set(self.rt.latest.put(pout.latest, records, encoded))
        units_live = [encoded[u] for u in pout.latest if u in moved]
        self._publish_tasks(asg.tasks, now)
        rejected = [(self.keys.incidents, eid, err) for eid, err in inc.rejected]
        rejected += [(self.keys.assignments, eid, err) for eid, err in asg.rejected]
        return cases_live, units_live, rejected

    def _publish_tasks(self, tasks: Sequence[tuple[str, Mapping[str, str]]], now: datetime) -> None:
        """The fast path of committed lq:tasks rows (the relay publishes what this misses)."""
        if not tasks:
            return
        log_ = ChangeLog(self.rt.redis, self.keys, self.settings.changes_maxlen)
        log_.publish(self.rt.db, list(tasks), now=now, stream=TASKS)

    def _fence(self, session: Session, stream: str) -> None:
        """First statement of a transaction applying an ordered stream: it goes on only if
        this worker still holds the stream (its epoch is the database's)."""
        lease = self.leases[stream]
        if lease.epoch is None:
            raise Fenced(stream, "this worker does not hold the lease")
        try:
            check_fence(session, stream=stream, epoch=lease.epoch)
        except LeaseLost as exc:
            raise Fenced(stream, str(exc)) from exc

    def _finish(
        self,
        batches: dict[str, list[Entry]],
        cases_live: list[str],  # encoded live records (services.units.encode_record)
        units_live: list[str],
        dead: list[tuple[str, str, dict[bytes, bytes], ContractError]],
    ) -> BatchResult:
        """One MULTI: delta, dead letters, metrics, acknowledgements; then publish."""
        result = BatchResult()
        pipe = self.rt.redis.pipeline(transaction=True)
        payload = None
        if cases_live:
            self._kpis_dirty = True
        if cases_live or units_live:
            payload = body_encoded(cases_live, units_live)
            self.rt.deltas.append(payload, pipe)
        counts: Counter[str] = Counter()
        dead_ids = set()
        for stream, entry_id, fields, exc in dead:
            short = self._short.get(stream, stream)
            pipe.xadd(
                self.keys.dead,
                dead_letter_fields(  # type: ignore[arg-type]
                    stream=stream,
                    entry_id=entry_id,
                    code=exc.code,
                    reason=exc.reason,
                    field=exc.field,
                    raw=fields,
                    consumer=self.consumer,
                ),
                maxlen=self.settings.dead_maxlen,
                approximate=True,
            )
            counts[f"dead:{short}:{exc.code}"] += 1
            dead_ids.add((stream, entry_id))
            result.dead.append((stream, entry_id, exc.code))
            log.info("dead-lettered %s %s: %s", short, entry_id, exc.reason)
        for stream, entries in batches.items():
            short = self._short.get(stream, stream)
            ok = sum(1 for eid, _ in entries if (stream, eid) not in dead_ids)
            counts[f"ingested:{short}"] += ok
            result.applied += ok
            pipe.xack(stream, self.group, *[eid for eid, _ in entries])
        for name, value in counts.items():
            if value:
                pipe.hincrby(self.keys.metrics, name, value)
        if result.applied or result.dead:  # each worker's share of the group's work
            pipe.hincrby(
                self.keys.consumer_counts, self.consumer, result.applied + len(result.dead)
            )
            pipe.expire(self.keys.consumer_counts, CONSUMER_COUNTS_TTL_S)  # gone when all stop
        if payload is not None:  # XADD → pushed delta, for every entry whose effect it carries
            record_latencies(
                pipe,
                self.keys,
                (eid for s, es in batches.items() for eid, _ in es if (s, eid) not in dead_ids),
                int(time.time() * 1000),
            )
        replies = pipe.execute()
        if payload is not None:
            seq, cursor = replies[0]
            result.seq, result.cursor = int(seq), as_str(cursor)
            self._publish(result.seq, result.cursor, payload)
        return result

    def _publish(self, seq: int, cursor: str, payload: str) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.delta(seq, cursor, payload)
        except Exception as exc:  # committed and acknowledged: never undo that for a push
            # The delta is in the log: browsers will see the gap and catch up.
            log.warning("delta %d not published: %s", seq, _describe(exc))

    @staticmethod
    def _parse_change(fields: dict[bytes, bytes]) -> str:
        return parse_change(fields)  # type: ignore[arg-type]
