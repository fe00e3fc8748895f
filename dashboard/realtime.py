"""Live push: the delta log, the publisher, and the Socket.IO protocol of the `/live` namespace.

The one live path: a worker commits a batch, appends one *delta* (the new state
of every case and unit the batch touched) to the delta log — a bounded Redis
stream whose entry ids are the browsers' cursors, numbered by a gap-free
sequence — and publishes it through Socket.IO's Redis message queue to every web
instance, which forwards it to its browsers.

The protocol, namespace ``/live``:

* client → ``sync`` ``{cursor, seq}`` (both null on first load), acknowledged with
  either ``{mode: "catchup", deltas: [...]}`` — everything after the cursor, when
  the log still holds it — or ``{mode: "snapshot", cases, units, seq, cursor}``.
* server → ``delta`` ``{seq, cursor, at, d}`` where ``d`` is the JSON body
  ``{cases: [...], units: [...]}``; a client that sees a sequence gap asks ``sync``
  with its cursor (no silent gaps).
* server → ``tick`` ``{seq, cursor, at}`` every couple of seconds, so an idle
  screen still knows the pipeline is alive and can spot a missed last delta.
* server → ``kpis`` ``{k}`` where ``k`` is the JSON of the wall's KPI summary
  (dashboard/services/kpis.py ``wall_summary``), pushed by a worker at most about
  once a second after a change and on its sweep tick. It replaces the previous
  one whole, so it is not numbered; snapshots carry the latest copy as ``kpis``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import socketio as socketio_lib
from flask_socketio import join_room

from dashboard.streams import Keys

if TYPE_CHECKING:
    from flask_socketio import SocketIO

    from dashboard.runtime import Runtime
    from dashboard.security import SocketGuard
    from dashboard.services.accounts import Principal

log = logging.getLogger(__name__)
NAMESPACE = "/live"
MAX_CATCHUP = 500

_APPEND_LUA = """
local seq = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, 'd', ARGV[1])
return {seq, id}
"""


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    cursor: str | None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DeltaLog:
    """The bounded, numbered log of deltas in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, maxlen: int) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self._append = client.register_script(_APPEND_LUA)

    def append(self, body_json: str, pipe: Any = None) -> Any:
        """Append a delta; returns (seq, cursor), or queues it on ``pipe`` (a MULTI pipeline)."""
        args: list[Any] = [body_json, self.maxlen]
        keys = [self.keys.deltas, self.keys.delta_seq]
        if pipe is not None:
            return self._append(keys=keys, args=args, client=pipe)
        seq, entry_id = self._append(keys=keys, args=args)
        return int(seq), _s(entry_id)

    def head(self) -> Head:
        last: Any = self.client.xrevrange(self.keys.deltas, count=1)
        if not last:
            seq = self.client.get(self.keys.delta_seq)
            return Head(int(seq or 0), None)
        entry_id, fields = last[0]
        return Head(int(fields[b"seq"]), _s(entry_id))

    def since(self, cursor: str, seq: int) -> list[dict[str, Any]] | None:
        """Deltas after ``cursor``, or None when the log no longer holds them all."""
        try:
            entries: Any = self.client.xrange(
                self.keys.deltas, min=f"({cursor}", count=MAX_CATCHUP + 1
            )
        except redis.ResponseError:
            return None  # a malformed cursor: answer with a snapshot
        if len(entries) > MAX_CATCHUP:
            return None
        out = [to_message(e) for e in entries]
        if out and out[0]["seq"] != seq + 1:
            return None  # trimmed past the client's position, or from another epoch
        if not out and self.head().seq != seq:
            return None
        return out


def to_message(entry: tuple[bytes, dict[bytes, bytes]]) -> dict[str, Any]:
    entry_id, fields = entry
    cursor = _s(entry_id)
    return {
        "seq": int(fields[b"seq"]),
        "cursor": cursor,
        "at": int(cursor.split("-", 1)[0]),
        "d": _s(fields[b"d"]),
    }


class Publisher:
    """Emits to every browser of every web instance through the Socket.IO Redis queue."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.manager = socketio_lib.RedisManager(
            redis_url, channel=keys.socketio_channel, write_only=True
        )

    def delta(self, seq: int, cursor: str, body_json: str) -> None:
        at = int(cursor.split("-", 1)[0])
        self.manager.emit(
            "delta", {"seq": seq, "cursor": cursor, "at": at, "d": body_json}, namespace=NAMESPACE
        )

    def kpis(self, summary_json: str) -> None:
        """The wall's KPI summary (dashboard/services/kpis.py ``wall_summary``), as JSON text."""
        self.manager.emit("kpis", {"k": summary_json}, namespace=NAMESPACE)

    def tick(self, head: Head, *, degraded: str | None = None) -> None:
        """The heartbeat; ``degraded`` names what is out (``database``) while a worker waits."""
        payload: dict[str, Any] = {
            "seq": head.seq,
            "cursor": head.cursor,
            "at": int(time.time() * 1000),
        }
        if degraded:
            payload["degraded"] = degraded
        self.manager.emit("tick", payload, namespace=NAMESPACE)


