"""Operations: readiness (`/readyz`) and Prometheus metrics (`/metrics`) (logs: dashboard/logs.py).

Every figure is read from shared state (Redis, the database) at scrape time, never
from per-process globals, so any web instance answers the same for the whole
deployment: the workers count entries and push latencies in Redis hashes in the
same MULTI that acknowledges a batch; each web process writes how many sockets it
holds (dashboard/web/security.py); lag and pending counts come from the consumer group.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Response, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dashboard.api.errors import api_error
from dashboard.live.latency import LATENCY_BUCKETS
from dashboard.runtime import Runtime
from dashboard.text import as_str
from dashboard.web.auth import authorization, bearer_principal, bearer_token, current_principal
from dashboard.web.context import current_runtime
from dashboard.worker.leases import lease_states

log = logging.getLogger(__name__)
ops = Blueprint("ops", __name__)

CLIENTS_FRESH_S = 30  # a web process that has not reported its sockets for this long is gone
_LAG_LUA = """
local r = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
return #r
"""


# -- consumer groups --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GroupState:
    stream: str  # short name: incidents, pings, changes
    lag: int  # entries not yet delivered to the group
    pending: int  # delivered, not yet acknowledged
    consumers: int
    exists: bool


def group_states(rt: Runtime, *, cap: int) -> list[GroupState]:
    """Lag and pending count of the workers' group on every input stream.

    Redis 7 reports the lag itself; on 6.2 (the embedded server) it is counted with
    XRANGE after the group's last delivered id, up to ``cap`` (the figure saturates there).
    """
    out = []
    for stream in rt.keys.input_streams:
        short = stream.rsplit(":", 1)[-1]
        try:
            groups: Any = rt.redis.xinfo_groups(stream)
        except redis.ResponseError:  # no such stream yet: nothing written, nothing behind
            out.append(GroupState(short, 0, 0, 0, False))
            continue
        group = next(
            (g for g in groups if as_str(g.get("name")) == rt.settings.consumer_group), None
        )
        if group is None:
            out.append(GroupState(short, int(rt.redis.xlen(stream)), 0, 0, False))
            continue
        lag = group.get("lag")
        if lag is None:
            last = as_str(group.get("last-delivered-id") or "0-0")
            lag = rt.redis.eval(_LAG_LUA, 1, stream, last, cap)
        out.append(
            GroupState(
                short, int(lag), int(group.get("pending") or 0), int(group["consumers"]), True
            )
        )
    return out


# -- readiness --------------------------------------------------------------------------------
def readiness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    """Redis and the database answer, and the workers keep up: (ready, details)."""
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except (redis.RedisError, OSError) as exc:
        checks["redis"] = "unreachable"
        reasons.append(f"redis: {exc.__class__.__name__}")
    try:
        with rt.db.read() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except DBAPIError as exc:
        checks["database"] = "unreachable"
        reasons.append(f"database: {exc.__class__.__name__}")
    if checks["redis"] == "ok":
        s = rt.settings
        try:
            states = group_states(rt, cap=max(10_000, s.ready_max_lag) + 1)
        except (redis.RedisError, OSError) as exc:
            states = []
            reasons.append(f"redis: {exc.__class__.__name__}")
        checks["streams"] = {
            g.stream: {"lag": g.lag, "pending": g.pending, "consumers": g.consumers} for g in states
        }
        try:
            # Who applies each ordered stream (dashboard/worker/leases.py): shown, not a reason to
            # be unready (a takeover takes up to lease_ms; lag and pending show a stall).
            checks["leases"] = {
                lease.stream: {
                    "holder": lease.holder,
                    "epoch": lease.epoch,
                    "expires_in_ms": lease.ttl_ms,
                }
                for lease in lease_states(rt.redis, rt.keys)
            }
        except (redis.RedisError, OSError) as exc:
            reasons.append(f"redis: {exc.__class__.__name__}")
        for g in states:
            if g.lag > s.ready_max_lag:
                reasons.append(f"{g.stream}: lag {g.lag} > {s.ready_max_lag}")
            if g.pending > s.ready_max_pending:
                reasons.append(f"{g.stream}: pending {g.pending} > {s.ready_max_pending}")
    return not reasons, {
        "status": "ready" if not reasons else "not_ready",
        "reasons": reasons,
        "checks": checks,
    }


# -- metrics ----------------------------------------------------------------------------------
class SharedStateCollector:
    """A Prometheus collector that reads the deployment's figures from Redis on each scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        keys = rt.keys
        pipe = rt.redis.pipeline(transaction=False)
        pipe.hgetall(keys.metrics)
        pipe.hgetall(keys.latency)
        pipe.hgetall(keys.web_clients)
        pipe.xlen(keys.dead)
        pipe.get(keys.delta_seq)
        counters, latency, clients, dead_len, seq = pipe.execute()

        ingested = CounterMetricFamily(
            "lianqin_entries_ingested",
            "Stream entries applied by the workers (valid entries, acknowledged).",
            labels=["stream"],
        )
        dead = CounterMetricFamily(
            "lianqin_entries_dead_lettered",
            "Stream entries moved to the dead-letter stream, by stream and reason code.",
            labels=["stream", "reason"],
        )
        snapshots = {"builds": 0, "served": 0}
        for raw_name, raw_value in sorted(counters.items()):
            name, value = as_str(raw_name), int(raw_value)
            parts = name.split(":")
            if parts[0] == "ingested" and len(parts) == 2:
                ingested.add_metric([parts[1]], value)
            elif parts[0] == "dead" and len(parts) == 3:
                dead.add_metric([parts[1], parts[2]], value)
            elif parts[0] == "snapshot" and len(parts) == 2 and parts[1] in snapshots:
                snapshots[parts[1]] = value
        yield ingested
        yield dead
        yield CounterMetricFamily(
            "lianqin_snapshot_builds",
            "Live snapshots built (dashboard/live/snapshot.py): one per cursor, shared by all "
            "screens.",
            value=snapshots["builds"],
        )
        yield CounterMetricFamily(
            "lianqin_snapshots_served",
            "Live snapshots sent to screens by GET /live/snapshot.",
            value=snapshots["served"],
        )

        lag = GaugeMetricFamily(
            "lianqin_consumer_lag",
            "Entries of an input stream not yet delivered to the consumer group.",
            labels=["stream"],
        )
        pending = GaugeMetricFamily(
            "lianqin_consumer_pending",
            "Entries delivered to a worker and not yet acknowledged.",
            labels=["stream"],
        )
        consumers = GaugeMetricFamily(
            "lianqin_consumers", "Consumers known to the group.", labels=["stream"]
        )
        for g in group_states(rt, cap=max(10_000, rt.settings.ready_max_lag) + 1):
            lag.add_metric([g.stream], g.lag)
            pending.add_metric([g.stream], g.pending)
            consumers.add_metric([g.stream], g.consumers)
        yield lag
        yield pending
        yield consumers

        leader = GaugeMetricFamily(
            "lianqin_stream_leader",
            "1 for the worker that holds the lease on an ordered stream (applies it alone).",
            labels=["stream", "consumer"],
        )
        epoch = GaugeMetricFamily(
            "lianqin_stream_lease_epoch",
            "Fencing epoch of an ordered stream's lease: each takeover increments it.",
            labels=["stream"],
        )
        for lease in lease_states(rt.redis, rt.keys):
            if lease.holder is not None:
                leader.add_metric([lease.stream, lease.holder], 1)
            if lease.epoch is not None:
                epoch.add_metric([lease.stream], lease.epoch)
        yield leader
        yield epoch

        values = {as_str(k): int(v) for k, v in latency.items()}
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound in [*map(repr, LATENCY_BUCKETS), "+Inf"]:
            running += values.get(f"b:{bound}", 0)
            buckets.append((bound, running))
        yield HistogramMetricFamily(
            "lianqin_push_latency_seconds",
            "From an entry's XADD to the delta carrying its effect (committed, ready to push).",
            buckets=buckets,
            sum_value=values.get("sum_ms", 0) / 1000,
        )

        now_ms = int(time.time() * 1000)
        total = 0
        for raw in clients.values():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if now_ms - int(record.get("at", 0)) <= CLIENTS_FRESH_S * 1000:
                total += int(record.get("n", 0))
        yield GaugeMetricFamily(
            "lianqin_connected_clients", "Open live sockets over every web process.", value=total
        )
        yield GaugeMetricFamily(
            "lianqin_dead_letters", "Entries now held in the dead-letter stream.", value=dead_len
        )
        yield GaugeMetricFamily(
            "lianqin_delta_seq", "Sequence number of the latest pushed delta.", value=int(seq or 0)
        )


