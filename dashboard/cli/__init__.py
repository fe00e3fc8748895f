"""The `lianqin` command line: the click group ``main`` and its command groups.

Each module is a thin command group over the logic it calls (serve: the web server and the
worker; db; accounts: users and tokens; dead: dead letters; demo; data: simulate, replay,
import); ``common`` holds what they share. The groups are added here, so that no command module
imports this one (no import cycle).
"""

from __future__ import annotations

from pathlib import Path

import click

from dashboard.cli import accounts, data, db, dead, demo, serve
from dashboard.cli.common import shared_options
from dashboard.logs import setup_logging


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Overrides LIANQIN_DATA_DIR.",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, log_level: str) -> None:
    """Lianqin (联勤): the live command-center dashboard.

    --data-dir and --log-level go before the command or after it (`lianqin demo --data-dir X`).
    """
    setup_logging(log_level)
    ctx.obj = {"data_dir": data_dir} if data_dir else {}


for command in (
    serve.serve,
    serve.worker,
    data.simulate,
    data.replay,
    data.import_,
    db.db,
    accounts.users,
    accounts.tokens,
    dead.dead,
    demo.demo,
):
    main.add_command(shared_options(command))
