"""Small helpers shared by the tests."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page

from dashboard.models import Case
from dashboard.runtime import Runtime
from dashboard.web.ops import group_states
from dashboard.worker.loop import Worker


def wait_for(
    predicate: Any, timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> Any:
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message or predicate}")
        time.sleep(interval)


def drain(worker: Worker, rounds: int = 1000, timeout: float = 30.0) -> int:
    """Run worker cycles (at most ``rounds``) until the input streams are drained (nothing
    undelivered, nothing pending); return how many entries were handled. A worker waits for
    the lease on an ordered stream while another (an earlier Worker object of the test)
    still holds it."""
    total = 0
    idle = 0
    deadline = time.monotonic() + timeout
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        handled = worker.step()
        total += handled
        idle = idle + 1 if handled == 0 else 0
        if idle >= 2 and drained(worker.rt):
            break
    return total


def drained(rt: Runtime) -> bool:
    return all(g.lag == 0 and g.pending == 0 for g in group_states(rt, cap=100_000))


def make_token(runtime: Runtime, role: str = "viewer", name: str | None = None) -> str:
    """A real API token in the test database (its plaintext)."""
    from dashboard.services.accounts import create_token

    with runtime.db.write() as session:
        _, plaintext = create_token(
            session, name=name or f"test-{role}-{secrets.token_hex(3)}", role=role
        )
    return plaintext


DATA = Path(__file__).resolve().parent / "data"


def dataset(name: str) -> Path:
    """A real public sample (tests/data/: exact copies of ../shared/datasets/, SOURCES.md),
    kept in the repository so that a checkout tests on its own."""
    return DATA / name


def seed_case(runtime: Runtime, case_id: str, status: str = "registered") -> None:
    """One real case, through the stream and the worker as a producer would add it."""
    from dashboard.streams import Producer

    Producer(runtime.redis, runtime.settings).incident(
        id=case_id, status=status, ts=int(time.time() * 1000) - 60_000,
        lat=29.37, lon=106.26, category="dispute",
    )  # fmt: skip
    worker = Worker(runtime, None, consumer=f"seed-{secrets.token_hex(3)}")
    worker.prepare()
    drain(worker)


def callback_body(
    dependency: dict[str, Any],
    values: dict[str, Any] | None = None,
    changed: list[str] | None = None,
) -> dict[str, Any]:
    """The body Dash's renderer POSTs to /_dash-update-component for one callback (an entry
    of /_dash-dependencies), with ``values`` by ``"id.property"`` (absent: null)."""
    values = values or {}
    output = dependency["output"]
    parts = [
        dict(zip(("id", "property"), part.split(".", 1), strict=True))
        for part in output.strip(".").split("...")
    ]

    def filled(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"id": i["id"], "property": i["property"],
             "value": values.get(f"{i['id']}.{i['property']}")}
            for i in items
        ]  # fmt: skip

    first = dependency["inputs"][0]
    return {
        "output": output,
        "outputs": parts if output.startswith("..") else parts[0],
        "inputs": filled(dependency["inputs"]),
        "state": filled(dependency["state"]),
        "changedPropIds": changed or [f"{first['id']}.{first['property']}"],
    }


# -- the KPI fixture (tests/integration/test_kpis.py works its figures out by hand) ----------
SH = ZoneInfo("Asia/Shanghai")


def local(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=SH).astimezone(UTC)


def make_case(case_id: str, status: str, category: str, reported: datetime, **kw: Any) -> Case:
    values: dict[str, Any] = {
        "id": case_id,
        "status": status,
        "category": category,
        "priority": 3,
        "lat": 29.37,
        "lon": 106.26,
        "reported_at": reported,
        "status_since": reported,
        "status_ts": reported,
        "rework_count": 0,
        "version": 1,
        "overdue": False,
    }
    values.update(kw)
    return Case(**values)


def fixture_cases() -> list[Case]:
    """Nine cases around 2026-11-23 (Asia/Shanghai); the expected figures are worked out below."""
    return [
        # A: dispute, on time (72 h), closed. dispatch 60 s, arrival 240 s.
        make_case("A", "closed", "dispute", local(23, 9), registered_at=local(23, 9, 0, 30),
                  dispatched_at=local(23, 9, 1), on_scene_at=local(23, 9, 5),
                  resolved_at=local(23, 10), closed_at=local(23, 11)),
        # B: traffic (2 h), resolved after 3 h: late. dispatch 120 s, arrival 600 s.
        make_case("B", "resolved", "traffic", local(23, 10), dispatched_at=local(23, 10, 2),
                  on_scene_at=local(23, 10, 12), resolved_at=local(23, 13),
                  deadline_at=local(24, 13)),
        # C: noise, on scene (open); dispatch 30 s, arrival 150 s; its deadline passed.
        make_case("C", "on_scene", "noise", local(23, 11), dispatched_at=local(23, 11, 0, 30),
                  on_scene_at=local(23, 11, 3), deadline_at=local(23, 15)),
        # D: dispute, still reported (open), flagged overdue by the sweep.
        make_case("D", "reported", "dispute", local(23, 12), deadline_at=local(23, 12, 5),
                  overdue=True),
        # E: cancelled: in no figure.
        make_case("E", "cancelled", "environment", local(23, 12, 30), cancelled_at=local(23, 13)),
        # F: urgent public security (2 h / 4 = 30 min) reported 23:50, closed 00:20 the next
        # day without a resolved stage: resolved exactly at its deadline, on time; counts for
        # the 23rd. dispatch 60 s, arrival 840 s (across midnight).
        make_case("F", "closed", "public_security", local(23, 23, 50), priority=1,
                  dispatched_at=local(23, 23, 51), on_scene_at=local(24, 0, 5),
                  closed_at=local(24, 0, 20)),
        # G: explicit due 1 h after the report, resolved in 50 min (on time), then reworked:
        # dispatched again (open), rework. dispatch 600 s, arrival 600 s.
        make_case("G", "dispatched", "other", local(23, 8), due_at=local(23, 9),
                  dispatched_at=local(23, 8, 10), on_scene_at=local(23, 8, 20),
                  resolved_at=local(23, 8, 50), rework_count=1, status_since=local(24, 11, 58),
                  deadline_at=local(24, 12, 3)),
        # H: reported one minute before the day: not in the 23rd, but overdue now.
        make_case("H", "registered", "noise", local(22, 23, 59), deadline_at=local(23, 0, 0, 59),
                  overdue=True),
        # I: a dispute created directly as dispatched (110 CAD): dispatch time 0; overdue.
        make_case("I", "dispatched", "dispute", local(23, 14), dispatched_at=local(23, 14),
                  deadline_at=local(23, 14, 5)),
    ]  # fmt: skip


# -- Dash callbacks as the browser calls them (a signed-in user of the Flask test client) -----
PASSWORD = "correct horse battery"


def sign_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    response = client.post(
        "/login",
        data={"username": name, "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"},
    )
    assert response.status_code == 302
    client.get("/wall")  # the CSRF cookie Dash sends back
    return client


class Dash:
    """Calls the app's Dash callbacks the way the renderer does (/_dash-update-component)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.deps = client.get("/_dash-dependencies").json

    def call(
        self,
        trigger: str,
        prop: str,
        value: Any,
        states: dict[str, Any] | None = None,
        extra_inputs: dict[str, Any] | None = None,
    ) -> Any:
        dep = next(
            d
            for d in self.deps
            if any(i["id"] == trigger and i["property"] == prop for i in d["inputs"])
        )
        outputs = [
            dict(zip(("id", "property"), part.split(".", 1), strict=True))
            for part in dep["output"].strip(".").split("...")
        ]
        values = {trigger: value, **(extra_inputs or {})}
        inputs = [
            {**i, "value": values[i["id"]]} if i["id"] in values else dict(i) for i in dep["inputs"]
        ]
        state = [{**s, "value": (states or {}).get(s["id"])} for s in dep["state"]]
        cookie = self.client.get_cookie("_csrf_token")
        assert cookie is not None
        response = self.client.post(
            "/_dash-update-component",
            json={
                "output": dep["output"],
                "outputs": outputs if len(outputs) > 1 else outputs[0],
                "inputs": inputs,
                "state": state,
                "changedPropIds": [f"{trigger}.{prop}"],
            },
            headers={"X-CSRFToken": cookie.value},
        )
        return response


