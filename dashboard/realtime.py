"""Live push: the delta log, the publisher, and the Socket.IO protocol of the `/live` namespace.

The one live path: a worker commits a batch, appends one *delta* (the new state
of every case and unit the batch touched) to the delta log — a bounded Redis
stream whose entry ids are the browsers' cursors, numbered by a gap-free
sequence — and publishes it through Socket.IO's Redis message queue to every web
instance, which forwards it to its browsers.

The protocol, namespace ``/live``:

* client → ``sync`` ``{cursor, seq}`` (both null on first load), acknowledged with
  either ``{mode: "catchup", deltas: [...], seq, cursor}`` — everything after the
  cursor, when the log still holds it — or, small, ``{mode: "snapshot", seq, cursor,
  url, bytes, at, kpis}``: the snapshot the client is to load is at ``url``
  (``GET /live/snapshot?day=…&seq=…&cursor=…``, gzip), never in the acknowledgement —
  tens of megabytes in one Socket.IO message held the connection past its ping
  timeout. The client buffers the deltas that arrive meanwhile, applies those after
  the snapshot's ``seq`` and catches up from the log if there is a gap between.
* Snapshots are built once and shared (``SnapshotStore``): the JSON of the whole
  live state, gzip-compressed, kept in Redis under its version (local day, sequence
  number and cursor it reflects) for ``snapshot_reuse_s`` plus 45 s. A screen that
  asks gets the latest one while it is younger than ``snapshot_reuse_s`` and at most
  ``REUSE_BEHIND`` deltas behind the head with the log still reaching back to it;
  otherwise one process of one web instance builds a new one under a Redis lock
  (``SET NX``) while every other request, on every instance, waits for it.
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

import gzip
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
import socketio as socketio_lib
from flask import Blueprint, Response, current_app, jsonify, request
from flask_socketio import join_room
from sqlalchemy.exc import DBAPIError

from dashboard.streams import Keys

if TYPE_CHECKING:
    from flask_socketio import SocketIO

    from dashboard.runtime import Runtime
    from dashboard.security import SocketGuard
    from dashboard.services.accounts import Principal

log = logging.getLogger(__name__)
NAMESPACE = "/live"
MAX_CATCHUP = 500
# A shared snapshot is handed out while at most this many deltas behind the head: the
# screen catches up from the log (``since`` answers up to MAX_CATCHUP).
REUSE_BEHIND = 200
SNAPSHOT_KEEP_S = 45  # kept in Redis this long after it stops being handed out
BUILD_WAIT_S = 25.0  # a request waits this long for another process's build, then builds
BUILD_LOCK_S = 60.0  # the build lock's expiry (a builder that died frees it)
POLL_S = 0.05
SNAPSHOT_PATH = "/live/snapshot"
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (not "٢")
_SEQ_RE = re.compile(r"[0-9]{1,18}")
_CURSOR_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
NO_CURSOR = "0-0"  # in a version, the cursor of an empty log

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
    """The whole live state with the cursor it reflects (read the cursor first, then the DB:
    it holds at least everything up to ``seq``; later deltas re-applied change nothing)."""
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


def local_day(runtime: Runtime) -> str:
    """Today in the center's time zone: a snapshot shows today's cases (and older open ones)."""
    return runtime.now().astimezone(runtime.settings.zone).date().isoformat()


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """A built snapshot: the state at (at least) ``seq``/``cursor`` on local ``day``."""

    day: str
    seq: int
    cursor: str | None
    built: int  # epoch ms
    bytes: int  # gzip size

    @property
    def version(self) -> str:
        return f"{self.day}.{self.seq}.{self.cursor or NO_CURSOR}"

    @property
    def url(self) -> str:
        return f"{SNAPSHOT_PATH}?day={self.day}&seq={self.seq}&cursor={self.cursor or NO_CURSOR}"

    @classmethod
    def parse(cls, raw: Any) -> SnapshotRef | None:
        try:
            data = json.loads(raw)
            return cls(
                day=str(data["day"]),
                seq=int(data["seq"]),
                cursor=None if data["cursor"] is None else str(data["cursor"]),
                built=int(data["built"]),
                bytes=int(data["bytes"]),
            )
        except (TypeError, ValueError, KeyError):
            return None


class SnapshotStore:
    """Snapshots built once per cursor and shared by every screen of every web instance.

    One per web process. Within the process one thread at a time looks for a snapshot
    (the others wait for it, then find what it found or built); across instances the
    Redis lock lets one build while the others poll ``snapshot_latest``. A builder that
    takes longer than ``BUILD_WAIT_S`` is given up on: the waiting process builds its own.
    """

    def __init__(self, client: redis.Redis, keys: Keys, *, reuse_s: float) -> None:
        self.client = client
        self.keys = keys
        self.reuse_ms = int(reuse_s * 1000)
        self.ttl_ms = self.reuse_ms + SNAPSHOT_KEEP_S * 1000
        self._turn = threading.Lock()
        self._recent: tuple[str, bytes] | None = None  # this process's last one (version, gzip)

    def latest(self) -> SnapshotRef | None:
        return SnapshotRef.parse(self.client.get(self.keys.snapshot_latest) or "null")

    def current(self, runtime: Runtime) -> SnapshotRef:
        """A snapshot fit for a screen that opens now: reused, waited for, or built."""
        deadline = time.monotonic() + BUILD_WAIT_S
        mine = self._turn.acquire(timeout=BUILD_WAIT_S)
        try:
            while True:
                ref = self.latest()
                if ref is not None and self.reusable(ref, runtime):
                    return ref
                token = secrets.token_hex(8)
                if self.client.set(
                    self.keys.snapshot_lock, token, nx=True, px=int(BUILD_LOCK_S * 1000)
                ):
                    try:
                        return self.build(runtime)
                    finally:
                        self._unlock(token)
                if time.monotonic() > deadline:
                    log.warning("no snapshot from the process building one: building here")
                    return self.build(runtime)
                time.sleep(POLL_S)
        finally:
            if mine:
                self._turn.release()

    def reusable(self, ref: SnapshotRef, runtime: Runtime) -> bool:
        """Today's, young enough, not too far behind, and the log still reaches back to it."""
        if ref.day != local_day(runtime) or time.time() * 1000 - ref.built > self.reuse_ms:
            return False
        head = runtime.deltas.head()
        if head.seq == ref.seq:
            return head.cursor == ref.cursor
        if not 0 < head.seq - ref.seq <= REUSE_BEHIND:
            return False  # behind too far, or the sequence restarted (a new epoch)
        low = f"({ref.cursor}" if ref.cursor else "-"
        first: Any = self.client.xrange(self.keys.deltas, min=low, count=1)
        return bool(first) and int(first[0][1][b"seq"]) == ref.seq + 1

    def build(self, runtime: Runtime) -> SnapshotRef:
        """Build the snapshot now, store it (gzip) and make it the latest."""
        started = time.perf_counter()
        snap = snapshot(runtime)
        text = json.dumps(snap, ensure_ascii=False, separators=(",", ":")).encode()
        data = gzip.compress(text, compresslevel=6, mtime=0)
        day = datetime.fromtimestamp(snap["day_start"] / 1000, runtime.settings.zone)
        ref = SnapshotRef(
            day=day.date().isoformat(),
            seq=snap["seq"],
            cursor=snap["cursor"],
            built=int(time.time() * 1000),
            bytes=len(data),
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.snapshot(ref.version), data, px=self.ttl_ms)
        pipe.set(self.keys.snapshot_latest, json.dumps(asdict(ref)), px=self.ttl_ms)
        pipe.hincrby(self.keys.metrics, "snapshot:builds", 1)
        pipe.execute()
        self._recent = (ref.version, data)
        log.info(
            "snapshot %s built in %.2f s: %d cases, %d units, %d bytes (%d gzip)",
            ref.version, time.perf_counter() - started, len(snap["cases"]),
            len(snap["units"]), len(text), len(data),
        )  # fmt: skip
        return ref

    def payload(self, version: str) -> tuple[bytes, int] | None:
        """The gzip bytes of a stored snapshot and the ms it stays stored, or None if gone."""
        recent = self._recent
        key = self.keys.snapshot(version)
        if recent is not None and recent[0] == version:
            ttl = int(self.client.pttl(key))
            return (recent[1], ttl) if ttl > 0 else None
        pipe = self.client.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        data, ttl = pipe.execute()
        if data is None or ttl <= 0:
            return None
        self._recent = (version, data)
        return data, int(ttl)

    def _unlock(self, token: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.keys.snapshot_lock)
                held: Any = pipe.get(self.keys.snapshot_lock)
                pipe.multi()
                if held is not None and _s(held) == token:
                    pipe.delete(self.keys.snapshot_lock)
                pipe.execute()
            except redis.WatchError:
                pass  # expired and taken by another: theirs now


