"""The `lianqin` command line."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from dashboard.config import Settings, load_settings

log = logging.getLogger("lianqin")


def setup_logging(level: str) -> None:
    from dashboard.ops import JsonFormatter, RedactingFilter

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    try:
        json_logs = load_settings().log_format == "json"
    except Exception:  # invalid settings are reported by the command itself
        json_logs = False
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no passwords or tokens in any log line
        if json_logs:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("engineio").setLevel(logging.WARNING)
    logging.getLogger("socketio").setLevel(logging.WARNING)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return load_settings(**base)
    except Exception as exc:  # pydantic's ValidationError: a clear message, not a traceback
        raise click.ClickException(f"invalid settings: {exc}") from exc


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Overrides LIANQIN_DATA_DIR.",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, log_level: str) -> None:
    """Lianqin (联勤): the live command-center dashboard."""
    setup_logging(log_level)
    ctx.obj = {"data_dir": data_dir} if data_dir else {}


def _server_options(func: Any) -> Any:
    func = click.option("--port", type=int, help="Default: LIANQIN_PORT or 8050.")(func)
    func = click.option("--host", help="Default: LIANQIN_HOST or 127.0.0.1.")(func)
    return func


@contextlib.contextmanager
def _redis(settings: Settings) -> Iterator[str]:
    """The configured Redis, or the embedded one (started here and stopped on exit if we own it)."""
    from dashboard.redis_server import resolve_redis_url

    url, owned = resolve_redis_url(settings)
    try:
        yield url
    finally:
        if owned is not None:
            owned.stop()


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _run_web(
    settings: Settings, redis_url: str, host: str, port: int, *, banner: str | None
) -> None:
    from dashboard.app import create_app, socketio_of

    app = create_app(settings, redis_url=redis_url)
    sio = socketio_of(app)
    if banner:
        click.echo(banner, err=False)
    sio.run(
        app, host=host, port=port, allow_unsafe_werkzeug=True, use_reloader=False, log_output=False
    )


# -- serve / worker / simulate ----------------------------------------------------------------
@main.command()
@_server_options
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the web server (wall, API, live push)."""
    settings = _settings(ctx, host=host, port=port)
    if settings.secret_key is None:
        raise click.ClickException(
            "LIANQIN_SECRET_KEY is not set. Generate one with\n"
            '  python -c "import secrets; print(secrets.token_hex(32))"\n'
            "and set it for every web instance (the demo generates its own)."
        )

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # stop serving, then close Redis (the embedded one) cleanly

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # even when started with SIGINT ignored (nohup, &)
    with _redis(settings) as url:
        try:
            _run_web(
                settings,
                url,
                settings.host,
                settings.port,
                banner=f"Lianqin: http://{settings.host}:{settings.port}/wall",
            )
        except KeyboardInterrupt:
            log.info("web server stopped")


@main.command()
@click.option("--name", help="Consumer name in the group (default: host-pid).")
@click.pass_context
def worker(ctx: click.Context, name: str | None) -> None:
    """Run an ingest worker (a consumer-group member)."""
    from dashboard.realtime import Publisher
    from dashboard.runtime import Runtime
    from dashboard.worker import Worker

    settings = _settings(ctx)
    stop = threading.Event()
    _stop_on_signals(stop)
    with _redis(settings) as url:
        runtime = Runtime.open(settings, redis_url=url, worker=True)
        try:
            Worker(runtime, Publisher(url, runtime.keys), consumer=name).run(stop)
        finally:
            runtime.close()


@main.command()
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
    seed: int | None,
    history: int | None,
    history_days: int,
    ping_hours: int,
) -> None:
    """Feed the streams like real producers: cases, their progress, unit pings."""
    from dashboard.district import generate_district

    if history is not None:
        _simulate_history(ctx, history, history_days, ping_hours, seed)
        return
    from dashboard.redis_server import redis_client
    from dashboard.simulator import Simulator
    from dashboard.streams import Producer

    settings = _settings(ctx)
    stop = threading.Event()
    _stop_on_signals(stop)
    with _redis(settings) as url:
        client = redis_client(url)
        sim = Simulator(
            Producer(client, settings),
            generate_district(),
            speed=speed,
            seed=seed,
            rate_per_min=rate,
        )
        if warm:
            sim.warm_start(warm)
        sim.run(stop)


