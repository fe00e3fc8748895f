"""The wall in real Chromium under the real Content-Security-Policy loads its snapshot over
HTTP (GET /live/snapshot, gzip), never inside a Socket.IO message, catches up through the
same path after a gap the delta log no longer covers, and backs off its reconnects with
full jitter."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from demo_process import DemoProcess
from helpers import close_page, delta_seq_of, open_page
from playwright.sync_api import Browser, Page, Response

pytestmark = pytest.mark.browser
LAT, LON = 29.3725, 106.2622

CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def xadd_case(client: redis.Redis, case_id: str) -> None:
    client.xadd("lq:incidents", {"id": case_id, "status": "reported", "category": "dispute",
                                 "ts": str(int(time.time() * 1000) - 500),
                                 "lat": str(LAT), "lon": str(LON)})  # fmt: skip


def wait_dots(page: Page, ids: list[str]) -> None:
    for case_id in ids:
        page.wait_for_selector(f'path[data-case="{case_id}"]', state="attached", timeout=30_000)


def test_the_wall_loads_and_catches_up_through_the_snapshot_endpoint_under_the_csp(
    browser: Browser, demo: DemoProcess, producer_redis: redis.Redis
) -> None:
    for i in range(3):
        xadd_case(producer_redis, f"SNAP-{i}")
    # Applied before the page opens: their dots can only come from the snapshot.
    carried_by = max(delta_seq_of(producer_redis, f"SNAP-{i}") for i in range(3))
    producer_redis.delete("lq:live:snapshot:latest")  # none to reuse: built after them
    page = open_page(browser, csp=True)
    page.add_init_script(CSP_PROBE)
    snapshots: list[dict[str, Any]] = []
    frames: list[str] = []

    def on_response(response: Response) -> None:
        if "/live/snapshot" in response.url:
            snapshots.append({"url": response.url, "status": response.status,
                              "encoding": response.headers.get("content-encoding"),
                              "etag": response.headers.get("etag"),
                              "response": response})  # fmt: skip

    page.on("response", on_response)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
    try:
        page.goto(f"{demo.url}/wall?token={demo.wall_token}")
        wait_dots(page, ["SNAP-0", "SNAP-1", "SNAP-2"])  # drawn from the snapshot
        page.wait_for_function(
            "() => document.getElementById('lq-connection').dataset.state === 'live'",
            timeout=30_000,
        )
        assert len(snapshots) == 1 and snapshots[0]["status"] == 200, snapshots
        assert snapshots[0]["encoding"] == "gzip" and snapshots[0]["etag"]
        first = snapshots[0]["response"].json()  # the page applies only deltas after its seq
        assert first["seq"] >= carried_by
        assert {"SNAP-0", "SNAP-1", "SNAP-2"} <= {c["id"] for c in first["cases"]}
        # The acknowledgement only names the snapshot: no message carries the whole state.
        assert not [f for f in frames if '"mode":"snapshot"' in f and '"cases"' in f]
        assert [f for f in frames if '"mode":"snapshot"' in f and '"url":' in f]

        # A gap the delta log no longer covers: the socket is off while cases arrive and
        # the log is trimmed; on reconnect the page is sent to a fresh snapshot.
        seq_before = page.evaluate("() => window.lianqin.seq")
        page.evaluate("() => window.lq.live.socket().disconnect()")
        page.wait_for_function("() => !window.lianqin.connected", timeout=10_000)
        for i in range(3, 6):
            xadd_case(producer_redis, f"SNAP-{i}")
        deadline = time.monotonic() + 30
        while int(producer_redis.get("lq:deltas:seq") or 0) < seq_before + 1:
            assert time.monotonic() < deadline, "the worker applies the new cases"
            time.sleep(0.1)
        time.sleep(1.0)  # the rest of them (one batch or several)
        producer_redis.xtrim("lq:deltas", maxlen=0)
        xadd_case(producer_redis, "SNAP-6")
        page.evaluate("() => window.lq.live.socket().connect()")
        wait_dots(page, [f"SNAP-{i}" for i in range(3, 7)])
        page.wait_for_function(
            "() => document.getElementById('lq-connection').dataset.state === 'live'",
            timeout=30_000,
        )
        assert len(snapshots) == 2 and snapshots[1]["status"] == 200, snapshots
        assert snapshots[1]["url"] != snapshots[0]["url"]  # a newer one, built for the gap
        assert page.evaluate("() => window.lianqin.seq") > seq_before
        assert page.evaluate("() => window.__csp") == []
    finally:
        close_page(page)


def test_reconnects_back_off_with_full_jitter(browser: Browser, demo: DemoProcess) -> None:
    page = open_page(browser, csp=True)
    try:
        page.goto(f"{demo.url}/wall?token={demo.wall_token}")
        page.wait_for_function("() => window.lianqin && window.lianqin.connected", timeout=30_000)
        delays = page.evaluate(
            """() => {
              const b = window.lq.live.socket().io.backoff;  // Socket.IO's own reconnect timer
              const saved = b.attempts;
              const at = (n) => Array.from({length: 400}, () => {
                b.attempts = n;
                return b.duration();
              });
              const out = {first: at(0), third: at(2), late: at(12)};
              b.attempts = saved;
              return out;
            }"""
        )
        assert all(0 <= d < 500 for d in delays["first"])  # 0.5 s × 2^0, full jitter
        assert all(0 <= d < 2000 for d in delays["third"])  # 0.5 s × 2^2
        late = delays["late"]
        assert all(0 <= d < 30_000 for d in late)  # capped at 30 s
        # Spread over the whole range, not bunched at the cap: screens that lost the server
        # together come back at different times.
        assert min(late) < 3000 and max(late) > 27_000
        assert sum(1 for d in late if d > 29_000) < 40
    finally:
        close_page(page)
