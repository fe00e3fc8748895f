"""PostgreSQL unreachable for a while (a TCP proxy between the worker and the server is cut,
dropping live connections too): the worker acknowledges nothing, retries with backoff, and
catches up when the database is back. Needs TEST_DATABASE_URL (PostgreSQL)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from fault_procs import Proc, env_for, start
from helpers import wait_for
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dashboard.models import Case
from dashboard.runtime import Runtime
from dashboard.streams import Producer

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (PostgreSQL)"
    ),
]


class Proxy:
    """A TCP relay that can be cut (listener closed, every connection reset) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


def count(rt: Runtime) -> int:
    with rt.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def pending(rt: Runtime) -> int:
    return int(rt.redis.xpending(rt.keys.incidents, "lianqin")["pending"])


def test_postgresql_outage_pauses_acks_then_catches_up(
    runtime: Runtime, producer: Producer, procs: list[Proc], tmp_path: Path
) -> None:
    url = make_url(runtime.settings.effective_database_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = runtime.settings.model_copy(update={"database_url": via_proxy})
    worker = start(procs, tmp_path, "worker", ["worker", "--name", "pgw"], env_for(settings))
    try:
        for i in range(10):
            producer.incident(id=f"PG-{i}", status="reported", ts=int(time.time() * 1000) - 500,
                              lat=29.37, lon=106.26, category="dispute")  # fmt: skip
        wait_for(lambda: count(runtime) == 10, timeout=60)
        proxy.down()
        for i in range(10, 50):
            producer.incident(id=f"PG-{i}", status="reported", ts=int(time.time() * 1000) - 500,
                              lat=29.37, lon=106.26, category="dispute")  # fmt: skip
        wait_for(lambda: "worker paused" in worker.output(), timeout=60, message="backing off")
        time.sleep(1.0)
        assert count(runtime) == 10  # nothing applied …
        assert runtime.redis.hget(runtime.keys.metrics, "ingested:incidents") == b"10"  # … or acked
        proxy.up()
        wait_for(lambda: count(runtime) == 50, timeout=90, message="caught up")
        wait_for(lambda: pending(runtime) == 0, timeout=30)
        assert runtime.redis.xlen(runtime.keys.dead) == 0
    finally:
        proxy.down()
