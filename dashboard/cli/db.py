"""`lianqin db`: the database schema, and the demo district's data."""

from __future__ import annotations

import click

from dashboard.cli.common import ensure_schema, settings_of


@click.group()
def db() -> None:
    """Database schema and data."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Bring the schema up to date (Alembic)."""
    from dashboard.db import upgrade

    settings = settings_of(ctx.find_root())
    upgrade(settings, revision)
    click.echo(f"database schema at {revision}")


@db.command("seed-demo")
@click.pass_context
def dbseed_demo(ctx: click.Context) -> None:
    """Load the demo district (grids, zones, units, departments)."""
    from dashboard.demo.supervisor import seed_demo

    settings = settings_of(ctx.find_root())
    ensure_schema(settings)
    counts = seed_demo(settings, settings.redis_url)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
