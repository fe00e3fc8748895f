"""The worker's housekeeping jobs (dashboard/worker/jobs.py): each on its own interval, one
failing never stops the others, an outage stops the round."""

from __future__ import annotations

import pytest

from dashboard.worker.jobs import PeriodicJob, run_due


class Outage(Exception):
    pass


def _pauses(exc: BaseException) -> bool:
    return isinstance(exc, Outage)


def test_jobs_run_when_their_interval_has_passed() -> None:
    calls: list[str] = []
    jobs = [
        PeriodicJob("every-round", 0.0, lambda: calls.append("r")),
        PeriodicJob("slow", 10.0, lambda: calls.append("s")),
    ]
    assert run_due(jobs, 100.0, pauses=_pauses) == ["every-round", "slow"]  # due at start
    assert run_due(jobs, 105.0, pauses=_pauses) == ["every-round"]
    assert run_due(jobs, 110.0, pauses=_pauses) == ["every-round", "slow"]
    assert calls == ["r", "s", "r", "r", "s"]


def test_an_interval_may_move_and_a_condition_may_hold_a_job_back() -> None:
    state = {"dirty": False, "every": 1.0}
    job = PeriodicJob("kpis", lambda: state["every"], lambda: None, when=lambda: state["dirty"])
    assert not job.due(0.0)
    state["dirty"] = True
    assert run_due([job], 0.0, pauses=_pauses) == ["kpis"]
    state["every"] = 5.0
    assert not job.due(4.0) and job.due(5.0)


def test_a_failing_job_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken() -> None:
        raise KeyError("a bug")

    jobs = [
        PeriodicJob("first", 1.0, lambda: calls.append("first")),
        PeriodicJob("broken", 1.0, broken),
        PeriodicJob("last", 1.0, lambda: calls.append("last")),
    ]
    assert run_due(jobs, 0.0, pauses=_pauses) == ["first", "broken", "last"]
    assert calls == ["first", "last"]
    assert "periodic job broken failed" in caplog.text
    # It runs again at its next interval, not at once.
    assert run_due(jobs, 0.5, pauses=_pauses) == []


def test_an_outage_stops_the_round_and_the_rest_run_next_time() -> None:
    calls: list[str] = []
    down = {"yes": True}

    def database() -> None:
        if down["yes"]:
            raise Outage("database")
        calls.append("db")

    jobs = [PeriodicJob("db", 1.0, database), PeriodicJob("after", 1.0, lambda: calls.append("a"))]
    with pytest.raises(Outage):
        run_due(jobs, 0.0, pauses=_pauses)
    assert calls == []
    down["yes"] = False
    assert run_due(jobs, 0.1, pauses=_pauses) == ["after"]  # not reached last round
    assert run_due(jobs, 1.1, pauses=_pauses) == ["db", "after"]
