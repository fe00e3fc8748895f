"""`lianqin demo`: everything on one machine (the processes: dashboard/demo/supervisor.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta
from typing import Any

import click
from pydantic import SecretStr

from dashboard.cli.common import log, run_web, running_redis, server_options, settings_of
from dashboard.config import Settings
from dashboard.demo.supervisor import (
    DemoRunning,
    WarmPlan,
    accounts_banner,
    child_env,
    demo_accounts,
    demo_lock,
    demo_secret,
    note_holder,
    seed_demo,
    spawn,
    terminate,
)

DEMO_RATE = 0.25  # new cases per simulated minute: at 10× about 3,200 a day


def _history(
    settings: Settings, days: int, rate: float, speed: float, warm: int, no_simulator: bool
) -> tuple[WarmPlan | None, str]:
    """Write the demo's past on the first start of a data dir; return the warm start that
    continues it (None: the simulator's own) and a line for the banner.

    The history ends where the warm start begins and both follow the live simulator's rate,
    so that today so far, yesterday at this time and last week compare like with like; on a
    restart the warm start begins after the newest case already there (no overlap)."""
    import sys

    from dashboard.demo.simulator import wall_rate
    from dashboard.demo.supervisor import (
        newest_case,
        read_history_marker,
        warm_plan,
        write_demo_history,
    )
    from dashboard.streams import now_utc

    per_minute = wall_rate(rate, speed)
    marker = read_history_marker(settings.data_dir)
    if days <= 0:
        return None, ""
    now = now_utc()
    newest = newest_case(settings)
    if marker is not None:
        line = f"  history: {marker.get('days')} days, written at the first start\n"
        if no_simulator:
            return None, line
        return warm_plan(now, settings.zone, per_minute=per_minute, warm=warm, since=newest), line
    if newest is not None:
        log.info("demo history: skipped, the database already holds cases (a fresh data dir)")
        return None, ""
    plan = None if no_simulator else warm_plan(now, settings.zone, per_minute=per_minute, warm=warm)
    until = now - timedelta(hours=plan.hours) if plan is not None else now

    def bar(length: int) -> Any:
        return click.progressbar(
            length=length, label=f"demo history: {days} days", file=sys.stderr, show_pos=True
        )

    written = write_demo_history(
        settings, now=now, until=until, days=days, per_minute=per_minute, speed=speed, bar=bar
    )
    line = (
        f"  history: {written['cases']} cases over {days} days written in "
        f"{written['seconds']} s (once per data dir; --no-history to skip)\n"
    )
    click.echo(line.strip())
    return plan, line


@click.command()
@server_options
@click.option(
    "--speed", type=float, default=10.0, show_default=True, help="Simulator speed factor."
)
@click.option(
    "--rate",
    type=float,
    default=DEMO_RATE,
    show_default=True,
    help="New cases per simulated minute (× speed per wall minute, through the day's profile).",
)
@click.option(
    "--warm",
    type=int,
    default=300,
    show_default=True,
    help="Cases created at start (with the history: at most what the rate brings).",
)
@click.option("--no-simulator", is_flag=True, help="Run without the live simulator.")
@click.option(
    "--history-days",
    type=click.IntRange(0, 3660),
    default=60,
    show_default=True,
    help="On a fresh data dir, first write this many days of past cases at the simulator's rate.",
)
@click.option(
    "--no-history", is_flag=True, help="Start without the past days (= --history-days 0)."
)
@click.pass_context
def demo(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    speed: float,
    rate: float,
    warm: int,
    no_simulator: bool,
    history_days: int,
    no_history: bool,
) -> None:
    """All on one machine: embedded Redis, SQLite, the demo district, simulator, worker, web.

    The first start of a data dir writes the last 60 days of cases (--history-days, or
    --no-history), at the live simulator's rate, so that every screen has a past to compare
    with; it is written once (history.json in the data dir says so)."""
    from dashboard.db import upgrade

    settings = settings_of(ctx, host=host, port=port)
    try:
        lock = demo_lock(settings.data_dir)
    except DemoRunning as exc:
        raise click.ClickException(str(exc)) from None
    base = f"http://{settings.host}:{settings.port}"
    note_holder(lock, f"pid {os.getpid()}, {base}/wall")
    secret = demo_secret(settings.data_dir)
    settings = settings.model_copy(update={"secret_key": SecretStr(secret)})
    children: list[subprocess.Popen[bytes]] = []

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell that starts a program in the background (nohup, `&` in a
    # script) leaves SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with running_redis(settings) as redis_url:
        try:
            upgrade(settings)
            counts = seed_demo(settings, redis_url)
            log.info("demo district: %s", counts)
            created, wall_token = demo_accounts(settings)
            days = 0 if no_history else history_days
            plan, history_line = _history(settings, days, rate, speed, warm, no_simulator)
            env = child_env(settings, redis_url, secret)
            children.append(spawn(["worker", "--name", "demo-worker"], env))
            if not no_simulator:
                warm_args = ["--warm", str(warm)]
                if plan is not None:
                    warm_args = ["--warm", str(plan.cases), "--warm-hours", f"{plan.hours:.4f}"]
                children.append(
                    spawn(
                        ["simulate", "--speed", str(speed), "--rate", str(rate), *warm_args],
                        env,
                    )
                )
            url = f"{base}/wall?token={wall_token}"
            banner = (
                f"\nLianqin demo is running: {url}\n"
                f"  (the wall's kiosk link; sign in at {base}/login for the other pages)\n"
                f"{accounts_banner(created)}"
                f"  data: {settings.data_dir}\n{history_line}  Ctrl-C stops everything.\n"
            )
            run_web(settings, redis_url, settings.host, settings.port, banner=banner)
        except KeyboardInterrupt:
            click.echo("stopping…")
        finally:
            terminate(children)
    lock.close()  # after the embedded Redis stopped: a next demo starts on a quiet directory