def render_metrics(rt: Runtime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SharedStateCollector(rt))
    return generate_latest(registry)


def metrics_allowed(rt: Runtime) -> bool:
    """The metrics token (bearer), an admin's API token or signed-in session, or
    ``metrics_public``. As everywhere, one credential per request: with an Authorization
    header, the session cookie is not looked at."""
    settings = rt.settings
    if settings.metrics_public:
        return True
    if authorization() is not None:
        token = bearer_token()
        if token is None:
            return False
        if settings.metrics_token is not None and hmac.compare_digest(
            token.encode(), settings.metrics_token.get_secret_value().encode()
        ):
            return True
        principal = bearer_principal()
    else:
        principal = current_principal()
    return principal is not None and principal.can("manage")


@ops.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: 200 when Redis and the database answer and the workers keep up, else 503."""
    ready, details = readiness(current_runtime())
    return jsonify(details), 200 if ready else 503


@ops.get("/metrics")
def metrics() -> Response:
    rt = current_runtime()
    if not metrics_allowed(rt):  # the API's error shape (dashboard/api/errors.py)
        return api_error(401, "unauthenticated", "metrics need the metrics token or an admin")
    try:
        payload = render_metrics(rt)
    except (redis.RedisError, OSError) as exc:
        return api_error(503, "unavailable", f"redis unavailable: {exc.__class__.__name__}")
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)
