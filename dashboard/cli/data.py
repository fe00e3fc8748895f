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

CRS_CHOICES = ["wgs84", "cgcs2000", "gcj02", "bd09"]
CRS_HELP = (
    "The datum of the file's coordinates, stored as WGS-84: gcj02 (Amap, Tencent) and bd09 "
    "(Baidu) are converted; cgcs2000 (Tianditu, surveying bureaus) is WGS-84 to within "
    "centimetres and taken as it is."
)


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


def _source_zone(fmt: str, source_tz: str | None) -> Any:
    """The zone the file's offset-less times are read in: ``--source-tz``, else the format's
    city (311 files), else none (our CSV's times carry their offset)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from dashboard.imports.cases import SOURCE_TZ_DEFAULTS

    name = source_tz or SOURCE_TZ_DEFAULTS.get(fmt)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.ClickException(
            f"--source-tz {name!r} is not a time zone (an IANA name: America/New_York, "
            "Asia/Shanghai)"
        ) from None


def _read_cases(fmt: str, file: Path, limit: int | None, source_tz: str | None = None) -> Any:
    """The file read as ``fmt``; a header that is not the format's stops the command with one
    line on stderr (exit 1) rather than a "skipped" line per row."""
    from dashboard.imports.cases import IMPORTERS, HeaderError

    zone = _source_zone(fmt, source_tz)
    try:
        return IMPORTERS[fmt](file, limit=limit, source_tz=zone)
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
@click.option(
    "--source-tz",
    help="The IANA time zone the file's times are local to when they carry no offset "
    "(default: the 311 formats' city, America/New_York; lianqin-csv: none, offsets required). "
    "Stored in UTC; the pages show them in LIANQIN_TZ.",
)
@click.pass_context
def import_cases(
    ctx: click.Context, file: Path, fmt: str, limit: int | None, source_tz: str | None
) -> None:
    """Load past cases with their timelines straight into the database (idempotent)."""
    from sqlalchemy import select

    from dashboard.geo import GridIndex, GridShape
    from dashboard.imports.cases import load_cases
    from dashboard.models import Grid
    from dashboard.sla import load_policy
    from dashboard.streams import now_utc

    settings = settings_of(ctx.find_root())
    result = _read_cases(fmt, file, limit, source_tz)
    zone = _source_zone(fmt, source_tz)
    click.echo(
        f"times read as {zone.key} local time, stored in UTC; shown in {settings.tz} (LIANQIN_TZ)"
        if zone is not None
        else "times carry their UTC offset; stored in UTC",
        err=True,
    )
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
    type=click.Choice(CRS_CHOICES),
    default="wgs84",
    show_default=True,
    help=CRS_HELP,
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


def _bump_grids_version(settings: Any) -> None:
    """Running workers reload their grid and zone index (`lq:grids:version`)."""
    from dashboard.redis_server import redis_client
    from dashboard.streams import keys_for

    with running_redis(settings) as url:
        client = redis_client(url)
        try:
            client.incr(keys_for(settings).grids_version)
        finally:
            client.close()


def _geojson_file(file: Path) -> Any:
    import json

    try:
        return json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"{file} is not JSON: {exc}") from exc


def _district_step(ctx: click.Context, file: Path, parse: Any, write: Any) -> dict[str, int]:
    """Parse ``file`` whole, then write it in one transaction; every problem on stderr at once."""
    from dashboard.imports.district import DistrictImportError

    settings = settings_of(ctx.find_root())
    try:
        rows = parse()
        with open_database(ctx, settings) as database, database.write() as session:
            result: dict[str, int] = write(session, rows)
    except DistrictImportError as exc:
        raise click.ClickException(f"{file} was not loaded:\n{exc}") from exc
    return result


@import_.command("zones")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crs", type=click.Choice(CRS_CHOICES), default="wgs84", show_default=True,
              help=CRS_HELP)  # fmt: skip
@click.pass_context
def import_zones(ctx: click.Context, file: Path, crs: str) -> None:
    """Replace the patrol zones with those of a GeoJSON FeatureCollection (code, name,
    name_en, station)."""
    from dashboard.imports.district import parse_zones, replace_zones

    data = _geojson_file(file)
    result = _district_step(ctx, file, lambda: parse_zones(data, crs=crs), replace_zones)
    _bump_grids_version(settings_of(ctx.find_root()))
    click.echo(
        f"loaded {result['zones']} patrol zones (replacing {result['replaced']}); "
        f"{result['grids_regrouped']} grids took the zone they lie in"
    )


def _facility_command(kind: str, plural: str, doc: str) -> click.Command:
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--crs", type=click.Choice(CRS_CHOICES), default="wgs84", show_default=True,
                  help=CRS_HELP)  # fmt: skip
    @click.pass_context
    def command(ctx: click.Context, file: Path, crs: str) -> None:
        from dashboard.imports.district import parse_facilities, replace_facilities

        data = _geojson_file(file)
        result = _district_step(
            ctx, file, lambda: parse_facilities(data, kind=kind, crs=crs),
            lambda session, rows: replace_facilities(session, kind, rows),
        )  # fmt: skip
        click.echo(f"loaded {result[kind]} {plural} (replacing {result['replaced']})")

    command.__doc__ = doc
    return import_.command(plural)(command)


_facility_command(
    "station", "stations",
    "Replace the police / patrol stations (Points: zone, name; id defaults to ST-<zone>).",
)  # fmt: skip
_facility_command("camera", "cameras", "Replace the cameras (Points: id, name).")
_facility_command("sensor", "sensors", "Replace the IoT sensors (Points: id, name).")


@import_.command("basemap")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crs", type=click.Choice(CRS_CHOICES), default="wgs84", show_default=True,
              help=CRS_HELP)  # fmt: skip
@click.pass_context
def import_basemap(ctx: click.Context, file: Path, crs: str) -> None:
    """Replace the offline base map's roads and water (Lines: kind arterial/road/water, name)."""
    from dashboard.imports.district import parse_basemap, replace_basemap

    data = _geojson_file(file)
    result = _district_step(ctx, file, lambda: parse_basemap(data, crs=crs), replace_basemap)
    click.echo(f"loaded {result['features']} roads and water (replacing {result['replaced']})")


@import_.command("departments")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_departments(ctx: click.Context, file: Path) -> None:
    """Add or update departments from a CSV file (id,name[,name_en,kind])."""
    from dashboard.imports.district import parse_departments, upsert_departments

    result = _district_step(ctx, file, lambda: parse_departments(file), upsert_departments)
    click.echo(f"{result['departments']} departments ({result['created']} new)")


@import_.command("units")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_units(ctx: click.Context, file: Path) -> None:
    """Add or update units from a CSV file (id,name,kind[,department_id,zone_code]); their
    positions come from their pings."""
    from dashboard.imports.district import parse_units, upsert_units

    result = _district_step(ctx, file, lambda: parse_units(file), upsert_units)
    click.echo(f"{result['units']} units ({result['created']} new)")
