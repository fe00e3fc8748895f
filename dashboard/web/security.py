"""Security around the app: headers (CSP), login rate limiting, token-use audit, and cutting
off open sockets at once when a session ends, a user is disabled or a token revoked.

Everything shared between web instances lives in Redis: the login attempt counters, the
"token seen" marks, and the revocation channel every web process listens to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket as socket_lib
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from flask import Flask, Response
from sqlalchemy.orm import Session

from dashboard.config import Settings
from dashboard.services.accounts import (
    audit,
    live_sessions,
    load_token_principal,
    load_user_principal,
)
from dashboard.streams import Keys
from dashboard.tiles import tile_source

if TYPE_CHECKING:
    from flask_socketio import SocketIO

    from dashboard.runtime import Runtime
    from dashboard.services.accounts import Principal

log = logging.getLogger(__name__)


# -- Content-Security-Policy ------------------------------------------------------------------
def _tile_origins(settings: Settings) -> list[str]:
    """Where the configured map tiles come from ({s} subdomains become a wildcard)."""
    try:
        source = tile_source(settings)
    except ValueError:
        return []
    if source is None:
        return []
    origins = []
    for url in (source.url, source.overlay_url):
        if not url or url.startswith("/"):
            continue
        parts = urlsplit(url.replace("{s}", "x"))
        host = parts.hostname or ""
        if "{s}" in url.split("//", 1)[-1].split("/", 1)[0]:
            host = "*." + host.split(".", 1)[-1]
        origins.append(f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else ""))
    return origins


def content_security_policy(settings: Settings, script_hashes: Iterable[str]) -> str:
    """No inline script but Dash's own (by hash), nothing from other origins but map tiles.

    Styles allow inline: Plotly and Leaflet set element styles and add <style> rules at
    run time; a style cannot run code, and untrusted text is only ever rendered as text.
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *_tile_origins(settings)],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],  # same-origin XHR and the Socket.IO websocket
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def install_headers(server: Flask, policy: str) -> None:
    """Every response: the CSP and the usual hardening headers."""

    def add_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        return response

    server.after_request(add_headers)


# -- login rate limiting ----------------------------------------------------------------------
# Two budgets, both in Redis so that every web instance counts the same attempts:
# per (source IP, username) — a guesser at one account — and per source IP across all
# usernames — a sprayer trying a few passwords on every account. Each is a fixed window
# that starts with the first failure and expires ``login_window_s`` later (one SET NX EX
# and one INCR): simple and exact to reason about; at a window's edge a guesser may get up
# to twice the budget in a short burst, never more than the budget per window on average.
def _attempt_key(keys: Keys, ip: str | None, username: str) -> str:
    digest = hashlib.sha256(username.casefold().encode("utf-8", "replace")).hexdigest()[:24]
    return keys.login_attempts(ip or "-", digest)


def login_blocked(client: redis.Redis, keys: Keys, settings: Settings, *, ip: str | None,
                  username: str) -> tuple[int, str]:  # fmt: skip
    """(seconds until this IP may try this username again, which budget is spent: "ip" or
    "user"); (0, "") when it may try now."""
    pair = _attempt_key(keys, ip, username)
    whole = keys.login_ip_attempts(ip or "-")
    pipe = client.pipeline(transaction=False)
    pipe.get(whole)
    pipe.ttl(whole)
    pipe.get(pair)
    pipe.ttl(pair)
    ip_count, ip_ttl, count, ttl = pipe.execute()
    if int(ip_count or 0) >= settings.login_ip_max_attempts:
        return max(1, int(ip_ttl)), "ip"
    if int(count or 0) >= settings.login_max_attempts:
        return max(1, int(ttl)), "user"
    return 0, ""


def login_failed(client: redis.Redis, keys: Keys, settings: Settings, *, ip: str | None,
                 username: str) -> None:  # fmt: skip
    """Count a failed attempt against both budgets."""
    pipe = client.pipeline(transaction=True)
    for key in (_attempt_key(keys, ip, username), keys.login_ip_attempts(ip or "-")):
        pipe.set(key, 0, ex=settings.login_window_s, nx=True)  # the window starts here
        pipe.incr(key)  # keeps the TTL
    pipe.execute()


def login_succeeded(client: redis.Redis, keys: Keys, *, ip: str | None, username: str) -> None:
    """Clear the pair's counter. The IP's is kept: one good password among many guesses
    must not buy a sprayer a fresh budget."""
    client.delete(_attempt_key(keys, ip, username))


# -- token use in the audit trail ---------------------------------------------------------------
def note_token_use(
    rt: Runtime, session: Session, principal: Principal, *, ip: str | None, path: str
) -> bool:
    """Audit a bearer token's use at most once per ``token_audit_interval_s`` per token (a
    Redis mark shared by every web instance), so the trail does not get a row per request."""
    interval = rt.settings.token_audit_interval_s
    try:
        first = interval == 0 or bool(
            rt.redis.set(rt.keys.token_seen(principal.key), "1", nx=True, ex=interval)
        )
    except (redis.RedisError, OSError):
        first = True  # without Redis, audit every use rather than none
    if first:
        audit(session, actor=principal.actor, action="token.use", target=path[:100], ip=ip)
    return first


