"""Stream names, the producer, and consumer-group plumbing shared by the worker and tools."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from dashboard.config import Settings
from dashboard.text import as_str

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key Lianqin uses, under one prefix (default ``lq``)."""

    prefix: str

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @property
    def incidents(self) -> str:
        return self._k("incidents")

    @property
    def pings(self) -> str:
        return self._k("pings")

    @property
    def changes(self) -> str:
        return self._k("changes")

    @property
    def assignments(self) -> str:
        """Responders' progress on their assignments (contract v1.1)."""
        return self._k("assignments")

    @property
    def tasks(self) -> str:
        """Outbound: each responder learns of its assignments here (dashboard/contract/tasks.py)."""
        return self._k("tasks")

    @property
    def dead(self) -> str:
        return self._k("dead")

    @property
    def deltas(self) -> str:
        """The log of pushed deltas: browsers catch up from it after a gap."""
        return self._k("deltas")

    @property
    def delta_seq(self) -> str:
        return self._k("deltas:seq")

    @property
    def units_geo(self) -> str:
        return self._k("units:geo")

    @property
    def units_latest(self) -> str:
        return self._k("units:latest")

    @property
    def metrics(self) -> str:
        return self._k("metrics")

    @property
    def latency(self) -> str:
        """The push latency histogram (dashboard/live/latency.py): bucket counts, sum and count."""
        return self._k("metrics:latency")

    @property
    def consumer_counts(self) -> str:
        """Entries each consumer of the group handled (applied or dead-lettered), by consumer
        name: counted in the MULTI that acknowledges them, so each entry counts once."""
        return self._k("metrics:consumers")

    @property
    def web_clients(self) -> str:
        """Open sockets per web process (field: instance, value: JSON count and time)."""
        return self._k("web:clients")

    @property
    def revocations(self) -> str:
        """Pub/sub channel: a session ended, a user was disabled or a token revoked
        (dashboard/web/security.py)."""
        return self._k("revocations")

    def login_attempts(self, ip: str, username: str) -> str:
        return self._k(f"login:{ip}:{username}")

    def login_ip_attempts(self, ip: str) -> str:
        """Failed sign-ins from one source IP, whatever the username."""
        return self._k(f"login-ip:{ip}")

    def token_seen(self, token_id: int) -> str:
        return self._k(f"token:seen:{token_id}")

    @property
    def kpis(self) -> str:
        """The wall's latest KPI summary (JSON), for snapshots; the lock that spaces them."""
        return self._k("kpis")

    @property
    def kpis_lock(self) -> str:
        return self._k("kpis:lock")

    def snapshot(self, version: str) -> str:
        """A built live snapshot (gzip of its JSON), by version ``<day>.<seq>.<cursor>``."""
        return self._k(f"live:snapshot:{version}")

    @property
    def snapshot_latest(self) -> str:
        """Which snapshot was built last (JSON: day, seq, cursor, built, bytes)."""
        return self._k("live:snapshot:latest")

    @property
    def snapshot_lock(self) -> str:
        """Held by the one process (of every web instance) building a snapshot."""
        return self._k("live:snapshot:lock")

    @property
    def grids_version(self) -> str:
        return self._k("grids:version")

    @property
    def socketio_channel(self) -> str:
        return self._k("socketio")

    @property
    def input_streams(self) -> tuple[str, ...]:
        return (self.incidents, self.pings, self.changes, self.assignments)

    @property
    def ordered_streams(self) -> tuple[str, ...]:
        """Input streams whose entries must be applied in stream order: one worker at a time
        applies each, under a lease (dashboard/worker/leases.py). The others are shared by every
        worker of the group: pings commute (a track row per (unit, ts), the latest position
        by the newest ts) and a change only re-pushes its case's current row.

        `lq:assignments` is applied by the holder of the lq:incidents lease, under it, in
        the same transactions (README "Order"): a responder's progress never races the
        case-level entry that created or moved its case."""
        return (self.incidents,)

    def lease(self, stream: str) -> str:
        """The lease of an ordered stream: its holder's token, with a time to live."""
        return self._k("lease:" + stream.removeprefix(self.prefix + ":"))

    def lease_epoch(self, stream: str) -> str:
        """The holder's fencing epoch, copied from the database for /readyz and /metrics."""
        return self.lease(stream) + ":epoch"


def keys_for(settings: Settings) -> Keys:
    return Keys(settings.stream_prefix)


def ensure_groups(client: redis.Redis, keys: Keys, group: str) -> None:
    """Create the consumer group on every input stream (MKSTREAM); tolerate only BUSYGROUP."""
    for stream in keys.input_streams:
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", group, stream)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _format(value: Any) -> str | bytes:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, bytes | str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class Producer:
    """Writes entries exactly as an external producer would (used by the simulator and tests)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.keys = keys_for(settings)
        self.settings = settings

    @staticmethod
    def fields(values: Mapping[str, Any]) -> dict[Any, Any]:
        return {k: _format(v) for k, v in values.items() if v is not None}

    def incident(self, **values: Any) -> str:
        return self._add(self.keys.incidents, values, self.settings.stream_maxlen)

    def ping(self, **values: Any) -> str:
        return self._add(self.keys.pings, values, self.settings.ping_stream_maxlen)

    def assignment(self, **values: Any) -> str:
        return self._add(self.keys.assignments, values, self.settings.stream_maxlen)

    def _add(self, stream: str, values: Mapping[str, Any], maxlen: int) -> str:
        entry_id = self.client.xadd(stream, self.fields(values), maxlen=maxlen, approximate=True)
        return as_str(entry_id)

    def pipeline_pings(self, pings: Sequence[Mapping[str, Any]]) -> None:
        """Many pings in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for values in pings:
            pipe.xadd(
                self.keys.pings,
                self.fields(values),
                maxlen=self.settings.ping_stream_maxlen,
                approximate=True,
            )
        pipe.execute()


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def now_utc() -> datetime:
    return datetime.now(UTC)


# Redis answers these while it cannot take writes for a while (full, loading, a replica,
# a script running, failing over): wait and retry, do not blame the entry at hand.
_TRANSIENT_REPLIES = (
    "NOGROUP", "OOM", "LOADING", "BUSY", "READONLY", "MISCONF", "MASTERDOWN", "NOREPLICAS",
    "TRYAGAIN", "CLUSTERDOWN", "NOTREADY",
)  # fmt: skip


def is_transient_redis(exc: BaseException) -> bool:
    """Redis is unreachable or refuses writes for now (as opposed to refusing one entry)."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