def _simulate_history(
    ctx: click.Context, n: int, days: int, ping_hours: int, seed: int | None
) -> None:
    """`simulate --history N`: past cases straight into the database (dashboard/history.py)."""
    from dashboard.db import make_database
    from dashboard.district import generate_district
    from dashboard.history import generate_history
    from dashboard.sla import load_policy
    from dashboard.streams import now_utc

    settings = _settings(ctx)
    database = make_database(settings)
    started = time.monotonic()
    try:
        with (
            click.progressbar(length=n, label="history cases", file=sys.stderr) as bar,
            database.write() as session,
        ):
            counts = generate_history(
                session, generate_district(), n=n, now=now_utc(), zone=settings.zone,
                policy=load_policy(settings.sla_file), days=days, seed=seed or 1,
                ping_hours=ping_hours, progress=bar.update,
            )  # fmt: skip
    finally:
        database.dispose()
    click.echo(
        f"{counts['cases']} history cases over {days} days and {counts['pings']} unit pings "
        f"written in {time.monotonic() - started:.1f} s (ids H{seed or 1}-…; again adds nothing)"
    )


# -- db -------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema and data."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Bring the schema up to date (Alembic)."""
    from dashboard.db import upgrade

    settings = _settings(ctx.find_root())
    upgrade(settings, revision)
    click.echo(f"database schema at {revision}")


@db.command("seed-demo")
@click.pass_context
def db_seed_demo(ctx: click.Context) -> None:
    """Load the demo district (grids, zones, units, departments)."""
    settings = _settings(ctx.find_root())
    counts = _seed_demo(settings, settings.redis_url)
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


def _seed_demo(settings: Settings, redis_url: str | None) -> dict[str, int]:
    """Seed the district; tell running workers to reload their grid index (if Redis is known)."""
    from dashboard.db import make_database
    from dashboard.district import generate_district, seed_district
    from dashboard.redis_server import redis_client
    from dashboard.streams import keys_for

    database = make_database(settings)
    try:
        with database.write() as session:
            counts = seed_district(session, generate_district())
    finally:
        database.dispose()
    if redis_url:
        client = redis_client(redis_url)
        try:
            client.incr(keys_for(settings).grids_version)
        finally:
            client.close()
    return counts


# -- users and tokens -----------------------------------------------------------------------
@contextlib.contextmanager
def _accounts_session(ctx: click.Context) -> Iterator[Any]:
    """A write session on the configured database, with account errors shown plainly."""
    from dashboard.db import make_database
    from dashboard.services.accounts import AccountError

    database = make_database(_settings(ctx.find_root()))
    try:
        with database.write() as session:
            yield session
    except AccountError as exc:
        raise click.ClickException(exc.reason) from exc
    finally:
        database.dispose()


def _announce_revocation(ctx: click.Context) -> None:
    """Make every web process re-check its open sockets now (they also do every
    LIANQIN_SOCKET_RECHECK_S). No Redis running means no web process to tell."""
    from dashboard.redis_server import EmbeddedRedis, redis_client
    from dashboard.security import announce_revocation
    from dashboard.streams import keys_for

    settings = _settings(ctx.find_root())
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


