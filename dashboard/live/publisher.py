"""The publisher: emits deltas, KPI summaries and ticks to every browser of every web instance
through Socket.IO's Redis message queue (no Flask: the worker publishes)."""

from __future__ import annotations

import time
from typing import Any

import socketio as socketio_lib

from dashboard.live.deltas import Head
from dashboard.streams import Keys

NAMESPACE = "/live"


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
