"""What the command groups share: settings from the command line, Redis (configured or
embedded), the database, signals, the web server."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dashboard.config import Settings, load_settings

if TYPE_CHECKING:
    from dashboard.db import Database

log = logging.getLogger("lianqin")


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return load_settings(**base)
    except Exception as exc:  # pydantic's ValidationError: a clear message, not a traceback
        raise click.ClickException(f"invalid settings: {exc}") from exc


def _shared_data_dir(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["data_dir"] = value  # the group's dict: every command sees it


def _shared_log_level(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        from dashboard.logs import setup_logging

        setup_logging(value)
        logging.getLogger().setLevel(getattr(logging, value.upper(), logging.INFO))


def shared_options(command: click.Command) -> click.Command:
    """The group's own options (--data-dir, --log-level) on ``command`` and every command under
    it too, so that they may follow the command (`lianqin demo --data-dir X`) as well as
    precede it; given in both places, the later one wins."""
    command.params += [
        click.Option(
            ["--data-dir"],
            type=click.Path(file_okay=False, path_type=Path),
            expose_value=False,
            is_eager=True,
            callback=_shared_data_dir,
            help="Overrides LIANQIN_DATA_DIR (also before the command).",
        ),
        click.Option(
            ["--log-level"],
            expose_value=False,
            is_eager=True,
            callback=_shared_log_level,
            help="Log level (also before the command); default INFO.",
        ),
    ]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            shared_options(sub)
    return command


def server_options(func: Any) -> Any:
    func = click.option("--port", type=int, help="Default: LIANQIN_PORT or 8050.")(func)
    func = click.option("--host", help="Default: LIANQIN_HOST or 127.0.0.1.")(func)
    return func


@contextlib.contextmanager
def running_redis(settings: Settings) -> Iterator[str]:
    """The configured Redis, or the embedded one (started here and stopped on exit if we own it)."""
    from dashboard.redis_server import resolve_redis_url

    url, owned = resolve_redis_url(settings)
    try:
        yield url
    finally:
        if owned is not None:
            owned.stop()


@contextlib.contextmanager
def open_database(ctx: click.Context, settings: Settings | None = None) -> Iterator[Database]:
    """The configured database (of ``settings``, else of the command line) for one command,
    disposed of when it ends."""
    from dashboard.db import make_database

    database = make_database(settings or settings_of(ctx.find_root()))
    try:
        yield database
    finally:
        database.dispose()


def stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _DropRecords(logging.Filter):
    def __init__(self, *texts: str) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


def run_web(
    settings: Settings, redis_url: str, host: str, port: int, *, banner: str | None
) -> None:
    from dashboard.web.app import create_app, socketio_of

    app = create_app(settings, redis_url=redis_url)
    sio = socketio_of(app)
    if banner:
        click.echo(banner, err=False)
    # Werkzeug's threaded server on purpose (the demo, `lianqin serve`; deployments run
    # gunicorn, README: Deployment): its "production deployment" warning on every start
    # says nothing here.
    logging.getLogger("werkzeug").addFilter(_DropRecords("production deployment"))
    try:
        sio.run(
            app, host=host, port=port, allow_unsafe_werkzeug=True, use_reloader=False,
            log_output=False,
        )  # fmt: skip
    finally:
        quiet_shutdown(app)


def quiet_shutdown(app: Any) -> None:
    """The web server stopped: end its background threads before Redis goes (the demo's
    embedded Redis stops right after), so that a clean stop prints nothing alarming. The
    socket guard stops; Socket.IO's Redis listener has no stop, so its "Cannot receive from
    redis" retries — certain once Redis is gone, harmless as the process ends — are not
    logged any more."""
    guard = app.extensions.get("lianqin_socket_guard")
    if guard is not None:
        guard.shutdown()
    for name in ("socketio", "socketio.server", "socketio.client", "engineio", "engineio.server"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
