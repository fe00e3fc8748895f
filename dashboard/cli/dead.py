"""`lianqin dead`: inspect, re-drive and purge the dead-letter stream `lq:dead`
(dashboard/contract/deadletters.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from dashboard.cli.common import running_redis, settings_of
from dashboard.config import Settings


@click.group()
def dead() -> None:
    """The dead-letter stream (lq:dead): inspect, re-drive, purge rejected entries."""


def _dead_selection(
    client: Any, keys: Any, ids: tuple[str, ...], all_: bool, stream: str | None, code: str | None
) -> list[Any]:
    from dashboard.contract import deadletters

    if ids and (all_ or stream or code):
        raise click.UsageError("give entry ids, or --all / --stream / --code, not both")
    if not ids and not (all_ or stream or code):
        raise click.UsageError("give entry ids, or --all (optionally with --stream / --code)")
    if not ids:
        return list(deadletters.iterate(client, keys, stream=stream, code=code))
    found = []
    for dead_id in ids:
        letter = deadletters.get(client, keys, dead_id)
        if letter is None:
            raise click.ClickException(f"no dead letter {dead_id}")
        found.append(letter)
    return found


@contextlib.contextmanager
def _dead_client(ctx: click.Context) -> Iterator[tuple[Any, Any, Settings]]:
    from dashboard.redis_server import redis_client
    from dashboard.streams import keys_for

    settings = settings_of(ctx.find_root())
    with running_redis(settings) as url:
        client = redis_client(url)
        try:
            yield client, keys_for(settings), settings
        finally:
            client.close()


_filters = [
    click.option("--stream", help="Only entries from this stream (incidents, pings, changes)."),
    click.option("--code", help="Only this reason code (e.g. bad_coordinates)."),
]


@dead.command("list")
@_filters[0]
@_filters[1]
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def dead_list(
    ctx: click.Context, stream: str | None, code: str | None, limit: int, as_json: bool
) -> None:
    """List dead letters, oldest first: id, stream, code, reason."""
    import json

    from dashboard.contract import deadletters

    with _dead_client(ctx) as (client, keys, _):
        total = 0
        for letter in deadletters.iterate(client, keys, stream=stream, code=code):
            total += 1
            if total > limit:
                continue
            if as_json:
                click.echo(json.dumps(letter.to_json(full=False), ensure_ascii=False))
            else:
                m = letter.meta
                click.echo(
                    f"{letter.id:<17} {m.get('stream', ''):<14} {m.get('code', ''):<22} "
                    f"{m.get('reason', '')[:90]}"
                )
        if not as_json:
            click.echo(f"{total} dead letter(s)" + (f", {limit} shown" if total > limit else ""))


@dead.command("show")
@click.argument("dead_id")
@click.pass_context
def dead_show(ctx: click.Context, dead_id: str) -> None:
    """Show one dead letter with its reason and original fields (JSON)."""
    import json

    from dashboard.contract import deadletters

    with _dead_client(ctx) as (client, keys, _):
        letter = deadletters.get(client, keys, dead_id)
        if letter is None:
            raise click.ClickException(f"no dead letter {dead_id}")
        click.echo(json.dumps(letter.to_json(), ensure_ascii=False, indent=2))


@dead.command("retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter (with the filters).")
@_filters[0]
@_filters[1]
@click.pass_context
def dead_retry(
    ctx: click.Context, ids: tuple[str, ...], all_: bool, stream: str | None, code: str | None
) -> None:
    """Add the original fields again to their source stream (after fixing the cause, e.g. a
    missing category added to LIANQIN_CATEGORIES) and remove the dead letters."""
    from dashboard.contract import deadletters

    with _dead_client(ctx) as (client, keys, settings):
        letters = _dead_selection(client, keys, ids, all_, stream, code)
        for letter in letters:
            try:
                new_id = deadletters.retry(client, keys, settings, letter)
            except deadletters.RetryError as exc:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"{letter.id} -> {letter.stream} {new_id}")
        click.echo(f"{len(letters)} dead letter(s) re-added")


@dead.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter (with the filters).")
@_filters[0]
@_filters[1]
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def dead_purge(
    ctx: click.Context,
    ids: tuple[str, ...],
    all_: bool,
    stream: str | None,
    code: str | None,
    yes: bool,
) -> None:
    """Delete dead letters for good."""
    from dashboard.contract import deadletters

    with _dead_client(ctx) as (client, keys, _):
        letters = _dead_selection(client, keys, ids, all_, stream, code)
        if not ids and not yes:
            click.confirm(f"delete {len(letters)} dead letter(s)?", abort=True)
        removed = deadletters.purge(client, keys, [letter.id for letter in letters])
        click.echo(f"{removed} dead letter(s) purged")
