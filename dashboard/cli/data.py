"""`lianqin simulate`, `replay` and `import cases|grids`: data into the streams or the database."""

from __future__ import annotations

import csv
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from dashboard.cli.common import open_database, running_redis, settings_of, stop_on_signals


@click.command()
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Simulated time runs this much faster.",
)
@click.option(
    "--rate", type=float, default=1.0, show_default=True, help="New cases per simulated minute."
)
@click.option(
    "--warm",
    type=int,
    default=0,
    show_default=True,
    help="Cases to create at start, in various stages.",
)
@click.option(
    "--warm-hours",
    type=float,
    default=6.0,
    show_default=True,
    help="The warm start's cases lie in the last H hours of today.",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: random).")
@click.option(
    "--history",
    type=int,
    default=None,
    help="Instead: write N past cases straight into the database (bulk) and exit.",
)
@click.option("--history-days", type=int, default=400, show_default=True, help="Days of history.")
@click.option(
    "--ping-hours",
    type=int,
    default=24,
    show_default=True,
    help="With --history: unit tracks (a ping a minute) for the last H hours.",
)
@click.pass_context
def simulate(
    ctx: click.Context,
    speed: float,
    rate: float,
    warm: int,
    warm_hours: float,
    seed: int | None,
    history: int | None,
    history_days: int,
    ping_hours: int,
) -> None:
    """Feed the streams like real producers: cases, their progress, unit pings."""
    from dashboard.demo.district import generate_district

    if history is not None:
        _simulate_history(ctx, history, history_days, ping_hours, seed)
        return
    from dashboard.demo.simulator import Simulator
    from dashboard.redis_server import redis_client
    from dashboard.streams import Producer

    settings = settings_of(ctx)
    stop = threading.Event()
    stop_on_signals(stop)
    with running_redis(settings) as url:
        client = redis_client(url)
        sim = Simulator(
            Producer(client, settings),
            generate_district(),
            speed=speed,
            seed=seed,
            rate_per_min=rate,
        )
        if warm:
            sim.warm_start(warm, hours=warm_hours)
        sim.run(stop)


def _simulate_history(
    ctx: click.Context, n: int, days: int, ping_hours: int, seed: int | None
) -> None:
    """`simulate --history N`: past cases straight into the database (dashboard/demo/history.py)."""
    from dashboard.demo.district import generate_district
    from dashboard.demo.history import generate_history
    from dashboard.sla import load_policy
    from dashboard.streams import now_utc

    settings = settings_of(ctx)
    started = time.monotonic()
    with (
        open_database(ctx, settings) as database,
        click.progressbar(length=n, label="history cases", file=sys.stderr) as bar,
        database.write() as session,
    ):
        counts = generate_history(
            session, generate_district(), n=n, now=now_utc(), zone=settings.zone,
            policy=load_policy(settings.sla_file), days=days, seed=seed or 1,
            ping_hours=ping_hours, progress=bar.update,
        )  # fmt: skip
    click.echo(
        f"{counts['cases']} history cases over {days} days and {counts['pings']} unit pings "
        f"written in {time.monotonic() - started:.1f} s (ids H{seed or 1}-…; again adds nothing)"
    )


