"""Many screens at once: N walls open together on a city-scale state while deltas flow.

    .venv/bin/python -m bench.screens        # 50 screens, 10,000 units, 50,000 cases
    .venv/bin/python -m bench.screens --screens 5 --units 50 --cases 200 --duration 5

Twenty screens opening at 08:00 is a normal morning. The web instance (gunicorn, as
deployed) holds ``--units`` units and ``--cases`` cases; a producer sends ``--ping-rate``
pings/s and ``--case-rate`` case events/s through a ``lianqin worker``, so numbered deltas
are published all along. ``--screens`` Socket.IO clients (python-socketio, spread over
``--procs`` processes so that the harness is not one GIL) then connect at the same moment
and behave as ``assets/lianqin-live.js`` does: ``sync`` with their cursor, load the
snapshot (inline in the acknowledgement, or fetched over HTTP from the URL the
acknowledgement names — whichever the server under test answers), buffer the deltas that
arrive meanwhile, apply them in sequence, catch up from the delta log after a gap, and
reconnect after a drop as the client does (``--client new``: full jitter, 0.5 s doubling to
30 s, for reconnects and failed syncs, and a 30 s wait for a sync's answer; ``--client
old``: the previous script's 0.5–5 s reconnects with Socket.IO's ±50 %, a failed sync
retried after 2 s, a 15 s wait).

For ``--duration`` seconds from the common start it counts, over every screen:
disconnects, deltas *missed* (from the first delta pushed to a screen on, those never pushed
to it: lost to a drop or a stalled socket), the deltas a screen caught up from the log
instead (those between its snapshot and its first push), the push latency of every delta
received (``at`` of the delta, the time its log entry was written, to its arrival: same
machine, same clock), the time from the start to *live* (snapshot loaded and in sequence),
the snapshots the server built (its ``snapshot:builds`` counter; for a server without one,
every snapshot it answered was a build of its own), the bytes the screens received (the
text of every Socket.IO message, and the snapshots' HTTP bodies as sent) and the web
process's CPU time. Then the producer stops
and every screen must reach the final sequence number with nothing lost.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import multiprocessing
import random
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Proc,
    backend,
    banner,
    create_cases,
    dump,
    make_token,
    seed_units,
    start_web,
    start_worker,
    summary,
    tree_cpu_seconds,
    wait_metric,
)
from bench.e2e import Load

NAMESPACE = "/live"


class CountingJson:
    """The JSON module of the process's Socket.IO clients, counting the text it decodes: the
    bytes of every Socket.IO message received (deltas, ticks, acknowledgements)."""

    received = 0
    lock = threading.Lock()

    @staticmethod
    def dumps(*args: Any, **kwargs: Any) -> str:
        return json.dumps(*args, **kwargs)

    @classmethod
    def loads(cls, text: str | bytes, *args: Any, **kwargs: Any) -> Any:
        with cls.lock:
            cls.received += len(text)
        return json.loads(text, *args, **kwargs)


class Backoff:
    """The browser client's reconnect and resync delays (``assets/lianqin-live.js``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.attempts = 0

    def next(self) -> float:
        n = min(self.attempts, 32)
        self.attempts += 1
        if self.kind == "new":  # full jitter: uniform in [0, min(30 s, 0.5 s * 2^n)]
            return random.uniform(0, min(30.0, 0.5 * 2**n))
        if self.kind == "old-retry":  # the previous script retried a failed sync after 2 s
            return 2.0
        base = min(5.0, 0.5 * 2**n)  # its reconnects: Socket.IO's randomization (±50 %)
        return base * random.uniform(0.5, 1.5)

    def reset(self) -> None:
        self.attempts = 0