def snapshot(runtime: Runtime) -> dict[str, Any]:
    """The whole live state with the cursor it reflects (read the cursor first, then the DB)."""
    from dashboard.services.cases import live_cases, ms, start_of_day
    from dashboard.services.units import live_units

    head = runtime.deltas.head()
    now = runtime.now()
    with runtime.db.read() as session:
        cases = live_cases(session, zone=runtime.settings.zone, now=now)
        units_db = {u["id"]: u for u in live_units(session)}
    units = units_db | runtime.latest.all()
    kpis: Any = runtime.redis.get(runtime.keys.kpis)  # the workers' latest summary
    return {
        "mode": "snapshot",
        "seq": head.seq,
        "cursor": head.cursor,
        "at": int(time.time() * 1000),
        "day_start": ms(start_of_day(now, runtime.settings.zone)),
        "cases": cases,
        "units": list(units.values()),
        "kpis": _s(kpis) if kpis else None,
    }


def handle_sync(runtime: Runtime, data: Any) -> dict[str, Any]:
    """Answer a client's ``sync``: the deltas since its cursor, or a fresh snapshot."""
    cursor = data.get("cursor") if isinstance(data, dict) else None
    seq = data.get("seq") if isinstance(data, dict) else None
    if isinstance(cursor, str) and isinstance(seq, int) and not isinstance(seq, bool):
        deltas = runtime.deltas.since(cursor, seq)
        if deltas is not None:
            head = runtime.deltas.head()
            return {"mode": "catchup", "deltas": deltas, "seq": head.seq, "cursor": head.cursor}
    return snapshot(runtime)


def register_socket_handlers(socketio: SocketIO, runtime: Runtime) -> SocketGuard:
    """Bind the `/live` namespace's events to the runtime; returns the process's socket guard
    (started with the first connection: it cuts off revoked principals' sockets)."""
    from dashboard.security import SocketGuard, principal_room, session_room

    guard = SocketGuard(socketio, runtime, NAMESPACE)

    @socketio.on("connect", namespace=NAMESPACE)
    def on_connect(auth: Any = None) -> bool:
        """Only a signed-in session or a valid token may listen (refused otherwise)."""
        principal, session_id = _socket_principal(runtime, auth)
        if principal is None or not principal.can("view_wall"):
            raise ConnectionRefusedError("authentication required")
        join_room(principal_room(principal))  # re-checked on every revocation
        if session_id is not None:
            join_room(session_room(session_id))  # cut off when this session ends
        guard.ensure_started()
        return True

    @socketio.on("sync", namespace=NAMESPACE)
    def on_sync(data: Any = None) -> dict[str, Any]:
        try:
            return handle_sync(runtime, data)
        except (redis.RedisError, OSError) as exc:
            log.warning("sync failed: %s", exc)
            return {"mode": "error", "error": "the live state is unavailable, retrying"}

    return guard


def _socket_principal(runtime: Runtime, auth: Any) -> tuple[Principal | None, str | None]:
    """(principal, session id) by exactly one credential: the token in the connection's
    ``auth`` payload when there is one (invalid: refused, whatever the cookie), else the
    browser's session."""
    from dashboard.auth import current_principal, current_session_id
    from dashboard.services.accounts import token_principal

    token = auth.get("token") if isinstance(auth, dict) else None
    if token is not None:
        if not isinstance(token, str):
            return None, None
        with runtime.db.read() as session:
            return token_principal(session, plaintext=token), None
    return current_principal(), current_session_id()


def body(cases: list[dict[str, Any]], units: list[dict[str, Any]]) -> str:
    return json.dumps({"cases": cases, "units": units}, ensure_ascii=False, separators=(",", ":"))


def body_encoded(cases_json: list[str], units_json: list[str]) -> str:
    """``body`` with the cases and units already encoded one by one (compact,
    ``ensure_ascii=False``): the same JSON text. The worker encodes them inside its database
    transaction, so that a value that cannot be encoded fails before the commit."""
    return '{"cases":[' + ",".join(cases_json) + '],"units":[' + ",".join(units_json) + "]}"
