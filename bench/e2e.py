"""End to end: from XADD to the change painted in headless Chromium, against the Dash peer.

    .venv/bin/python -m bench.e2e                      # Lianqin, then the peer at 1 s and 200 ms
    .venv/bin/python -m bench.e2e --duration 10 --units 1000 --cases 2000 --peers none

The map holds ``--units`` units and ``--cases`` case dots. A producer thread XADDs
``--ping-rate`` pings/s and ``--case-rate`` case events/s, each stamped with the time of
its XADD (a ping's ``ts``; a case event's title ``bench:<ms>``). Real processes: a
``lianqin worker`` and the web instance under gunicorn, exactly as deployed. In the page,
a hook on the live map's "painted" event (the frame after a delta was applied) takes
``Date.now() - XADD time`` for every unit and case of the delta: the same clock, since
browser and producer share the machine. No update dropped: the page's delta sequence
must advance one by one with no resync, and every unit must end at the last ping sent.

The peer (bench/peers/dash_interval.py: dcc.Interval polling the database, the pattern of
Dash's documentation) runs next on the same load, at 1 s and at 200 ms. For each run:
latency percentiles, server CPU per second (web process, worker) and bytes per second
received by the page (HTTP + WebSocket, from Chromium's DevTools protocol).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.common import (
    CASE_FLOW,
    DEFAULT_PG,
    DEFAULT_REDIS,
    Backend,
    NetMeter,
    Proc,
    backend,
    banner,
    create_cases,
    dump,
    free_port,
    gunicorn,
    launch_browser,
    make_token,
    seed_units,
    spot,
    start_web,
    start_worker,
    summary,
    tree_cpu_seconds,
    wait_http,
)

HOOK = """
(() => {
  const b = (window.__bench = { units: [], cases: [], start: Date.now(), deltas: 0, seqs: [],
    worker: [], push: [] });
  lq.live.on("painted", (e) => {
    b.deltas += 1;
    b.seqs.push(e.seq);
    const now = e.painted;
    for (const u of e.body.units || []) {
      if (u.ts < b.start) continue;
      b.units.push(now - u.ts);
      b.worker.push(e.at - u.ts);
      b.push.push(now - e.at);
    }
    for (const c of e.body.cases || []) {
      const m = /^bench:(\\d+)$/.exec(c.title || "");
      if (m && +m[1] >= b.start) b.cases.push(now - +m[1]);
    }
  });
  return b.start;
})()
"""


class Load:
    """A producer at fixed rates; every entry stamped with its XADD time."""

    def __init__(
        self,
        b: Backend,
        units: list[str],
        cases: list[str],
        ping_rate: float,
        case_rate: float,
        *,
        maxlen: int | None = None,
    ) -> None:
        self.b = b
        self.maxlen = maxlen  # producers' MAXLEN ~ (None: unbounded, fine for short runs)
        self.units = units
        self.cases = cases
        self.ping_rate = ping_rate
        self.case_rate = case_rate
        self.last_ts: dict[str, int] = {}
        # The stage each case is in, as create_cases made them.
        self.step = {
            cid: (n // 100 % 3 if n % 100 == 0 else 3 + n % 2) for n, cid in enumerate(cases)
        }
        self.sent_pings = 0
        self.sent_cases = 0
        self._u = 0
        self._c = 0

    def run(self, duration: float, stop: threading.Event | None = None) -> None:
        client = self.b.redis()
        pings_key = f"{self.b.prefix}:pings"
        inc_key = f"{self.b.prefix}:incidents"
        tick = 0.01
        pings0, cases0 = self.sent_pings, self.sent_cases  # the totals span several runs
        started = time.monotonic()
        try:
            while time.monotonic() - started < duration and not (stop and stop.is_set()):
                elapsed = time.monotonic() - started
                due_p = int(elapsed * self.ping_rate) - (self.sent_pings - pings0)
                due_c = int(elapsed * self.case_rate) - (self.sent_cases - cases0)
                if due_p > 0 or due_c > 0:
                    pipe = client.pipeline(transaction=False)
                    bound = {"maxlen": self.maxlen, "approximate": True} if self.maxlen else {}
                    now_ms = int(time.time() * 1000)
                    for _ in range(max(0, due_p)):
                        unit = self.units[self._u % len(self.units)]
                        ts = max(now_ms, self.last_ts.get(unit, 0) + 1)
                        lat, lon = spot(self._u * 31 + 7)
                        pipe.xadd(
                            pings_key,
                            {
                                "unit": unit,
                                "lat": f"{lat:.6f}",
                                "lon": f"{lon:.6f}",
                                "ts": str(ts),
                                "heading": str(self._u % 360),
                            },
                            **bound,
                        )
                        self.last_ts[unit] = ts
                        self._u += 1
                    for _ in range(max(0, due_c)):
                        cid = self._next_case()
                        if cid is None:
                            break
                        status = CASE_FLOW[self.step[cid]]
                        pipe.xadd(
                            inc_key,
                            {
                                "id": cid,
                                "status": status,
                                "ts": str(now_ms),
                                "title": f"bench:{now_ms}",
                            },
                            **bound,
                        )
                    pipe.execute()
                    self.sent_pings += max(0, due_p)
                    self.sent_cases += max(0, due_c)
                time.sleep(tick)
        finally:
            client.close()

    def _next_case(self) -> str | None:
        for _ in range(len(self.cases)):
            cid = self.cases[self._c % len(self.cases)]
            self._c += 1
            if self.step[cid] < len(CASE_FLOW) - 1:
                self.step[cid] += 1
                return cid
        return None


def _run_load(page: Any, load: Load, duration: float) -> None:
    """Produce for ``duration`` s while the page keeps pumping (CDP events, hooks)."""
    stop = threading.Event()
    thread = threading.Thread(target=load.run, args=(duration, stop), daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            page.wait_for_timeout(250)
    finally:
        stop.set()
        thread.join()


def _window(
    page: Any, load: Load, duration: float, pids: dict[str, int], net: NetMeter
) -> dict[str, Any]:
    cpu0 = {k: tree_cpu_seconds(p) for k, p in pids.items()}
    bytes0 = (net.http, net.ws)
    mt0 = net.main_thread()
    t0 = time.monotonic()
    _run_load(page, load, duration)
    page.wait_for_timeout(1500)  # let the last updates arrive
    elapsed = time.monotonic() - t0
    cpu = {k: (tree_cpu_seconds(p) - cpu0[k]) / elapsed for k, p in pids.items()}
    mt1 = net.main_thread()
    return {
        "seconds": elapsed,
        "cpu_per_s": cpu,
        "http_bytes_per_s": (net.http - bytes0[0]) / elapsed,
        "ws_bytes_per_s": (net.ws - bytes0[1]) / elapsed,
        "bytes_per_s": (net.http + net.ws - sum(bytes0)) / elapsed,
        "main_thread_per_s": {k: (mt1[k] - mt0.get(k, 0)) / elapsed for k in mt1},
    }


def measure_lianqin(
    context: Any,
    url: str,
    token: str,
    load: Load,
    args: argparse.Namespace,
    pids: dict[str, int],
    b: Backend,
) -> dict[str, Any]:
    page = context.new_page()
    net = NetMeter(context, page)
    page.goto(f"{url}/wall?token={token}", timeout=120_000)
    page.wait_for_function(
        f"window.lianqin && window.lianqin.seq !== null && "
        f"Object.keys(window.lianqin.cases).length >= {args.cases} && "
        f"Object.keys(window.lianqin.units).length >= {args.units}",
        timeout=180_000,
        polling=500,
    )
    page.wait_for_timeout(2000)
    page.evaluate(HOOK)
    stats0 = page.evaluate("({seq: lianqin.seq, resyncs: lq.live.stats.resyncs})")
    win = _window(page, load, args.duration, pids, net)
    bench = page.evaluate("window.__bench")
    stats1 = page.evaluate(
        "({seq: lianqin.seq, resyncs: lq.live.stats.resyncs, snapshots: lq.live.stats.snapshots,"
        " render: lianqin.render, taskMs: lq.live.stats.taskMs || []})"
    )
    client = b.redis()
    head = int(client.get(f"{b.prefix}:deltas:seq") or 0)
    client.close()
    final = page.evaluate(
        "(ids) => ids.map((id) => (lianqin.units[id] || {}).ts || 0)", list(load.last_ts)
    )
    behind = sum(1 for got, want in zip(final, load.last_ts.values(), strict=True) if got != want)
    seqs = bench["seqs"]
    in_order = all(b2 == a + 1 for a, b2 in itertools.pairwise(seqs))
    in_order = in_order and (not seqs or seqs[0] == stats0["seq"] + 1)
    page.close()
    return {
        **win,
        "unit_latency_ms": summary(bench["units"]),
        "case_latency_ms": summary(bench["cases"]),
        "latency_ms": summary(bench["units"] + bench["cases"]),
        # A unit's latency in two parts: XADD → delta appended (worker: read, validate,
        # apply, commit, Redis), and delta appended → painted (publish, web, browser).
        "xadd_to_delta_ms": summary(bench["worker"]),
        "delta_to_paint_ms": summary(bench["push"]),
        "deltas": bench["deltas"],
        "delta_task_ms": summary(stats1["taskMs"][-bench["deltas"] :] if bench["deltas"] else []),
        "seq_start": stats0["seq"],
        "seq_end": stats1["seq"],
        "server_seq": head,
        "deltas_in_order": in_order,
        "caught_up": stats1["seq"] == head,
        "resyncs_during_run": stats1["resyncs"] - stats0["resyncs"],
        "units_not_at_last_ping": behind,
        "render": stats1["render"],
    }


def measure_peer(
    context: Any,
    b: Backend,
    interval: int,
    load: Load,
    args: argparse.Namespace,
    worker: Proc,
    log_dir: Path,
) -> dict[str, Any]:
    port = free_port()
    proc = Proc(
        f"peer-{interval}",
        gunicorn(port, "bench.peers.dash_interval:server", threads=8),
        b.env(PEER_INTERVAL_MS=str(interval)),
        log_dir,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/", proc=proc)
        page = context.new_page()
        net = NetMeter(context, page)
        page.goto(url, timeout=120_000)
        try:
            page.wait_for_function(
                "window.__bench && window.__bench.updates >= 2", timeout=args.peer_timeout * 1000
            )
        except PlaywrightTimeout:
            # At city scale the polling peer may never get its map drawn: that is a result.
            updates = page.evaluate("window.__bench ? window.__bench.updates : 0")
            page.close()
            return {
                "failed": f"the map was updated {updates} time(s) in {args.peer_timeout:g} s "
                "after the page opened: the peer cannot keep up at this size"
            }
        page.wait_for_timeout(2000)
        page.evaluate("window.__bench.start = Date.now(); window.__bench.updates = 0")
        win = _window(page, load, args.duration, {"web": proc.pid, "worker": worker.pid}, net)
        bench = page.evaluate("window.__bench")
        page.close()
    finally:
        proc.stop()
    return {
        **win,
        "unit_latency_ms": summary(bench["units"]),
        "case_latency_ms": summary(bench["cases"]),
        "latency_ms": summary(bench["units"] + bench["cases"]),
        "map_updates": bench["updates"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per run")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--ping-rate", type=float, default=1000.0)
    parser.add_argument("--case-rate", type=float, default=10.0)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--peers", default="1000,200", help="peer intervals in ms, or 'none'")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument(
        "--peer-timeout", type=float, default=180.0, help="seconds for a peer's first maps"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    peers = [] if args.peers == "none" else [int(x) for x in args.peers.split(",")]
    banner(
        "end to end: XADD → painted in headless Chromium (same clock), Lianqin vs the Dash peer",
        units=args.units,
        cases=args.cases,
        load=f"{args.ping_rate:g} pings/s + {args.case_rate:g} case events/s",
        duration=f"{args.duration:g} s per run",
        db=args.db,
        web="gunicorn -w 1 --threads 100 dashboard.wsgi:app (peer: --threads 8)",
    )
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with backend(args.db, redis_url=args.redis_url, pg_url=args.pg_url) as b:
        log_dir = b.data_dir.parent / "logs"
        units = seed_units(b, args.units)
        worker = start_worker(b, log_dir)
        web: Proc | None = None
        try:
            cases = create_cases(b, args.cases)
            token = make_token(b)
            load = Load(b, units, cases, args.ping_rate, args.case_rate)
            with sync_playwright() as pw:
                browser, context = launch_browser(pw)
                try:
                    web, url = start_web(b, log_dir)
                    results["lianqin"] = measure_lianqin(
                        context, url, token, load, args, {"web": web.pid, "worker": worker.pid}, b
                    )
                    web.stop()
                    web = None
                    for interval in peers:
                        results[f"peer_{interval}ms"] = measure_peer(
                            context, b, interval, load, args, worker, log_dir
                        )
                finally:
                    browser.close()
        finally:
            if web is not None:
                web.stop()
            worker.stop()
    report(results)
    dump(args.json, results)
    return results


def report(results: dict[str, Any]) -> None:
    lq = results["lianqin"]
    print(
        f"-- lianqin: p50 {lq['latency_ms']['p50']:.0f} ms, p90 {lq['latency_ms']['p90']:.0f} ms, "
        f"p99 {lq['latency_ms']['p99']:.0f} ms (n={lq['latency_ms']['n']}; units p50 "
        f"{lq['unit_latency_ms']['p50']:.0f} / cases p50 {lq['case_latency_ms']['p50']:.0f}) | "
        f"targets p50 ≤ 30: {lq['latency_ms']['p50'] / 30:.2f}x, p99 ≤ 100: "
        f"{lq['latency_ms']['p99'] / 100:.2f}x of the limit"
    )
    print(
        f"   deltas {lq['deltas']} ({lq['seq_start']}→{lq['seq_end']}, server {lq['server_seq']}),"
        f" in order with no gap: {lq['deltas_in_order']}, page caught up: {lq['caught_up']},"
        f" resyncs: {lq['resyncs_during_run']},"
        f" units not at their last ping: {lq['units_not_at_last_ping']}, render: {lq['render']},"
        f" main-thread per delta p50 {lq['delta_task_ms']['p50']:.1f} ms"
    )
    print(
        f"   where the time goes (units, p50/p99): XADD → delta appended "
        f"{lq['xadd_to_delta_ms']['p50']:.0f}/{lq['xadd_to_delta_ms']['p99']:.0f} ms (worker), "
        f"delta → painted {lq['delta_to_paint_ms']['p50']:.0f}/"
        f"{lq['delta_to_paint_ms']['p99']:.0f} ms (push, web, browser)"
    )
    for name, r in results.items():
        if "failed" in r:
            print(f"   {name:14s} FAILED: {r['failed']}")
            continue
        cpu = r["cpu_per_s"]
        print(
            f"   {name:14s} web CPU {cpu['web']:.3f} s/s, worker CPU {cpu['worker']:.3f} s/s, "
            f"page receives {r['bytes_per_s'] / 1024:,.1f} KiB/s, browser main thread "
            f"{r['main_thread_per_s'].get('TaskDuration', 0):.2f} s/s"
        )
    for name, r in results.items():
        if not name.startswith("peer") or "failed" in r:
            continue
        lat = r["latency_ms"]
        print(
            f"-- {name}: p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms (n={lat['n']}, "
            f"{r['map_updates']} map updates) | lianqin's p50 is "
            f"{lat['p50'] / max(lq['latency_ms']['p50'], 1e-9):.1f}x lower | web CPU ratio "
            f"peer/lianqin {r['cpu_per_s']['web'] / max(lq['cpu_per_s']['web'], 1e-9):.1f}x | "
            f"bytes ratio peer/lianqin {r['bytes_per_s'] / max(lq['bytes_per_s'], 1e-9):.1f}x"
        )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