# -- pages in real Chromium (tests/browser, tests/faults) --------------------------------------
def open_page(
    browser: Browser, width: int = 1920, height: int = 1080, *, csp: bool = False
) -> Page:
    """A page in a context of its own; script errors and dialogs land in ``page.errors``.

    Playwright's string predicates (``wait_for_function("window.x")``) run through eval,
    which the app's Content-Security-Policy forbids: pages bypass it unless ``csp`` is
    set (tests/browser/test_security_browser.py checks the pages under the real policy).
    """
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="zh-CN", bypass_csp=not csp
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def close_page(page: Page) -> None:
    """Close the page's context; fail on any script error or dialog it saw."""
    errors = page.errors  # type: ignore[attr-defined]
    page.context.close()
    assert errors == [], f"errors in the page: {errors}"


def screenshot_dir() -> Path:
    path = Path(__file__).resolve().parents[1] / "assets" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
def delta_seq_of(client: Any, case_id: str, timeout: float = 30.0) -> int:
    """Wait until a worker has pushed a delta carrying case ``case_id`` (in the delta log
    ``lq:deltas``); return the newest such delta's sequence number."""
    needle = f'"id":"{case_id}"'.encode()

    def find() -> int | None:
        for _, fields in client.xrevrange("lq:deltas", count=1000):
            if needle in fields[b"d"]:
                return int(fields[b"seq"])
        return None

    seq: int = wait_for(find, timeout=timeout, message=f"a delta carrying {case_id}")
    return seq
