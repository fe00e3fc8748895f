"""`lianqin serve` and `lianqin worker`: the web server and an ingest worker."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from dashboard.cli.common import (
    ensure_schema,
    log,
    run_web,
    running_redis,
    server_options,
    settings_of,
    stop_on_signals,
)


@click.command()
@server_options
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the web server (wall, API, live push)."""
    settings = settings_of(ctx, host=host, port=port)
    if settings.secret_key is None:
        raise click.ClickException(
            "LIANQIN_SECRET_KEY is not set. Generate one with\n"
            '  python -c "import secrets; print(secrets.token_hex(32))"\n'
            "and set it for every web instance (the demo generates its own)."
        )

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # stop serving, then close Redis (the embedded one) cleanly

    ensure_schema(settings)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # even when started with SIGINT ignored (nohup, &)
    with running_redis(settings) as url:
        try:
            run_web(
                settings,
                url,
                settings.host,
                settings.port,
                banner=f"Lianqin: http://{settings.host}:{settings.port}/wall",
            )
        except KeyboardInterrupt:
            log.info("web server stopped")


@click.command()
@click.option("--name", help="Consumer name in the group (default: host-pid).")
@click.pass_context
def worker(ctx: click.Context, name: str | None) -> None:
    """Run an ingest worker (a consumer-group member)."""
    from dashboard.live.publisher import Publisher
    from dashboard.runtime import Runtime
    from dashboard.worker.loop import Worker

    settings = settings_of(ctx)
    ensure_schema(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    with running_redis(settings) as url:
        runtime = Runtime.open(settings, redis_url=url, worker=True)
        try:
            Worker(runtime, Publisher(url, runtime.keys), consumer=name).run(stop)
        finally:
            runtime.close()