# -- revocation: cut off open sockets at once ---------------------------------------------------
def principal_room(principal: Principal) -> str:
    """The Socket.IO room of a principal; a user's carries its session epoch."""
    if principal.kind == "user":
        return f"principal:user:{principal.key}:{principal.epoch}"
    return f"principal:token:{principal.key}"


def announce_revocation(client: redis.Redis, keys: Keys) -> None:
    """Tell every web process to re-check the principals of its open sockets now."""
    client.publish(keys.revocations, "recheck")


def session_room(session_id: str) -> str:
    """The Socket.IO room of one browser session (logout cuts its sockets, not the user's)."""
    return f"session:{session_id}"


def room_still_valid(session: Session, room: str) -> bool:
    parts = room.split(":")
    try:
        if parts[1] == "user" and len(parts) == 4:
            return (
                load_user_principal(session, user_id=int(parts[2]), epoch=int(parts[3])) is not None
            )
        if parts[1] == "token" and len(parts) == 3:
            return load_token_principal(session, token_id=int(parts[2])) is not None
    except (ValueError, IndexError):
        return False
    return False


class SocketGuard:
    """One per web process: listens for revocations (Redis pub/sub), re-checks every open
    socket's principal on each and every ``socket_recheck_s``, disconnects the refused, and
    reports how many sockets this process holds (for ``lianqin_connected_clients``).

    It knows the sockets it was told about: the namespace hands it each accepted socket with
    the rooms it is watched under (``track``) and takes it back on disconnect (``forget``)."""

    def __init__(self, socketio: SocketIO, rt: Runtime, namespace: str) -> None:
        self.socketio = socketio
        self.rt = rt
        self.namespace = namespace
        self.instance = f"{socket_lib.gethostname()}-{os.getpid()}-{id(self):x}"
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._sids: dict[str, tuple[str, ...]] = {}  # open socket → the rooms it is watched in
        self._sids_lock = threading.Lock()
        self._task: Any = None

    def track(self, sid: str, rooms: Iterable[str]) -> None:
        with self._sids_lock:
            self._sids[sid] = tuple(rooms)

    def forget(self, sid: str) -> None:
        with self._sids_lock:
            self._sids.pop(sid, None)

    def ensure_started(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self._task = self.socketio.start_background_task(self.run)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop for good (the process ends): before its Redis goes, so that nothing retries."""
        self.stop.set()
        task = self._task
        if task is not None and hasattr(task, "join"):
            task.join(timeout)

    def _rooms(self) -> dict[str, list[str]]:
        """Room → the open sockets watched in it."""
        with self._sids_lock:
            sockets = list(self._sids.items())
        rooms: dict[str, list[str]] = {}
        for sid, names in sockets:
            for room in names:
                rooms.setdefault(room, []).append(sid)
        return rooms

    def check(self) -> int:
        """Disconnect every socket whose principal is no longer valid; return how many."""
        rooms = self._rooms()
        watched = [r for r in rooms if r.startswith(("principal:", "session:"))]
        if not watched:
            return 0
        cut = 0
        sessions = [r.split(":", 1)[1] for r in watched if r.startswith("session:")]
        with self.rt.db.read() as session:
            alive = live_sessions(session, ids=sessions, now=self.rt.now())
            invalid = [
                r
                for r in watched
                if (
                    r.split(":", 1)[1] not in alive
                    if r.startswith("session:")
                    else not room_still_valid(session, r)
                )
            ]
        for room in invalid:
            for sid in rooms[room]:
                log.info("socket %s cut off: its principal was revoked or disabled", sid)
                self.socketio.server.disconnect(sid, namespace=self.namespace)
                cut += 1
        return cut

    def connected(self) -> int:
        with self._sids_lock:
            return len(self._sids)

    def report_clients(self) -> None:
        record = json.dumps({"n": self.connected(), "at": int(time.time() * 1000)})
        self.rt.redis.hset(self.rt.keys.web_clients, self.instance, record)

    def _idle_exit(self) -> bool:
        """Stop when no socket is left (the next connection starts the guard again)."""
        with self._lock:
            if self.connected() or not self._started:
                return False
            self._started = False
            return True

    def run(self) -> None:
        backoff = 0.5
        recheck = self.rt.settings.socket_recheck_s
        idle_since: float | None = None
        done = False
        while not (done or self.stop.is_set()):
            pubsub = None
            try:
                pubsub = self.rt.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.rt.keys.revocations)
                next_check = 0.0
                next_report = 0.0
                while not (done or self.stop.is_set()):
                    message = pubsub.get_message(timeout=0.5)
                    now = time.monotonic()
                    if message is not None or now >= next_check:
                        self.check()
                        next_check = now + recheck
                    if now >= next_report:
                        self.report_clients()
                        next_report = now + min(5.0, recheck)
                    backoff = 0.5
                    idle_since = (idle_since or now) if not self.connected() else None
                    if idle_since is not None and now - idle_since > 5 and self._idle_exit():
                        done = True
            except Exception as exc:  # Redis or the database away: never die, retry
                log.warning("socket guard paused (%s); retrying in %.1f s", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: S110 - closing a broken connection
                        pass
        try:
            self.rt.redis.hdel(self.rt.keys.web_clients, self.instance)
        except Exception:  # noqa: S110 - Redis away: the record goes stale and is ignored
            pass