def handle_sync(runtime: Runtime, store: SnapshotStore, data: Any) -> dict[str, Any]:
    """Answer a client's ``sync``: the deltas since its cursor, or where a snapshot is."""
    cursor = data.get("cursor") if isinstance(data, dict) else None
    seq = data.get("seq") if isinstance(data, dict) else None
    if isinstance(cursor, str) and isinstance(seq, int) and not isinstance(seq, bool):
        deltas = runtime.deltas.since(cursor, seq)
        if deltas is not None:
            head = runtime.deltas.head()
            return {"mode": "catchup", "deltas": deltas, "seq": head.seq, "cursor": head.cursor}
    ref = store.current(runtime)
    kpis: Any = runtime.redis.get(runtime.keys.kpis)  # fresher than the snapshot's copy
    return {
        "mode": "snapshot",
        "seq": ref.seq,
        "cursor": ref.cursor,
        "url": ref.url,
        "bytes": ref.bytes,
        "at": int(time.time() * 1000),
        "kpis": _s(kpis) if kpis else None,
    }


def register_socket_handlers(
    socketio: SocketIO, runtime: Runtime, store: SnapshotStore
) -> SocketGuard:
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
            return handle_sync(runtime, store, data)
        except (redis.RedisError, OSError, DBAPIError) as exc:
            log.warning("sync failed: %s", exc)
            return {"mode": "error", "error": "the live state is unavailable, retrying"}

    return guard


