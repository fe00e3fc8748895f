"""The worker's housekeeping as small periodic jobs, run by its loop between batches.

A job is a name, an interval and a function (``PeriodicJob``); ``run_due`` runs every job whose
interval has passed, in list order, each on its own: a job that raises is logged and the next
ones still run. Only an outage stops the round (``pauses``: the database or Redis away, a newer
lease holder) — it is the whole worker's condition, not the job's, so the loop backs off as it
does for a batch, and the jobs not reached run in the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class PeriodicJob:
    """``fn`` every ``every_s`` seconds (a number, or a function for an interval that moves),
    and only while ``when()`` holds when one is given."""

    name: str
    every_s: float | Callable[[], float]
    fn: Callable[[], object]
    when: Callable[[], bool] | None = None
    last: float = field(default=float("-inf"))  # time.monotonic() of the last run

    def interval(self) -> float:
        return self.every_s() if callable(self.every_s) else self.every_s

    def due(self, now: float) -> bool:
        if self.when is not None and not self.when():
            return False
        return now - self.last >= self.interval()


def run_due(
    jobs: Sequence[PeriodicJob], now: float, *, pauses: Callable[[BaseException], bool]
) -> list[str]:
    """Run the jobs that are due; returns their names. Re-raises the first exception for which
    ``pauses`` holds (the rest of the round is left for the next); logs any other."""
    ran = []
    for job in jobs:
        if not job.due(now):
            continue
        job.last = now
        ran.append(job.name)
        try:
            job.fn()
        except Exception as exc:
            if pauses(exc):
                raise
            log.exception("periodic job %s failed; the others go on", job.name)
    return ran