@main.group()
def users() -> None:
    """Accounts: viewer, operator, lead, leader, admin."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice(["viewer", "operator", "lead", "leader", "admin"])
)
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


@main.group()
def tokens() -> None:
    """API and kiosk tokens (Authorization: Bearer …, or /wall?token=…)."""


@tokens.command("create")
@click.option("--name", required=True, help="e.g. hall-screen, cad-gateway")
@click.option("--role", default="viewer", show_default=True,
              type=click.Choice(["viewer", "operator", "lead", "leader", "admin"]))  # fmt: skip
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


# -- dead letters ---------------------------------------------------------------------------
@main.group()
def dead() -> None:
    """The dead-letter stream (lq:dead): inspect, re-drive, purge rejected entries."""


def _dead_selection(
    client: Any, keys: Any, ids: tuple[str, ...], all_: bool, stream: str | None, code: str | None
) -> list[Any]:
    from dashboard import deadletters

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

    settings = _settings(ctx.find_root())
    with _redis(settings) as url:
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

    from dashboard import deadletters

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

    from dashboard import deadletters

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
    from dashboard import deadletters

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
    from dashboard import deadletters

    with _dead_client(ctx) as (client, keys, _):
        letters = _dead_selection(client, keys, ids, all_, stream, code)
        if not ids and not yes:
            click.confirm(f"delete {len(letters)} dead letter(s)?", abort=True)
        removed = deadletters.purge(client, keys, [letter.id for letter in letters])
        click.echo(f"{removed} dead letter(s) purged")


# -- demo -----------------------------------------------------------------------------------
DEMO_ROLES = ("viewer", "operator", "lead", "leader", "admin")
DEMO_WALL_TOKEN = "demo-wall"  # noqa: S105 - the token's name, not a secret
DEMO_WALL_TOKEN_FILE = "kiosk_token"  # noqa: S105 - a file name
DEMO_LOCK_FILE = "demo.lock"


def _demo_accounts(settings: Settings) -> tuple[list[tuple[str, str, str]], str]:
    """One user per role (passwords returned only when created) and the wall's kiosk token,
    the same across restarts (so the printed link keeps working) unless it was revoked."""
    from dashboard.db import make_database
    from dashboard.services import accounts
    from dashboard.streams import now_utc

    created: list[tuple[str, str, str]] = []
    database = make_database(settings)
    try:
        with database.write() as session:
            for role in DEMO_ROLES:
                if accounts.get_user(session, username=role) is None:
                    password = accounts.generate_password()
                    accounts.create_user(
                        session, username=role, role=role, password=password, actor="demo"
                    )
                    created.append((role, role, password))
            # The plaintext is kept in the data dir (mode 600, like the secret key): only a
            # hash is in the database, and the demo must print the same link after a restart.
            saved = settings.data_dir / DEMO_WALL_TOKEN_FILE
            token = saved.read_text(encoding="utf-8").strip() if saved.exists() else ""
            principal = accounts.token_principal(session, plaintext=token) if token else None
            if principal is None or principal.role != "viewer" or principal.name != DEMO_WALL_TOKEN:
                existing = {t.name: t for t in accounts.list_tokens(session)}
                if DEMO_WALL_TOKEN in existing and existing[DEMO_WALL_TOKEN].revoked_at is None:
                    accounts.revoke_token(
                        session, name=DEMO_WALL_TOKEN, now=now_utc(), actor="demo"
                    )
                _, token = accounts.create_token(
                    session, name=DEMO_WALL_TOKEN, role="viewer", actor="demo"
                )
                _write_private(saved, token)
    finally:
        database.dispose()
    return created, token


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by its owner only (created 600, never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _accounts_banner(created: list[tuple[str, str, str]]) -> str:
    if not created:
        return (
            "  Demo users (viewer, operator, lead, leader, admin) exist already; their passwords\n"
            "  were printed when they were created (reset one: lianqin users passwd NAME).\n"
        )
    lines = ["  Demo users (passwords shown this once):"]
    lines += [f"    {name:<9} {role:<9} {password}" for name, role, password in created]
    return "\n".join(lines) + "\n"


# -- demo (process group) -----------------------------------------------------------------
def _demo_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        _write_private(path, secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def _demo_lock(data_dir: Path) -> Any:
    """One demo per data directory: an advisory lock held as long as this process lives
    (the kernel drops it when the process dies, however it dies). A second demo on the same
    directory would share its Redis and database and mix both simulators' data."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / DEMO_LOCK_FILE).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise click.ClickException(
            f"a Lianqin demo is already running on {data_dir}"
            + (f" ({holder})" if holder else "")
            + "; stop it first (Ctrl-C where it runs), or start this one with another "
            "--data-dir"
        ) from None
    return handle


