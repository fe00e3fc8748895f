"""A screen that opens just after the first cases: the shared snapshot may have been built on
an empty database (an empty delta log: seq 0, no cursor) and reused. The screen must still
catch up from the log, not be handed that empty snapshot again and again until it expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dashboard.live.deltas import body
from dashboard.live.snapshot import SnapshotStore, handle_sync
from dashboard.models import Case
from dashboard.runtime import Runtime


def commit_case(rt: Runtime, case_id: str) -> dict[str, Any]:
    """A case as the worker would commit it, then its delta on the log (commit first)."""
    now = datetime.now(UTC)
    row = {"id": case_id, "status": "registered", "category": "dispute", "priority": 2,
           "source": "hotline_12345", "title": case_id, "lat": 29.37, "lon": 106.26,
           "reported_at": now, "status_since": now, "status_ts": now,
           "deadline_at": now + timedelta(hours=2), "version": 1, "created_at": now,
           "updated_at": now}  # fmt: skip
    with rt.db.write() as session:
        session.add(Case(**row))
    return {"id": case_id, "status": "registered"}


def test_a_page_catches_up_from_a_snapshot_of_the_empty_log(rt: Runtime) -> None:
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=300)
    first = store.current(rt)  # a screen opened before the simulator's first case
    assert (first.seq, first.cursor) == (0, None)
    for i in range(3):
        rt.deltas.append(body([commit_case(rt, f"START-{i}")], []))

    # A new page: `sync` without a position. The empty snapshot is still fit (the log
    # reaches back to it), so it may be handed out: the page loads it (seq 0, no cursor).
    reply = handle_sync(rt, store, {"cursor": None, "seq": None})
    assert reply["mode"] == "snapshot"
    seq, cursor = reply["seq"], reply["cursor"]
    if seq == 0:
        # Then deltas 4, 5 … arrive: a gap, so it asks `sync` from where it is. It must be
        # answered with the log since the start, not with the same empty snapshot.
        again = handle_sync(rt, store, {"cursor": cursor, "seq": seq})
        assert again["mode"] == "catchup", again
        assert [d["seq"] for d in again["deltas"]] == [1, 2, 3]
        assert all("START-" in d["d"] for d in again["deltas"])
    else:
        assert seq == 3


def test_an_empty_log_is_caught_up_as_empty(rt: Runtime) -> None:
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=300)
    reply = handle_sync(rt, store, {"cursor": None, "seq": None})
    assert (reply["mode"], reply["seq"], reply["cursor"]) == ("snapshot", 0, None)
    again = handle_sync(rt, store, {"cursor": None, "seq": 0})
    assert (again["mode"], again["deltas"], again["seq"]) == ("catchup", [], 0)


def test_a_position_from_another_epoch_gets_a_snapshot(rt: Runtime) -> None:
    """No cursor but a sequence number the log does not start after: not caught up."""
    store = SnapshotStore(rt.redis, rt.keys, reuse_s=300)
    rt.deltas.append(body([], []))
    assert handle_sync(rt, store, {"cursor": None, "seq": 7})["mode"] == "snapshot"
