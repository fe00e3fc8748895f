"""A clean stop prints nothing alarming: no Werkzeug "production deployment" warning at start,
no "Cannot receive from redis" or socketio ERROR on Ctrl-C, with a browser's socket open."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests
import socketio
from demo_process import DemoProcess
from helpers import wait_for

ALARMING = ("WARNING", "ERROR", "Traceback", "production deployment", "Cannot receive")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_clean_start_and_stop_print_nothing_alarming(tmp_path: Path, sig: int) -> None:
    demo = DemoProcess(tmp_path / "data", "--warm", "20")
    client = socketio.Client(reconnection=False)
    try:
        demo.wait_ready()
        token = demo.wall_token
        cases = requests.get(
            f"{demo.url}/api/v1/cases", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert cases.status_code == 200
        # A screen's live socket is open when the demo stops, as on a real wall.
        client.connect(demo.url, namespaces=["/live"], auth={"token": token},
                       transports=["websocket"], wait_timeout=20)  # fmt: skip
        wait_for(lambda: client.connected, timeout=20, message="the socket connects")
        wait_for(lambda: "warm start" in demo.output(), timeout=30, message="the simulator runs")
    finally:
        code = demo.stop(sig)
        client.disconnect()
    out = demo.output() if not demo.log.closed else Path(demo.log.name).read_text()
    assert code == 0, out[-3000:]
    found = [line for line in out.splitlines() if any(word in line for word in ALARMING)]
    assert found == [], "\n".join(found)
    assert "stopping" in out  # it says what it does