# -- the snapshot over HTTP ---------------------------------------------------------------------
live_http = Blueprint("live", __name__)


def _bad(field: str, reason: str) -> tuple[Response, int]:
    return jsonify({"error": reason, "field": field}), 400


@live_http.get(SNAPSHOT_PATH)
def live_snapshot() -> Response | tuple[Response, int]:
    """The snapshot a ``sync`` named (``day``, ``seq``, ``cursor``), as the gzip bytes stored
    in Redis (``Content-Encoding: gzip``); without them, or once that one has expired, the
    current one (``Cache-Control: no-store``: the URL does not name it). For the same
    principals as the socket: a session or a bearer token of a role that may see the wall.
    """
    from dashboard.auth import current_principal

    principal = current_principal()
    if principal is None or not principal.can("view_wall"):
        return jsonify({"error": "the live state is for principals who may see the wall"}), 403
    runtime: Runtime = current_app.extensions["lianqin"]
    store: SnapshotStore = current_app.extensions["lianqin_snapshots"]
    args = request.args
    wanted = None
    if any(name in args for name in ("day", "seq", "cursor")):
        day, seq, cursor = (args.get(name, "") for name in ("day", "seq", "cursor"))
        if not _DAY_RE.fullmatch(day):
            return _bad("day", "day must be a date YYYY-MM-DD (from the sync answer's url)")
        if not _SEQ_RE.fullmatch(seq):
            return _bad("seq", "seq must be a sequence number (from the sync answer's url)")
        if not _CURSOR_RE.fullmatch(cursor):
            return _bad("cursor", "cursor must be a delta log id such as 1763860445000-0")
        wanted = f"{day}.{int(seq)}.{cursor}"
    try:
        found = store.payload(wanted) if wanted else None
        if found is not None and wanted is not None:
            version, data = wanted, found[0]
            cache = f"private, max-age={found[1] // 1000}"
        else:
            version = store.current(runtime).version
            again = store.payload(version)
            if again is None:
                raise redis.RedisError("the snapshot expired as it was built")
            data, cache = again[0], "no-store"
        runtime.redis.hincrby(runtime.keys.metrics, "snapshot:served", 1)
    except (redis.RedisError, OSError, DBAPIError) as exc:
        log.warning("snapshot not served: %s", exc)
        return jsonify({"error": "the live state is unavailable, retrying"}), 503
    headers = {"ETag": f'"{version}"', "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if request.if_none_match.contains(version):
        return Response(status=304, headers=headers)
    if request.accept_encodings["gzip"]:
        headers["Content-Encoding"] = "gzip"
    else:
        data = gzip.decompress(data)
    return Response(data, headers=headers, mimetype="application/json")


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
