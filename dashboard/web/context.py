"""The one accessor of what the app holds for every request, socket event and Dash callback:
the process's ``Runtime`` (dashboard/runtime.py) and the shared snapshot store, kept in the
Flask app's ``extensions`` by the app factory (dashboard/web/app.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from dashboard.live.snapshot import SnapshotStore
    from dashboard.runtime import Runtime

RUNTIME = "lianqin"
SNAPSHOTS = "lianqin_snapshots"
SOCKET_GUARD = "lianqin_socket_guard"


def runtime_of(app: Flask) -> Runtime:
    rt: Runtime = app.extensions[RUNTIME]
    return rt


def current_runtime() -> Runtime:
    """The runtime of the app handling the current request (or socket event, or callback)."""
    return runtime_of(current_app)


def current_snapshots() -> SnapshotStore:
    store: SnapshotStore = current_app.extensions[SNAPSHOTS]
    return store
