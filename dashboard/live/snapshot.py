"""Snapshots of the whole live state, built once per cursor and shared by every screen, and
the answer to a client's ``sync`` (the protocol: dashboard/live/__init__.py)."""

from __future__ import annotations

import gzip
import json
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis

from dashboard.services.cases import live_cases, ms, start_of_day
from dashboard.services.units import live_units
from dashboard.streams import Keys
from dashboard.text import as_str

if TYPE_CHECKING:
    from dashboard.runtime import Runtime

log = logging.getLogger(__name__)
# A shared snapshot is handed out while at most this many deltas behind the head: the
# screen catches up from the log (``since`` answers up to MAX_CATCHUP).
REUSE_BEHIND = 200
SNAPSHOT_KEEP_S = 45  # kept in Redis this long after it stops being handed out
BUILD_WAIT_S = 25.0  # a request waits this long for another process's build, then builds
BUILD_LOCK_S = 60.0  # the build lock's expiry (a builder that died frees it)
POLL_S = 0.05
SNAPSHOT_PATH = "/live/snapshot"
NO_CURSOR = "0-0"  # in a version, the cursor of an empty log


def snapshot(runtime: Runtime) -> dict[str, Any]:
    """The whole live state with the cursor it reflects (read the cursor first, then the DB:
    it holds at least everything up to ``seq``; later deltas re-applied change nothing)."""
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
        "kpis": as_str(kpis) if kpis else None,
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
                if held is not None and as_str(held) == token:
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
        "kpis": as_str(kpis) if kpis else None,
    }