class Screen:
    """One wall: the protocol of ``assets/lianqin-live.js`` on a python-socketio client."""

    def __init__(self, url: str, token: str, client: str) -> None:
        import socketio

        self.url = url
        self.token = token
        self.sync_timeout = 30.0 if client == "new" else 15.0
        self.sio = socketio.Client(reconnection=False, json=CountingJson)
        self.lock = threading.Lock()
        self.seq: int | None = None
        self.cursor: str | None = None
        self.syncing = False
        self.pending: list[dict[str, Any]] = []
        self.pushed: set[int] = set()
        self.applied: list[int] = []  # since the last snapshot, in order
        self.snapshot_seqs: list[int] = []
        self.latencies: list[float] = []
        self.disconnects = 0
        self.connect_failures = 0
        self.sync_failures = 0
        self.resyncs = 0
        self.inline_snapshots = 0
        self.snapshot_asks = 0  # syncs without a cursor: an old server built one for each
        self.http_snapshots = 0
        self.http_bytes = 0
        self.snapshot_size = (0, 0)  # the last one fetched: JSON and wire bytes
        self.started = 0.0
        self.live_at: float | None = None
        self.behind_since: float | None = None
        self.errors: list[str] = []
        self.closing = False
        self.reconnect = Backoff("new" if client == "new" else "old")
        self.retry = Backoff("new" if client == "new" else "old-retry")
        self.wake = threading.Event()
        self.fresh = False
        self.sio.on("connect", self._on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        self.sio.on("delta", self._on_delta, namespace=NAMESPACE)
        self.sio.on("tick", self._on_tick, namespace=NAMESPACE)
        self.thread = threading.Thread(target=self._run, daemon=True)

    # -- connection (the browser's Socket.IO reconnection, with its backoff) ---------------
    def start(self) -> None:
        self.started = time.time()
        self.thread.start()

    def _connect(self) -> None:
        while not self.closing:
            try:
                self.sio.connect(
                    self.url,
                    namespaces=[NAMESPACE],
                    transports=["websocket"],
                    auth={"token": self.token},
                    wait_timeout=20,  # the browser client's connect timeout
                )
                self.reconnect.reset()
                return
            except Exception:  # any failure: retry as the browser does
                self.connect_failures += 1
                with contextlib.suppress(Exception):
                    self.sio.disconnect()
                time.sleep(self.reconnect.next())

    def _on_connect(self) -> None:
        self.wake.set()  # sync with the cursor (a thread of ours: never block the reader)

    def _on_disconnect(self, *_: Any) -> None:
        with self.lock:
            self.disconnects += 0 if self.closing else 1
            self.syncing = False
        self.wake.set()

    def _run(self) -> None:
        self._connect()
        while not self.closing:
            self.wake.wait(0.5)
            self.wake.clear()
            if self.closing:
                return
            if not self.sio.connected:
                time.sleep(self.reconnect.next())
                self._connect()
                continue
            with self.lock:
                due = (
                    self.seq is None
                    or self.fresh
                    or bool(self.pending and not self.syncing)
                    or (self.behind_since is not None and time.time() - self.behind_since > 1.5)
                )
            if due:
                self._sync()

    # -- the live protocol -----------------------------------------------------------------
    def _sync(self) -> None:
        with self.lock:
            if self.syncing:
                return
            self.syncing = True
            self.resyncs += 1
            self.behind_since = None
            fresh, self.fresh = self.fresh, False
            ask = {"cursor": self.cursor, "seq": self.seq}
            if fresh:
                ask = {"cursor": None, "seq": None}
            if ask["cursor"] is None:
                self.snapshot_asks += 1
        try:
            reply = self.sio.call("sync", ask, namespace=NAMESPACE, timeout=self.sync_timeout)
            if not isinstance(reply, dict) or reply.get("mode") not in ("snapshot", "catchup"):
                raise RuntimeError(f"sync answered {str(reply)[:80]}")
            if reply["mode"] == "snapshot":
                snap = reply if "cases" in reply else self._fetch(reply)
                with self.lock:
                    if "cases" in reply:
                        self.inline_snapshots += 1
                    self.seq, self.cursor = int(snap["seq"]), snap["cursor"]
                    self.snapshot_seqs.append(self.seq)
                    self.applied = []
            else:
                with self.lock:
                    for m in reply["deltas"]:
                        if self.seq is not None and m["seq"] == self.seq + 1:
                            self._apply(m)
        except Exception as exc:  # a failed sync is retried with backoff
            with self.lock:
                self.syncing = False
                self.sync_failures += 1
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            time.sleep(self.retry.next())
            self.wake.set()
            return
        self.retry.reset()
        with self.lock:
            self.syncing = False
            self._flush()

    def _fetch(self, reply: dict[str, Any]) -> dict[str, Any]:
        import requests

        with requests.get(
            self.url + reply["url"],
            headers={"Authorization": f"Bearer {self.token}", "Accept-Encoding": "gzip"},
            stream=True,
            timeout=self.sync_timeout,
        ) as resp:
            resp.raise_for_status()
            raw = resp.raw.read(decode_content=False)
            encoding = resp.headers.get("Content-Encoding", "")
        text = gzip.decompress(raw) if encoding == "gzip" else raw
        self.http_bytes += len(raw)
        self.http_snapshots += 1
        self.snapshot_size = (len(text), len(raw))
        snap: dict[str, Any] = json.loads(text)
        return snap

    def _apply(self, m: dict[str, Any]) -> None:
        self.seq, self.cursor = int(m["seq"]), m["cursor"]
        self.applied.append(self.seq)

    def _flush(self) -> None:
        """``flushPending``: apply the buffered deltas in order, or ask for a catch-up."""
        pending = sorted(self.pending, key=lambda m: m["seq"])
        self.pending = []
        for i, m in enumerate(pending):
            if self.seq is not None and m["seq"] <= self.seq:
                continue
            if self.seq is None or m["seq"] == self.seq + 1:
                self._apply(m)
            else:
                self.pending = pending[i:]
                self.wake.set()
                return
        if self.live_at is None and self.seq is not None:
            self.live_at = time.time()

    def _on_delta(self, msg: dict[str, Any]) -> None:
        now = time.time() * 1000
        with self.lock:
            self.pushed.add(int(msg["seq"]))
            self.latencies.append(now - int(msg["at"]))
            if self.syncing or self.seq is None:
                self.pending.append(msg)
                return
            if msg["seq"] <= self.seq:
                return
            if msg["seq"] != self.seq + 1:
                self.pending.append(msg)
                self.wake.set()
                return
            self._apply(msg)

    def _on_tick(self, tick: dict[str, Any]) -> None:
        with self.lock:
            if self.syncing or self.seq is None or tick.get("degraded"):
                return
            if tick["seq"] < self.seq:
                self.fresh = True  # a new epoch
                self.pending = []
                self.wake.set()
            elif tick["seq"] > self.seq:
                if self.behind_since is None:
                    self.behind_since = time.time()
                self.wake.set()
            else:
                self.behind_since = None

    def close(self) -> None:
        self.closing = True
        self.wake.set()
        with contextlib.suppress(Exception):
            self.sio.disconnect()

    def result(self, final: int, seq0: int) -> dict[str, Any]:
        """``seq0``: the head when the screens started to open."""
        with self.lock:
            last = self.snapshot_seqs[-1] if self.snapshot_seqs else None
            start = min(self.pushed, default=final + 1)
            missed = sum(1 for s in range(max(start, seq0 + 1), final + 1) if s not in self.pushed)
            from_log = sum(1 for s in self.applied if s not in self.pushed)
            seq = self.seq if self.seq is not None else -1
            contiguous = last is not None and self.applied == list(range(last + 1, seq + 1))
            return {
                "live_s": (self.live_at - self.started) if self.live_at else None,
                "disconnects": self.disconnects,
                "connect_failures": self.connect_failures,
                "sync_failures": self.sync_failures,
                "resyncs": self.resyncs,
                "snapshots": len(self.snapshot_seqs),
                "inline_snapshots": self.inline_snapshots,
                "snapshot_asks": self.snapshot_asks,
                "http_snapshots": self.http_snapshots,
                "http_bytes": self.http_bytes,
                "snapshot_size": self.snapshot_size,
                "missed": missed,
                "from_log": from_log,
                "final_seq": self.seq,
                "complete": seq >= final and contiguous,
                "latencies": self.latencies,
                "errors": self.errors[:3],
                "socket_bytes": 0,
            }


def run_screens(job: dict[str, Any]) -> list[dict[str, Any]]:
    """One process of screens: start together at ``start_at``, report after the final seq."""
    import redis

    screens = [Screen(job["url"], job["token"], job["client"]) for _ in range(job["count"])]
    time.sleep(max(0.0, job["start_at"] - time.time()))
    for s in screens:
        s.start()
    client = redis.Redis.from_url(job["redis_url"])
    try:
        while (raw := client.get(job["final_key"])) is None:
            time.sleep(0.1)
        final = int(raw)
        deadline = time.monotonic() + job["settle_s"]
        while time.monotonic() < deadline and not all(
            s.seq is not None and s.seq >= final and not s.pending for s in screens
        ):
            for s in screens:
                if s.seq is not None and s.seq < final:
                    s.wake.set()
            time.sleep(0.1)
        results = [s.result(final, job["seq0"]) for s in screens]
        if results:
            results[0]["socket_bytes"] = CountingJson.received  # the whole process's
        return results
    finally:
        client.close()
        for s in screens:
            s.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screens", type=int, default=50)
    parser.add_argument("--procs", type=int, default=5, help="client processes")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of deltas")
    parser.add_argument("--ping-rate", type=float, default=200.0)
    parser.add_argument("--case-rate", type=float, default=10.0)
    parser.add_argument(
        "--client", choices=["new", "old"], default="new", help="the wall script to mimic"
    )
    parser.add_argument("--settle", type=float, default=120.0, help="s to reach the final seq")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    banner(
        "screens: many walls open at once on a city-scale state while deltas flow",
        screens=f"{args.screens} over {args.procs} processes (client: {args.client})",
        units=args.units,
        cases=args.cases,
        deltas=f"{args.ping_rate:g} pings/s + {args.case_rate:g} case events/s "
        f"for {args.duration:g} s",
    )
    out: dict[str, Any] = {}
    with backend(args.db, redis_url=args.redis_url, pg_url=args.pg_url) as b:
        log_dir = b.data_dir.parent / "logs"
        unit_ids = seed_units(b, args.units)
        worker = start_worker(b, log_dir)
        web: Proc | None = None
        client = b.redis()
        try:
            case_ids = create_cases(b, args.cases)
            token = make_token(b)
            web, url = start_web(b, log_dir)
            metrics = f"{b.prefix}:metrics"
            load = Load(b, unit_ids, case_ids, args.ping_rate, args.case_rate)
            stop = threading.Event()
            producer = threading.Thread(
                target=load.run, args=(args.duration + 3, stop), daemon=True
            )
            producer.start()
            time.sleep(2.0)  # deltas are flowing before the screens open
            seq0 = int(client.get(f"{b.prefix}:deltas:seq") or 0)
            builds0 = int(client.hget(metrics, "snapshot:builds") or 0)
            cpu0 = tree_cpu_seconds(web.pid)
            start_at = time.time() + 3.0  # every process's clients are ready by then
            final_key = f"{b.prefix}:bench:final"
            share, extra = divmod(args.screens, args.procs)
            per = [share + (i < extra) for i in range(args.procs)]
            jobs = [
                {
                    "url": url,
                    "token": token,
                    "count": n,
                    "client": args.client,
                    "seq0": seq0,
                    "start_at": start_at,
                    "redis_url": b.redis_url,
                    "final_key": final_key,
                    "settle_s": args.settle,
                }
                for n in per
                if n
            ]
            pool = multiprocessing.get_context("spawn").Pool(len(jobs))
            pending = pool.map_async(run_screens, jobs)
            time.sleep(max(0.0, start_at + args.duration - time.time()))
            cpu1 = tree_cpu_seconds(web.pid)
            stop.set()
            producer.join()
            wait_metric(client, b.prefix, "pings", load.sent_pings, timeout=120)
            wait_metric(client, b.prefix, "incidents", args.cases + load.sent_cases, timeout=120)
            time.sleep(1.0)  # the last batch's delta
            final = int(client.get(f"{b.prefix}:deltas:seq") or 0)
            client.set(final_key, final)
            results = [r for chunk in pending.get(timeout=args.settle + 120) for r in chunk]
            # Read once every screen is done: on a loaded machine a screen may open (and
            # have its snapshot built) after the load's last second.
            builds1 = int(client.hget(metrics, "snapshot:builds") or 0)
            pool.close()
            pool.join()
        finally:
            client.close()
            if web is not None:
                web.stop()
            worker.stop()
    n = len(results)
    live = [r["live_s"] for r in results if r["live_s"] is not None]
    latencies = [v for r in results for v in r["latencies"]]
    asks = sum(r["snapshot_asks"] for r in results)
    # A server without the counter (before the shared snapshot) built one per sync that
    # asked without a cursor, answered in time or not.
    counted = builds1 - builds0 > 0 or any(r["http_snapshots"] for r in results)
    builds = builds1 - builds0 if counted else asks
    out = {
        "screens": n,
        "deltas_published": final - seq0,
        "disconnects": sum(r["disconnects"] for r in results),
        "connect_failures": sum(r["connect_failures"] for r in results),
        "sync_failures": sum(r["sync_failures"] for r in results),
        "screens_missing_deltas": sum(1 for r in results if r["missed"]),
        "missed_deltas": sum(r["missed"] for r in results),
        "caught_up_from_log": sum(r["from_log"] for r in results),
        "screens_caught_up": sum(1 for r in results if r["from_log"]),
        "complete": sum(1 for r in results if r["complete"]),
        "live": len(live),
        "live_s": summary(live),
        "delta_latency_ms": summary(latencies),
        "snapshots_loaded": sum(r["snapshots"] for r in results),
        "snapshot_builds": builds,
        "snapshot_builds_counted": counted,
        "http_snapshot_bytes": sum(r["http_bytes"] for r in results),
        "snapshot_json_bytes": max(r["snapshot_size"][0] for r in results),
        "snapshot_wire_bytes": max(r["snapshot_size"][1] for r in results),
        "socket_bytes": sum(r["socket_bytes"] for r in results),
        "web_cpu_s": cpu1 - cpu0,
        "errors": sorted({e for r in results for e in r["errors"]})[:5],
    }
    lat, lv = out["delta_latency_ms"], out["live_s"]
    print(
        f"-- {n} screens opened at once ({args.units:,} units, {args.cases:,} cases, "
        f"{out['deltas_published']} deltas published in {args.duration:g} s):"
    )
    print(
        f"   live: {out['live']} of {n}, time to live p50 {lv['p50']:.1f} s, max {lv['max']:.1f} s"
        f" | disconnects {out['disconnects']} (+{out['connect_failures']} failed connects,"
        f" {out['sync_failures']} failed syncs)"
    )
    print(
        f"   missed deltas: {out['missed_deltas']} on {out['screens_missing_deltas']} of {n} "
        f"screens | caught up from the log after the snapshot: {out['caught_up_from_log']} on "
        f"{out['screens_caught_up']} | delta push latency p50 {lat['p50']:,.0f} ms, "
        f"p99 {lat['p99']:,.0f} ms"
    )
    print(
        f"   snapshots: {out['snapshot_builds']} "
        f"{'built' if counted else 'asked for (no build counter: each one built on its own)'},"
        f" {out['snapshots_loaded']} loaded | bytes to the screens: Socket.IO "
        f"{out['socket_bytes'] / 1e6:,.1f} MB, snapshots over HTTP "
        f"{out['http_snapshot_bytes'] / 1e6:,.1f} MB (one: {out['snapshot_json_bytes'] / 1e6:,.1f} "
        f"MB of JSON, {out['snapshot_wire_bytes'] / 1e6:,.1f} MB sent) | web CPU "
        f"{out['web_cpu_s']:.1f} s"
    )
    print(
        f"   at the end: {out['complete']} of {n} screens hold every delta up to seq {final}, "
        f"in sequence after their snapshot | nothing lost: {out['complete'] == n}"
    )
    if out["errors"]:
        print(f"   errors: {out['errors']}")
    dump(args.json, out)
    return out


if __name__ == "__main__":
    main()
