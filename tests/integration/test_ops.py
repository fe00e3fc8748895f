"""Operations: /readyz, /metrics (shared state, several processes), `lianqin dead`, logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from flask import Flask
from helpers import drain, make_token, wait_for
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from werkzeug.serving import make_server

from dashboard.config import Settings
from dashboard.live.publisher import NAMESPACE
from dashboard.logs import JsonFormatter, RedactingFilter, redact
from dashboard.runtime import Runtime
from dashboard.streams import Producer
from dashboard.web.app import create_app, runtime_of
from dashboard.worker.loop import Worker

METRICS_TOKEN = "metrics-secret-for-tests"


@pytest.fixture
def ops_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "metrics_token": SecretStr(METRICS_TOKEN),
            "ready_max_lag": 5,
            "ready_max_pending": 5,
        }
    )


@pytest.fixture
def app(ops_settings: Settings) -> Iterator[Flask]:
    server = create_app(ops_settings)
    yield server
    runtime_of(server).close()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return runtime_of(app)


def now_ms(offset: int = 0) -> int:
    return int(time.time() * 1000) + offset


def good_case(producer: Producer, case_id: str) -> None:
    producer.incident(
        id=case_id, status="reported", ts=now_ms(-1000), lat=29.37, lon=106.26, category="dispute"
    )


def scrape(app: Flask) -> dict[str, list[Any]]:
    response = app.test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        out.setdefault(family.name, []).extend(family.samples)
    return out


def value(families: dict[str, list[Any]], sample: str, **labels: str) -> float:
    name = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    name = name.removesuffix("_bucket")
    for s in families.get(name, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError(f"{sample} {labels} not in {sorted(families)}")


# -- /readyz ----------------------------------------------------------------------------------
def test_readyz_is_ready_then_reports_lag_and_pending_with_reasons(app: Flask, rt: Runtime) -> None:
    worker = Worker(rt, None, consumer="ready")
    worker.prepare()
    client = app.test_client()
    response = client.get("/readyz")  # public: no credentials
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"]["redis"] == "ok"
    assert response.get_json()["checks"]["database"] == "ok"
    assert response.get_json()["checks"]["leases"] == {
        "incidents": {"holder": None, "epoch": None, "expires_in_ms": None}
    }

    producer = Producer(rt.redis, rt.settings)
    for i in range(8):
        good_case(producer, f"HZ-LAG-{i}")
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["checks"]["streams"]["incidents"]["lag"] == 8
    assert any("incidents: lag 8 > 5" in r for r in body["reasons"])

    # Delivered but not acknowledged (a worker that died mid-batch): pending, not lag.
    rt.redis.xreadgroup(rt.settings.consumer_group, "dying", {rt.keys.incidents: ">"}, count=100)
    body = client.get("/readyz").get_json()
    assert body["checks"]["streams"]["incidents"]["lag"] == 0
    assert body["checks"]["streams"]["incidents"]["pending"] == 8
    assert any("pending 8 > 5" in r for r in body["reasons"])

    # The worker takes the lease on incidents and applies them at once, in order (no
    # claim_idle_ms to wait: nobody else may apply this stream).
    assert drain(worker) == 8
    response = client.get("/readyz")
    assert response.status_code == 200
    lease = response.get_json()["checks"]["leases"]["incidents"]
    assert lease["holder"] == "ready" and lease["epoch"] == 1
    assert 0 < lease["expires_in_ms"] <= rt.settings.lease_ms


def test_readyz_says_when_the_database_is_unreachable(
    ops_settings: Settings, tmp_path: Path
) -> None:
    broken = ops_settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path}"}  # a directory: cannot be opened
    )
    server = create_app(broken)
    try:
        response = server.test_client().get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["checks"]["database"] == "unreachable"
        assert body["reasons"] == ["database: OperationalError"]
    finally:
        runtime_of(server).close()


# -- /metrics ---------------------------------------------------------------------------------
def test_metrics_need_the_metrics_token_or_an_admin(app: Flask, rt: Runtime) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    viewer = make_token(rt, "viewer")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {viewer}"}).status_code == 401
    admin = make_token(rt, "admin")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert (
        client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code
        == 200
    )


def test_metrics_count_ingested_dead_lag_pending_and_latency_alike_on_every_instance(
    app: Flask, rt: Runtime, ops_settings: Settings
) -> None:
    producer = Producer(rt.redis, rt.settings)
    worker = Worker(rt, None, consumer="metrics")
    worker.prepare()
    for i in range(3):
        good_case(producer, f"HZ-M-{i}")
    producer.incident(
        id="HZ-BAD", status="reported", ts=now_ms(), lat=91, lon=0, category="dispute"
    )
    producer.incident(id="HZ-BAD2", status="teleported", ts=now_ms())
    producer.ping(unit="P-1", lat=29.37, lon=106.26, ts=now_ms(-500))
    assert drain(worker) == 6
    for i in range(2):
        good_case(producer, f"HZ-WAIT-{i}")  # not yet read: lag 2

    other = create_app(ops_settings)  # a second web process: the same figures
    try:
        for server in (app, other):
            m = scrape(server)
            assert value(m, "lianqin_entries_ingested_total", stream="incidents") == 3
            assert value(m, "lianqin_entries_ingested_total", stream="pings") == 1
            assert (
                value(m, "lianqin_entries_dead_lettered_total", stream="incidents",
                      reason="bad_coordinates") == 1
            )  # fmt: skip
            assert (
                value(m, "lianqin_entries_dead_lettered_total", stream="incidents",
                      reason="unknown_status") == 1
            )  # fmt: skip
            assert value(m, "lianqin_consumer_lag", stream="incidents") == 2
            assert value(m, "lianqin_consumer_pending", stream="incidents") == 0
            assert value(m, "lianqin_push_latency_seconds_count") == 4
            assert value(m, "lianqin_push_latency_seconds_bucket", le="+Inf") == 4
            assert value(m, "lianqin_push_latency_seconds_bucket", le="60.0") == 4
            assert value(m, "lianqin_dead_letters") == 2
            assert value(m, "lianqin_stream_leader", stream="incidents", consumer="metrics") == 1
            assert value(m, "lianqin_stream_lease_epoch", stream="incidents") == 1
    finally:
        runtime_of(other).close()


class _Server:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


def test_connected_clients_are_summed_over_web_processes(
    app: Flask, rt: Runtime, ops_settings: Settings
) -> None:
    other = create_app(ops_settings)
    servers = [_Server(app), _Server(other)]
    token = make_token(rt)
    clients = []
    try:
        for server, n in ((servers[0], 2), (servers[1], 1)):
            for _ in range(n):
                c = socketio.Client(reconnection=False)
                c.connect(server.url, namespaces=[NAMESPACE], transports=["websocket"],
                          wait_timeout=10, auth={"token": token})  # fmt: skip
                clients.append(c)
        wait_for(
            lambda: value(scrape(app), "lianqin_connected_clients") == 3,
            timeout=15,
            message="3 sockets over 2 web processes",
        )
        clients.pop().disconnect()
        wait_for(lambda: value(scrape(other), "lianqin_connected_clients") == 2, timeout=15)
    finally:
        for c in clients:
            c.disconnect()
        for server in servers:
            server.close()
        runtime_of(other).close()


# -- logs ---------------------------------------------------------------------------------------
def test_logs_are_json_lines_without_secrets() -> None:
    record = logging.LogRecord(
        "lianqin", logging.INFO, __file__, 1,
        "connect %s with token %s (/wall?token=%s)",
        ("redis://:hunter2@db:6379/0", "lq_abcdefghijklmnop", "lq_zzzzzzzzzzzz"), None,
    )  # fmt: skip
    assert RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "lianqin" and line["pid"] == os.getpid()
    assert "hunter2" not in line["msg"] and "abcdefghijklmnop" not in line["msg"]
    assert "zzzz" not in line["msg"]
    assert redact("postgresql://u:pw@h/db password=x") == "postgresql://u:***@h/db password=***"


# -- lianqin dead -------------------------------------------------------------------------------
def dead_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(settings.data_dir),
        "REDIS_URL": settings.redis_url or "",
        "DATABASE_URL": settings.effective_database_url,
        "LIANQIN_STREAM_PREFIX": settings.stream_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "dead", *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_dead_list_show_retry_purge(runtime: Runtime, producer: Producer) -> None:
    worker = Worker(runtime, None, consumer="dead-cli")
    worker.prepare()
    # An entry for a category this center had not configured yet: retried after the fix.
    producer.incident(id="HZ-NEWCAT", status="reported", ts=now_ms(-1000), lat=29.37,
                      lon=106.26, category="flooding", title="积水 <b>")  # fmt: skip
    runtime.redis.xadd(runtime.keys.incidents, {b"id": b"HZ-BIN", b"status": b"reported",
                                                b"ts": b"1", b"title": b"\xff\xfe"})  # fmt: skip
    producer.ping(unit="P-1", lat=29.37, lon=999, ts=now_ms(-500))
    drain(worker)
    assert runtime.redis.xlen(runtime.keys.dead) == 3

    listed = dead_cli(runtime.settings, "list")
    assert listed.returncode == 0, listed.stderr
    assert "unknown_category" in listed.stdout and "3 dead letter(s)" in listed.stdout
    as_json = [
        json.loads(line)
        for line in dead_cli(runtime.settings, "list", "--json").stdout.splitlines()
    ]
    assert {d["code"] for d in as_json} >= {"unknown_category", "bad_coordinates"}
    newcat = next(d for d in as_json if d["code"] == "unknown_category")
    assert newcat["fields"]["category"] == "flooding"

    shown = dead_cli(runtime.settings, "show", newcat["id"])
    assert shown.returncode == 0
    detail = json.loads(shown.stdout)
    assert detail["entry"] and detail["stream"] == runtime.keys.incidents
    assert detail["fields"]["title"] == "积水 <b>"
    binary = next(d for d in as_json if d["fields"].get("id") == "HZ-BIN")
    assert json.loads(dead_cli(runtime.settings, "show", binary["id"]).stdout)["fields"][
        "title"
    ] == repr(b"\xff\xfe")
    assert dead_cli(runtime.settings, "show", "1-1").returncode != 0

    # Fix the cause (configure the category), then re-drive: the same fields, applied.
    fixed = runtime.settings.model_copy(
        update={"categories": (*runtime.settings.categories, "flooding")}
    )
    retried = dead_cli(runtime.settings, "retry", "--code", "unknown_category")
    assert retried.returncode == 0, retried.stderr
    assert "1 dead letter(s) re-added" in retried.stdout
    assert runtime.redis.xlen(runtime.keys.dead) == 2
    fixed_rt = Runtime.open(fixed)
    try:
        fixed_worker = Worker(fixed_rt, None, consumer="dead-cli-fixed")
        drain(fixed_worker)
        from dashboard.models import Case

        with fixed_rt.db.read() as session:
            case = session.get(Case, "HZ-NEWCAT")
            assert case is not None and case.category == "flooding" and case.title == "积水 <b>"
    finally:
        fixed_rt.close()

    assert dead_cli(runtime.settings, "retry").returncode != 0  # ids or --all: required
    purged = dead_cli(runtime.settings, "purge", "--all", "--stream", "pings", "--yes")
    assert purged.returncode == 0 and "1 dead letter(s) purged" in purged.stdout
    assert dead_cli(runtime.settings, "purge", "--all", "--yes").stdout.startswith("1 dead")
    assert runtime.redis.xlen(runtime.keys.dead) == 0