@click.command()
@click.argument("kind", type=click.Choice(["boston311"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--limit", type=int, help="Only the first N cases.")
@click.pass_context
def replay(ctx: click.Context, kind: str, file: Path, limit: int | None) -> None:
    """Replay a public 311 file through the streams, as a producer would (oldest first)."""
    from dashboard.imports.cases import counts
    from dashboard.redis_server import redis_client
    from dashboard.streams import Producer

    settings = settings_of(ctx)
    result = _read_cases(kind, file, limit)
    for line, reason in result.problems:
        click.echo(f"line {line}: skipped: {reason}", err=True)
    if not result.cases and result.problems:
        raise click.ClickException(f"nothing replayed: all {len(result.problems)} rows skipped")
    entries = result.entries_by_time()
    with running_redis(settings) as url:
        client = redis_client(url)
        try:
            producer = Producer(client, settings)
            pipe = client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(
                    producer.keys.incidents,
                    producer.fields(entry),
                    maxlen=settings.stream_maxlen,
                    approximate=True,
                )
            pipe.execute()
        finally:
            client.close()
    noted = sum(1 for c in result.cases if c.notes)
    click.echo(
        f"{len(result.cases)} cases ({len(entries)} entries) written to "
        f"{settings.stream('incidents')}; final statuses {counts(result.cases)}; "
        f"{noted} with notes, {len(result.problems)} rows skipped"
    )


def _read_cases(fmt: str, file: Path, limit: int | None) -> Any:
    """The file read as ``fmt``; a header that is not the format's stops the command with one
    line on stderr (exit 1) rather than a "skipped" line per row."""
    from dashboard.imports.cases import IMPORTERS, HeaderError

    try:
        return IMPORTERS[fmt](file, limit=limit)
    except HeaderError as exc:
        raise click.ClickException(str(exc)) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise click.ClickException(f"{file}: not a UTF-8 CSV file ({exc})") from None


@click.group("import")
def import_() -> None:
    """Load reference data from files."""


@import_.command("cases")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["boston311", "nyc311", "lianqin-csv"]),
    help="The file's layout (README: the briefing view, historical import).",
)
@click.option("--limit", type=int, help="Only the first N cases.")
@click.pass_context
def import_cases(ctx: click.Context, file: Path, fmt: str, limit: int | None) -> None:
    """Load past cases with their timelines straight into the database (idempotent)."""
    from sqlalchemy import select

    from dashboard.geo import GridIndex, GridShape
    from dashboard.imports.cases import load_cases
    from dashboard.models import Grid
    from dashboard.sla import load_policy
    from dashboard.streams import now_utc

    settings = settings_of(ctx.find_root())
    result = _read_cases(fmt, file, limit)
    with open_database(ctx, settings) as database:
        with database.read() as session:
            rows = session.execute(select(Grid.code, Grid.geometry).where(Grid.level == "grid"))
            grids = GridIndex(GridShape(code, geom) for code, geom in rows.tuples())
        with (
            click.progressbar(
                length=len(result.cases), label=f"{fmt} cases", file=sys.stderr
            ) as bar,
            database.write() as session,
        ):
            summary = load_cases(
                session, result.cases, source=fmt, categories=settings.categories,
                policy=load_policy(settings.sla_file), grids=grids, now=now_utc(),
                progress=bar.update,
            )  # fmt: skip
    for line, reason in result.problems:
        click.echo(f"line {line}: skipped: {reason}", err=True)
    for case_id, reason in summary.skipped:
        click.echo(f"case {case_id}: skipped: {reason}", err=True)
    noted = sum(1 for c in result.cases if c.notes)
    click.echo(
        f"{summary.loaded} cases loaded ({summary.entries} entries), {summary.already} already "
        f"there, {summary.updated} updated, "
        f"{len(result.problems) + len(summary.skipped)} skipped; {noted} with notes"
    )
    skipped = len(result.problems) + len(summary.skipped)
    if skipped and not (summary.loaded or summary.already or summary.updated):
        raise click.ClickException(f"nothing imported: all {skipped} rows skipped")


@import_.command("grids")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--crs",
    type=click.Choice(["wgs84", "gcj02", "bd09"]),
    default="wgs84",
    show_default=True,
    help="The datum of the file's coordinates (stored as WGS-84).",
)
@click.option("--keep-basemap", is_flag=True, help="Keep the old roads and water of the base map.")
@click.pass_context
def import_grids(ctx: click.Context, file: Path, crs: str, keep_basemap: bool) -> None:
    """Replace the district's grids with those of a GeoJSON FeatureCollection."""
    import json

    from dashboard.imports.grids import GridImportError, parse_grid_collection, replace_grids
    from dashboard.redis_server import redis_client
    from dashboard.streams import keys_for

    settings = settings_of(ctx.find_root())
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"{file} is not JSON: {exc}") from exc
    try:
        rows = parse_grid_collection(data, crs=crs)
    except GridImportError as exc:
        raise click.ClickException(f"{file} was not loaded:\n{exc}") from exc
    with open_database(ctx, settings) as database, database.write() as session:
        result = replace_grids(session, rows, keep_basemap=keep_basemap)
    with running_redis(settings) as url:  # running workers reload their grid index
        client = redis_client(url)
        try:
            client.incr(keys_for(settings).grids_version)
        finally:
            client.close()
    click.echo(
        f"loaded {result['grids']} grids and {result['micro_grids']} micro-grids "
        f"(replacing {result['replaced']}); workers reload their grid index"
    )
