"""Soak: hours of steady load; memory must stay flat, only the database's history grows.

    .venv/bin/python -m bench.soak --duration 1800          # the recorded 30-minute run
    .venv/bin/python -m bench.soak --duration 20 --interval 5 --units 200

Real processes as deployed (a ``lianqin worker``, the web instance under gunicorn) and
one wall open in headless Chromium, fed ``--ping-rate`` pings/s and ``--case-rate`` case
events/s for ``--duration`` seconds. Producers bound their streams with ``MAXLEN ~``
(as the contract asks) at ``--maxlen`` entries. Every ``--interval`` seconds a sample:
RSS of the worker and of the web instance (gunicorn master + worker), Redis
``used_memory``, the database's size, the page's JS heap, stream and delta-log lengths,
the page's sequence. Printed: start vs end of each, as ratios, and the growth of the
second half of the run (memory that is flat there does not leak). ``--out`` keeps every
sample as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Backend,
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
    tree_rss_bytes,
)
from bench.e2e import Load


def sample(b: Backend, web: Proc, worker: Proc, page: Any, started: float) -> dict[str, Any]:
    client = b.redis()
    try:
        info: Any = client.info("memory")
        streams = {
            name: int(client.xlen(f"{b.prefix}:{name}"))
            for name in ("pings", "incidents", "deltas")
        }
    finally:
        client.close()
    js = page.evaluate(
        "({heap: performance.memory ? performance.memory.usedJSHeapSize : null, seq: lianqin.seq,"
        " resyncs: lq.live.stats.resyncs, units: Object.keys(lianqin.units).length,"
        " cases: Object.keys(lianqin.cases).length})"
    )
    return {
        "t": round(time.monotonic() - started, 1),
        "worker_rss": tree_rss_bytes(worker.pid),
        "web_rss": tree_rss_bytes(web.pid),
        "redis_used_memory": int(info["used_memory"]),
        "db_bytes": b.db_bytes(),
        "page_js_heap": js["heap"],
        "page_seq": js["seq"],
        "page_resyncs": js["resyncs"],
        "page_units": js["units"],
        "page_cases": js["cases"],
        **{f"xlen_{k}": v for k, v in streams.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--ping-rate", type=float, default=1000.0)
    parser.add_argument("--case-rate", type=float, default=2.0)
    parser.add_argument("--maxlen", type=int, default=100_000, help="producers' MAXLEN ~")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--out", type=Path, help="every sample as JSON lines")
    parser.add_argument("--json", type=Path, help="the summary as JSON")
    args = parser.parse_args(argv)
    banner(
        "soak: steady load, memory of every process at the start and the end",
        duration=f"{args.duration:g} s",
        load=f"{args.ping_rate:g} pings/s + {args.case_rate:g} case events/s "
        f"on {args.units:,} units, {args.cases:,} cases",
        streams=f"producers XADD … MAXLEN ~ {args.maxlen:,}",
        db=args.db,
    )
    from playwright.sync_api import sync_playwright

    samples: list[dict[str, Any]] = []
    out = args.out.open("w") if args.out else None
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
                browser, context = launch_browser(pw)
                page = context.new_page()
                page.goto(f"{url}/wall?token={token}", timeout=180_000)
                page.wait_for_function(
                    "window.lianqin && lianqin.seq !== null && "
                    f"Object.keys(lianqin.cases).length >= {args.cases}",
                    timeout=180_000,
                    polling=500,
                )
                # 2 case events/s walk the 20,000 cases through their lifecycle for hours.
                load = Load(
                    b, unit_ids, case_ids, args.ping_rate, args.case_rate, maxlen=args.maxlen
                )
                stop = threading.Event()
                producer = threading.Thread(target=load.run, args=(args.duration, stop))
                started = time.monotonic()
                producer.start()
                next_at = started
                try:
                    while producer.is_alive():
                        if time.monotonic() >= next_at:
                            s = sample(b, web, worker, page, started)
                            samples.append(s)
                            if out:
                                out.write(json.dumps(s) + "\n")
                                out.flush()
                            print(
                                f"   t={s['t']:>7.0f}s worker {s['worker_rss'] / 2**20:6.1f} MiB"
                                f" web {s['web_rss'] / 2**20:6.1f} MiB redis "
                                f"{s['redis_used_memory'] / 2**20:6.1f} MiB db "
                                f"{s['db_bytes'] / 2**20:7.1f} MiB page heap "
                                f"{(s['page_js_heap'] or 0) / 2**20:6.1f} MiB seq {s['page_seq']}",
                                flush=True,
                            )
                            next_at += args.interval
                        page.wait_for_timeout(500)
                finally:
                    stop.set()
                    producer.join()
                page.wait_for_timeout(2000)
                samples.append(sample(b, web, worker, page, started))
                browser.close()
        finally:
            if web is not None:
                web.stop()
            worker.stop()
            if out:
                out.close()
    result = report(samples, load)
    dump(args.json, result)
    return result


def report(samples: list[dict[str, Any]], load: Load) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    mid = samples[len(samples) // 2]
    keys = ["worker_rss", "web_rss", "redis_used_memory", "page_js_heap", "db_bytes"]
    result: dict[str, Any] = {"start": first, "middle": mid, "end": last, "samples": len(samples)}
    print(
        f"-- soak over {last['t']:,.0f} s: {load.sent_pings:,} pings, "
        f"{load.sent_cases:,} case events"
    )
    for k in keys:
        a, m, z = first[k] or 0, mid[k] or 0, last[k] or 0
        print(
            f"   {k:18s} start {a / 2**20:8.1f} MiB  middle {m / 2**20:8.1f} MiB  end "
            f"{z / 2**20:8.1f} MiB  end/start {z / max(a, 1):.2f}x  end/middle "
            f"{z / max(m, 1):.2f}x"
        )
    print(
        f"   page: seq {first['page_seq']} → {last['page_seq']}, resyncs {first['page_resyncs']}"
        f" → {last['page_resyncs']}; streams at the end: pings {last['xlen_pings']:,}, deltas "
        f"{last['xlen_deltas']:,}"
    )
    return result


if __name__ == "__main__":
    main()