def _note_holder(lock: Any, text: str) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(text)
    lock.flush()


def _child_env(settings: Settings, redis_url: str, secret: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            "LIANQIN_DATA_DIR": str(settings.data_dir),
            "LIANQIN_SECRET_KEY": secret,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    from dashboard.redis_server import _die_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", *args],
        env=env,
        preexec_fn=_die_with_parent,
    )


def _terminate(children: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


@main.command()
@_server_options
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

    settings = _settings(ctx, host=host, port=port)
    lock = _demo_lock(settings.data_dir)
    base = f"http://{settings.host}:{settings.port}"
    _note_holder(lock, f"pid {os.getpid()}, {base}/wall")
    secret = _demo_secret(settings.data_dir)
    settings = settings.model_copy(update={"secret_key": SecretStr(secret)})
    children: list[subprocess.Popen[bytes]] = []

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell that starts a program in the background (nohup, `&` in a
    # script) leaves SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with _redis(settings) as redis_url:
        try:
            upgrade(settings)
            counts = _seed_demo(settings, redis_url)
            log.info("demo district: %s", counts)
            created, wall_token = _demo_accounts(settings)
            env = _child_env(settings, redis_url, secret)
            children.append(_spawn(["worker", "--name", "demo-worker"], env))
            if not no_simulator:
                children.append(
                    _spawn(
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
                f"{_accounts_banner(created)}"
                f"  data: {settings.data_dir}\n  Ctrl-C stops everything.\n"
            )
            _run_web(settings, redis_url, settings.host, settings.port, banner=banner)
        except KeyboardInterrupt:
            click.echo("stopping…")
        finally:
            _terminate(children)
    lock.close()  # after the embedded Redis stopped: a next demo starts on a quiet directory


# -- replay / import ------------------------------------------------------------------------
@main.command()
@click.argument("kind", type=click.Choice(["boston311"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--limit", type=int, help="Only the first N cases.")
@click.pass_context
def replay(ctx: click.Context, kind: str, file: Path, limit: int | None) -> None:
    """Replay a public 311 file through the streams, as a producer would (oldest first)."""
    from dashboard.importers import IMPORTERS, counts
    from dashboard.redis_server import redis_client
    from dashboard.streams import Producer

    settings = _settings(ctx)
    result = IMPORTERS[kind](file, limit=limit)
    for line, reason in result.problems:
        click.echo(f"line {line}: skipped: {reason}", err=True)
    entries = result.entries_by_time()
    with _redis(settings) as url:
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


@main.group("import")
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

    from dashboard.db import make_database
    from dashboard.geo import GridIndex, GridShape
    from dashboard.importers import IMPORTERS, load_cases
    from dashboard.models import Grid
    from dashboard.sla import load_policy
    from dashboard.streams import now_utc

    settings = _settings(ctx.find_root())
    result = IMPORTERS[fmt](file, limit=limit)
    database = make_database(settings)
    try:
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
    finally:
        database.dispose()
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

    from dashboard.db import make_database
    from dashboard.redis_server import redis_client
    from dashboard.services.grids import GridImportError, parse_grid_collection, replace_grids
    from dashboard.streams import keys_for

    settings = _settings(ctx.find_root())
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"{file} is not JSON: {exc}") from exc
    try:
        rows = parse_grid_collection(data, crs=crs)
    except GridImportError as exc:
        raise click.ClickException(f"{file} was not loaded:\n{exc}") from exc
    database = make_database(settings)
    try:
        with database.write() as session:
            result = replace_grids(session, rows, keep_basemap=keep_basemap)
    finally:
        database.dispose()
    with _redis(settings) as url:  # running workers reload their grid index
        client = redis_client(url)
        try:
            client.incr(keys_for(settings).grids_version)
        finally:
            client.close()
    click.echo(
        f"loaded {result['grids']} grids and {result['micro_grids']} micro-grids "
        f"(replacing {result['replaced']}); workers reload their grid index"
    )


if __name__ == "__main__":
    main()
