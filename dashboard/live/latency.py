"""The push latency histogram, written by the workers: from an entry's XADD to the delta
carrying its effect, counted in a Redis hash in the MULTI that acknowledges the batch (read by
``/metrics``, dashboard/web/ops.py). No Flask: the worker records latencies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dashboard.streams import Keys

# Push latency buckets (seconds): from an entry's XADD to the delta carrying its effect.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def bucket_of(seconds: float) -> str:
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def record_latencies(pipe: Any, keys: Keys, entry_ids: Iterable[str], now_ms: int) -> None:
    """Queue the latencies of ``entry_ids`` (their time is in the id) on a pipeline."""
    counts: dict[str, int] = {}
    total_ms = 0
    n = 0
    for entry_id in entry_ids:
        try:
            added = int(entry_id.split("-", 1)[0])
        except ValueError:
            continue
        delay = max(0, now_ms - added)
        bucket = bucket_of(delay / 1000)
        counts[bucket] = counts.get(bucket, 0) + 1
        total_ms += delay
        n += 1
    if not n:
        return
    for bucket, count in counts.items():
        pipe.hincrby(keys.latency, f"b:{bucket}", count)
    pipe.hincrby(keys.latency, "sum_ms", total_ms)
    pipe.hincrby(keys.latency, "count", n)
