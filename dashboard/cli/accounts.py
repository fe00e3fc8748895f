"""`lianqin users` and `lianqin tokens`: accounts and API / kiosk tokens."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from dashboard.cli.common import log, open_database, settings_of
from dashboard.services.accounts import AccountError
from dashboard.vocabulary import ROLES, Role


@contextlib.contextmanager
def _accounts_session(ctx: click.Context) -> Iterator[Any]:
    """A write session on the configured database, with account errors shown plainly."""
    try:
        with open_database(ctx) as database, database.write() as session:
            yield session
    except AccountError as exc:
        raise click.ClickException(exc.reason) from exc


def _announce_revocation(ctx: click.Context) -> None:
    """Make every web process re-check its open sockets now (they also do every
    LIANQIN_SOCKET_RECHECK_S). No Redis running means no web process to tell."""
    from dashboard.redis_server import EmbeddedRedis, redis_client
    from dashboard.streams import keys_for
    from dashboard.web.security import announce_revocation

    settings = settings_of(ctx.find_root())
    embedded = EmbeddedRedis(settings.data_dir)
    url = settings.redis_url or (embedded.url if embedded.running() else None)
    if url is None:
        return
    client = redis_client(url, timeout=5.0)
    try:
        announce_revocation(client, keys_for(settings))
    except Exception as exc:  # the change is committed; sockets will be re-checked anyway
        log.warning("revocation not announced: %s", exc.__class__.__name__)
    finally:
        client.close()


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Accounts: viewer, operator, lead, leader, admin."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--display-name", default="", help="Shown in the console and the audit trail.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_add(
    ctx: click.Context, name: str, role: str, display_name: str, password_stdin: bool
) -> None:
    """Create a user (the password is asked for, or read from stdin)."""
    from dashboard.services.accounts import create_user

    password = _read_password(password_stdin)
    with _accounts_session(ctx) as session:
        create_user(
            session,
            username=name,
            role=role,
            password=password,
            display_name=display_name,
            actor="cli",
        )
    click.echo(f"user {name} ({role}) created")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List users with their roles and state."""
    from dashboard.services.accounts import list_users

    with _accounts_session(ctx) as session:
        for user in list_users(session):
            state = "disabled" if user.disabled else "active"
            last = (
                user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
            )
            click.echo(f"{user.username:<24} {user.role:<9} {state:<9} last login {last}")


@users.command("disable")
@click.argument("name")
@click.pass_context
def users_disable(ctx: click.Context, name: str) -> None:
    """Disable a user: their sessions stop working at once."""
    from dashboard.services.accounts import set_disabled

    with _accounts_session(ctx) as session:
        set_disabled(session, username=name, disabled=True, actor="cli")
    _announce_revocation(ctx)
    click.echo(f"user {name} disabled")


@users.command("enable")
@click.argument("name")
@click.pass_context
def users_enable(ctx: click.Context, name: str) -> None:
    """Enable a disabled user again."""
    from dashboard.services.accounts import set_disabled

    with _accounts_session(ctx) as session:
        set_disabled(session, username=name, disabled=False, actor="cli")
    click.echo(f"user {name} enabled")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a user's password (signs out their sessions)."""
    from dashboard.services.accounts import set_password

    password = _read_password(password_stdin)
    with _accounts_session(ctx) as session:
        set_password(session, username=name, password=password, actor="cli")
    _announce_revocation(ctx)
    click.echo(f"password of {name} changed")


@click.group()
def tokens() -> None:
    """API and kiosk tokens (Authorization: Bearer …, or /wall?token=…)."""


@tokens.command("create")
@click.option("--name", required=True, help="e.g. hall-screen, cad-gateway")
@click.option("--role", default=Role.VIEWER.value, show_default=True, type=click.Choice(ROLES))
@click.pass_context
def tokens_create(ctx: click.Context, name: str, role: str) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from dashboard.services.accounts import create_token

    with _accounts_session(ctx) as session:
        _, plaintext = create_token(session, name=name, role=role, actor="cli")
    click.echo(plaintext)


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> None:
    """List tokens (names, roles, state; never the tokens themselves)."""
    from dashboard.services.accounts import list_tokens

    with _accounts_session(ctx) as session:
        for token in list_tokens(session):
            state = "revoked" if token.revoked_at else "active"
            used = (
                token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            )
            click.echo(
                f"{token.name:<24} {token.role:<9} {state:<8} {token.prefix}…  last used {used}"
            )


@tokens.command("revoke")
@click.argument("name")
@click.pass_context
def tokens_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token: requests and screens using it are refused at once."""
    from dashboard.services.accounts import revoke_token
    from dashboard.streams import now_utc

    with _accounts_session(ctx) as session:
        revoke_token(session, name=name, now=now_utc(), actor="cli")
    _announce_revocation(ctx)
    click.echo(f"token {name} revoked")
