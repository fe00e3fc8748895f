"""`lianqin demo`: everything on one machine (the processes: dashboard/demo/supervisor.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import click
from pydantic import SecretStr

from dashboard.cli.common import log, run_web, running_redis, server_options, settings_of
from dashboard.demo.supervisor import (
    DemoRunning,
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


@click.command()
@server_options
@click.option(
    "--speed", type=float, default=10.0, show_default=True, help="Simulator speed factor."
)
@click.option(
    "--rate", type=float, default=1.5, show_default=True, help="New cases per simulated minute."
)
@click.option("--warm", type=int, default=300, show_default=True, help="Cases created at start.")
@click.option("--no-simulator", is_flag=True, help="Run without the live simulator.")
@click.pass_context
def demo(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    speed: float,
    rate: float,
    warm: int,
    no_simulator: bool,
) -> None:
    """All on one machine: embedded Redis, SQLite, the demo district, simulator, worker, web."""
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
            env = child_env(settings, redis_url, secret)
            children.append(spawn(["worker", "--name", "demo-worker"], env))
            if not no_simulator:
                children.append(
                    spawn(
                        [
                            "simulate",
                            "--speed",
                            str(speed),
                            "--rate",
                            str(rate),
                            "--warm",
                            str(warm),
                        ],
                        env,
                    )
                )
            url = f"{base}/wall?token={wall_token}"
            banner = (
                f"\nLianqin demo is running: {url}\n"
                f"  (the wall's kiosk link; sign in at {base}/login for the other pages)\n"
                f"{accounts_banner(created)}"
                f"  data: {settings.data_dir}\n  Ctrl-C stops everything.\n"
            )
            run_web(settings, redis_url, settings.host, settings.port, banner=banner)
        except KeyboardInterrupt:
            click.echo("stopping…")
        finally:
            terminate(children)
    lock.close()  # after the embedded Redis stopped: a next demo starts on a quiet directory
