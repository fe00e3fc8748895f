"""`lianqin demo` starts with a past: the first start of a data dir writes N days of cases at
the live simulator's rate (with a progress bar), up to where the simulator's warm start
begins; a restart does not write them again."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
from demo_process import DemoProcess
from helpers import wait_for

from dashboard.demo.simulator import HOURLY_FACTOR, wall_rate

SH = ZoneInfo("Asia/Shanghai")
DAYS = 8


def kpis(demo: DemoProcess, token: str, start: date, end: date) -> dict[str, float]:
    response = requests.get(
        f"{demo.url}/api/v1/kpis",
        params={"from": start.isoformat(), "to": end.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def cases_in(data: Path) -> list[tuple[str, datetime]]:
    with sqlite3.connect(data / "lianqin.sqlite3") as db:
        rows = db.execute("SELECT id, reported_at FROM cases").fetchall()
    return [(i, datetime.fromisoformat(t).replace(tzinfo=UTC)) for i, t in rows]


def test_a_first_start_has_history_and_a_restart_does_not_add_it_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = DemoProcess(data, "--history-days", str(DAYS), "--warm", "300")
    try:
        first.wait_ready(timeout=120)
        out = first.output()
        assert "demo history: 8 days" in out  # the progress bar's label
        assert "history: " in out and "written in" in out
        token = first.wall_token
        today = datetime.now(SH).date()
        # Last week (Monday to Sunday), as /trends shows it: not empty.
        monday = today - timedelta(days=today.weekday() + 7)
        last_week = kpis(first, token, monday, monday + timedelta(days=6))
        assert last_week["reported"] > 0
        # Yesterday holds a day of the live simulator's volume (rate × speed through the
        # day's profile; days vary by a few percent).
        per_day = wall_rate(0.25, 10.0) * 60 * sum(HOURLY_FACTOR)
        yesterday = kpis(first, token, today - timedelta(days=1), today - timedelta(days=1))
        assert 0.75 * per_day < yesterday["reported"] < 1.25 * per_day, yesterday
        assert yesterday["closure_rate"] > 0.9

        def live_cases() -> bool:  # the simulator's warm start, through the worker
            newest = requests.get(
                f"{first.url}/api/v1/cases", params={"limit": 5},
                headers={"Authorization": f"Bearer {token}"}, timeout=10,
            ).json()  # fmt: skip
            return any(not c["id"].startswith("HD-") for c in newest)

        wait_for(live_cases, timeout=60, message="the simulator's cases")
    finally:
        assert first.stop() == 0, first.output()[-2000:]
    marker = json.loads((data / "history.json").read_text(encoding="utf-8"))
    assert marker["days"] == DAYS and marker["cases"] > 0
    cases = cases_in(data)
    history = [t for i, t in cases if i.startswith("HD-")]
    live = [t for i, t in cases if not i.startswith("HD-")]
    assert len(history) == marker["cases"]
    # The history stops where the simulator's warm start begins: no overlap.
    assert live and max(history) <= min(live)
    assert min(history) >= datetime.combine(today - timedelta(days=DAYS), datetime.min.time(),
                                            tzinfo=SH)  # fmt: skip

    second = DemoProcess(data, "--history-days", str(DAYS), "--no-simulator")
    try:
        second.wait_ready(timeout=120)
        assert "written in" not in second.output()  # not written again …
        assert "history: 8 days, written at the first start" in second.output()
    finally:
        assert second.stop() == 0, second.output()[-2000:]
    assert (
        len([i for i, _ in cases_in(data) if i.startswith("HD-")]) == marker["cases"]
    )  # … nor added


def test_no_history_starts_empty(tmp_path: Path) -> None:
    demo = DemoProcess(tmp_path / "data", "--no-simulator")  # DemoProcess adds --no-history
    try:
        demo.wait_ready()
        assert "demo history" not in demo.output()
    finally:
        assert demo.stop() == 0
    assert not (tmp_path / "data" / "history.json").exists()
    assert cases_in(tmp_path / "data") == []
