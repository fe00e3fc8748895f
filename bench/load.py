"""Load: page open → painted wall at city scale, and the main-thread cost of one delta there.

    .venv/bin/python -m bench.load                        # 10,000 units, 50,000 cases
    .venv/bin/python -m bench.load --units 500 --cases 2000 --opens 1 --duration 5

The wall (gunicorn, as deployed) holds ``--units`` units and ``--cases`` cases. It is
opened ``--opens`` times in a fresh browser context (cold cache each time): the time from
``page.goto`` to the frame painted after the snapshot was drawn (``performance.timeOrigin
+ lq.live.stats.snapshotPaintedAt``, same clock). Then deltas flow at the e2e load
(1,000 pings/s, 10 case events/s) and the cost of one delta is taken two ways, side by
side with an idle page of the same size: the live map's own JS time per delta
(``lq.live.stats.taskMs``: parse, apply, panels' hooks) and Chromium's main-thread time
(script + style + layout + paint, DevTools ``Performance.getMetrics``) per delta above idle.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    NetMeter,
    Proc,
    backend,
    banner,
    create_cases,
    dump,
    launch_browser,
    make_token,
    seed_units,
    start_web,
    start_worker,
    summary,
)
from bench.e2e import Load, _run_load


def open_wall(pw: Any, url: str, token: str, units: int, cases: int) -> tuple[float, Any, Any]:
    browser, context = launch_browser(pw)
    page = context.new_page()
    opened = time.time() * 1000
    page.goto(f"{url}/wall?token={token}", timeout=180_000)
    page.wait_for_function(
        "window.lq && lq.live && lq.live.stats && lq.live.stats.snapshotPaintedAt !== undefined"
        f" && Object.keys(lianqin.cases).length >= {cases}"
        f" && Object.keys(lianqin.units).length >= {units}",
        timeout=180_000,
        polling=50,
    )
    painted = page.evaluate("performance.timeOrigin + lq.live.stats.snapshotPaintedAt")
    return painted - opened, browser, (context, page)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--opens", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of deltas")
    parser.add_argument("--ping-rate", type=float, default=1000.0)
    parser.add_argument("--case-rate", type=float, default=10.0)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    banner(
        "load: open → painted wall, and one delta's main-thread cost, at city scale",
        units=args.units,
        cases=args.cases,
        opens=args.opens,
        deltas=f"{args.ping_rate:g} pings/s + {args.case_rate:g} case events/s "
        f"for {args.duration:g} s",
    )
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with backend(args.db, redis_url=args.redis_url, pg_url=args.pg_url) as b:
        log_dir = b.data_dir.parent / "logs"
        unit_ids = seed_units(b, args.units)
        worker = start_worker(b, log_dir)
        web: Proc | None = None
        try:
            case_ids = create_cases(b, args.cases)
            token = make_token(b)
            web, url = start_web(b, log_dir)
            with sync_playwright() as pw:
                opens = []
                for _ in range(args.opens):
                    ms, browser, (context, page) = open_wall(pw, url, token, args.units, args.cases)
                    opens.append(ms)
                    stats = page.evaluate(
                        "({apply: lq.live.stats.snapshotApplyMs, render: lianqin.render,"
                        " heap: performance.memory && performance.memory.usedJSHeapSize})"
                    )
                    browser.close()
                    print(
                        f"   opened and painted in {ms:,.0f} ms (snapshot applied in "
                        f"{stats['apply']:,.0f} ms, {stats['render']} dots)",
                        flush=True,
                    )
                out["open_ms"] = summary(opens)
                out["snapshot"] = stats
                ms, browser, (context, page) = open_wall(pw, url, token, args.units, args.cases)
                net = NetMeter(context, page)
                page.wait_for_timeout(3000)
                idle0 = net.main_thread()
                t0 = time.monotonic()
                page.wait_for_timeout(args.duration * 1000)
                idle = {
                    k: (v - idle0[k]) / (time.monotonic() - t0)
                    for k, v in net.main_thread().items()
                }
                seq0 = page.evaluate("lianqin.seq")
                n0 = page.evaluate("(lq.live.stats.taskMs || []).length")
                busy0 = net.main_thread()
                t0 = time.monotonic()
                load = Load(b, unit_ids, case_ids, args.ping_rate, args.case_rate)
                _run_load(page, load, args.duration)
                page.wait_for_timeout(1000)
                elapsed = time.monotonic() - t0
                busy = {k: (v - busy0[k]) / elapsed for k, v in net.main_thread().items()}
                seq1 = page.evaluate("lianqin.seq")
                task_ms = page.evaluate("lq.live.stats.taskMs || []")
                deltas = seq1 - seq0
                new = task_ms[n0:] if len(task_ms) - n0 == deltas else task_ms[-deltas:]
                browser.close()
        finally:
            if web is not None:
                web.stop()
            worker.stop()
    per_delta = {k: (busy[k] - idle[k]) / max(deltas / elapsed, 1e-9) * 1000 for k in busy}
    out.update(
        {
            "deltas": deltas,
            "deltas_per_s": deltas / elapsed,
            "js_ms_per_delta": summary(new),
            "main_thread_ms_per_delta": per_delta,
            "main_thread_busy_s_per_s": busy,
            "main_thread_idle_s_per_s": idle,
        }
    )
    o = out["open_ms"]
    print(
        f"-- open → painted wall ({args.units:,} units, {args.cases:,} cases): "
        f"p50 {o['p50']:,.0f} ms,"
        f" max {o['max']:,.0f} ms | target ≤ 2,000 ms: {o['p50'] / 2000:.2f}x of the limit"
    )
    js = out["js_ms_per_delta"]
    mt = per_delta.get("TaskDuration", float("nan"))
    print(
        f"-- one delta ({deltas / elapsed:.0f} deltas/s): JS p50 {js['p50']:.1f} ms, p99 "
        f"{js['p99']:.1f} ms, max {js['max']:.1f} ms; whole main thread (script+style+layout+"
        f"paint, above an idle page of the same size) {mt:.1f} ms | target ≤ 16 ms: "
        f"{mt / 16:.2f}x of the limit (idle page: {idle.get('TaskDuration', 0):.2f} s/s busy, "
        f"with deltas {busy.get('TaskDuration', 0):.2f} s/s)"
    )
    dump(args.json, out)
    return out


if __name__ == "__main__":
    main()
