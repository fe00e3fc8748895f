"""The Socket.IO namespace ``/live`` (``LiveNamespace``) and the snapshot over HTTP
(``GET /live/snapshot``): the web side of the live path (the protocol: dashboard/live/__init__.py).
"""

from __future__ import annotations

import gzip
import logging
import re
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from flask_socketio import Namespace
from sqlalchemy.exc import DBAPIError

from dashboard.live.publisher import NAMESPACE
from dashboard.live.snapshot import SNAPSHOT_PATH, SnapshotStore, handle_sync
from dashboard.runtime import Runtime
from dashboard.services.accounts import Principal, token_principal
from dashboard.web.auth import current_principal, current_session_id
from dashboard.web.context import current_runtime, current_snapshots
from dashboard.web.security import SocketGuard, principal_room, session_room

log = logging.getLogger(__name__)
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (not "٢")
_SEQ_RE = re.compile(r"[0-9]{1,18}")
_CURSOR_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


class LiveNamespace(Namespace):
    """``/live``: who may connect, and the ``sync`` answer. Every accepted socket is handed to
    the process's ``SocketGuard`` with the rooms it is watched under (its principal, its
    browser session), and taken back when it disconnects: the guard counts and cuts off the
    sockets it was told about, never reading the Socket.IO manager's own bookkeeping."""

    def __init__(self, runtime: Runtime, store: SnapshotStore, guard: SocketGuard) -> None:
        super().__init__(NAMESPACE)
        self.runtime = runtime
        self.store = store
        self.guard = guard

    def on_connect(self, auth: Any = None) -> bool:
        """Only a signed-in session or a valid token may listen (refused otherwise)."""
        principal, session_id = _socket_principal(self.runtime, auth)
        if principal is None or not principal.can("view_wall"):
            raise ConnectionRefusedError("authentication required")
        rooms = [principal_room(principal)]  # re-checked on every revocation
        if session_id is not None:
            rooms.append(session_room(session_id))  # cut off when this session ends
        self.guard.track(_sid(), rooms)
        self.guard.ensure_started()
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        self.guard.forget(_sid())

    def on_sync(self, data: Any = None) -> dict[str, Any]:
        try:
            return handle_sync(self.runtime, self.store, data)
        except (redis.RedisError, OSError, DBAPIError) as exc:
            log.warning("sync failed: %s", exc)
            return {"mode": "error", "error": "the live state is unavailable, retrying"}


def _sid() -> str:
    sid: str = request.sid  # type: ignore[attr-defined]  # set by Flask-SocketIO per event
    return sid


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
    principal = current_principal()
    if principal is None or not principal.can("view_wall"):
        return jsonify({"error": "the live state is for principals who may see the wall"}), 403
    runtime = current_runtime()
    store = current_snapshots()
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
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is not None:
        if not isinstance(token, str):
            return None, None
        with runtime.db.read() as session:
            return token_principal(session, plaintext=token), None
    return current_principal(), current_session_id()
