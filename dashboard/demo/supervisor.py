"""The demo's processes: one demo per data directory, its secret key, accounts and kiosk token,
the district seeded, and the worker and simulator it runs as child processes
(``lianqin demo``, dashboard/cli/demo.py)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from dashboard.config import Settings
from dashboard.vocabulary import ROLES, Role

DEMO_WALL_TOKEN = "demo-wall"  # noqa: S105 - the token's name, not a secret
DEMO_WALL_TOKEN_FILE = "kiosk_token"  # noqa: S105 - a file name
DEMO_LOCK_FILE = "demo.lock"
HISTORY_MARKER = "history.json"  # the demo's history was written into this data dir's database
WARM_MAX_HOURS = 6.0  # the simulator's warm start covers at most this much of today


class DemoRunning(RuntimeError):
    """Another demo holds the data directory (the message says where it runs)."""


def demo_accounts(settings: Settings) -> tuple[list[tuple[str, str, str]], str]:
    """One user per role (passwords returned only when created) and the wall's kiosk token,
    the same across restarts (so the printed link keeps working) unless it was revoked."""
    from dashboard.db import make_database
    from dashboard.services import accounts
    from dashboard.streams import now_utc

    created: list[tuple[str, str, str]] = []
    database = make_database(settings)
    try:
        with database.write() as session:
            for role in ROLES:
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
            wall = (Role.VIEWER, DEMO_WALL_TOKEN)
            if principal is None or (principal.role, principal.name) != wall:
                existing = {t.name: t for t in accounts.list_tokens(session)}
                if DEMO_WALL_TOKEN in existing and existing[DEMO_WALL_TOKEN].revoked_at is None:
                    accounts.revoke_token(
                        session, name=DEMO_WALL_TOKEN, now=now_utc(), actor="demo"
                    )
                _, token = accounts.create_token(
                    session, name=DEMO_WALL_TOKEN, role=Role.VIEWER, actor="demo"
                )
                write_private(saved, token)
    finally:
        database.dispose()
    return created, token


def write_private(path: Path, text: str) -> None:
    """Write a secret readable by its owner only (created 600, never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def accounts_banner(created: list[tuple[str, str, str]]) -> str:
    if not created:
        return (
            "  Demo users (viewer, operator, lead, leader, admin) exist already; their passwords\n"
            "  were printed when they were created (reset one: lianqin users passwd NAME).\n"
        )
    lines = ["  Demo users (passwords shown this once):"]
    lines += [f"    {name:<9} {role:<9} {password}" for name, role, password in created]
    return "\n".join(lines) + "\n"


def demo_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def demo_lock(data_dir: Path) -> Any:
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
        raise DemoRunning(
            f"a Lianqin demo is already running on {data_dir}"
            + (f" ({holder})" if holder else "")
            + "; stop it first (Ctrl-C where it runs), or start this one with another "
            "--data-dir"
        ) from None
    return handle


def note_holder(lock: Any, text: str) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(text)
    lock.flush()


def child_env(settings: Settings, redis_url: str, secret: str) -> dict[str, str]:
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


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    from dashboard.redis_server import _die_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", *args],
        env=env,
        preexec_fn=_die_with_parent,
    )


def terminate(children: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
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


def seed_demo(settings: Settings, redis_url: str | None) -> dict[str, int]:
    """Seed the district; tell running workers to reload their grid index (if Redis is known)."""
    from dashboard.db import make_database
    from dashboard.demo.district import generate_district, seed_district
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


@dataclass(frozen=True)
class WarmPlan:
    """The simulator's warm start: ``cases`` over the last ``hours`` of today."""

    cases: int
    hours: float


def warm_plan(
    now: datetime,
    tz: tzinfo,
    *,
    per_minute: float,
    warm: int,
    since: datetime | None = None,
    max_hours: float = WARM_MAX_HOURS,
) -> WarmPlan:
    """A warm start as dense as the live simulator's own arrivals (``per_minute``,
    simulator.wall_rate): at most ``warm`` cases, over the span before ``now`` that the
    simulator fills with that many on average — never before today's midnight, ``since``
    (the newest case already there) or ``max_hours`` ago. The demo's history ends where this
    span begins, so that today's count so far is what the rate brings, like yesterday's."""
    from dashboard.demo.simulator import HOURLY_FACTOR
    from dashboard.services.kpis import local_midnight

    floor = max(local_midnight(now.astimezone(tz).date(), tz), now - timedelta(hours=max_hours))
    if since is not None:
        floor = max(floor, since)
    t, total = now, 0.0
    while t > floor and total < warm:
        step = max(floor, t - timedelta(minutes=1))
        total += (
            per_minute
            * HOURLY_FACTOR[step.astimezone(tz).hour]
            * ((t - step).total_seconds() / 60.0)
        )
        t = step
    return WarmPlan(
        cases=min(warm, round(total)), hours=max(1 / 60, (now - t).total_seconds() / 3600)
    )


def read_history_marker(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / HISTORY_MARKER
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def newest_case(settings: Settings) -> datetime | None:
    """When the newest case in the database was reported (None: there is none)."""
    from sqlalchemy import func, select

    from dashboard.db import make_database
    from dashboard.models import Case

    database = make_database(settings)
    try:
        with database.read() as session:
            newest = session.scalar(select(func.max(Case.reported_at)))
    finally:
        database.dispose()
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)  # SQLite keeps naive UTC
    return newest


def write_demo_history(
    settings: Settings,
    *,
    now: datetime,
    until: datetime,
    days: int,
    per_minute: float,
    speed: float,
    bar: Any,
) -> dict[str, Any]:
    """The demo's history (dashboard/demo/history.py: generate_demo_history) in one
    transaction, then the marker that says it is there (a restart does not write it again).
    ``bar(length)`` returns a progress bar (a context manager with ``update``)."""
    import contextlib

    from dashboard.db import make_database
    from dashboard.demo.district import generate_district
    from dashboard.demo.history import generate_demo_history
    from dashboard.sla import load_policy

    started = time.monotonic()
    database = make_database(settings)
    try:
        with contextlib.ExitStack() as stack, database.write() as session:
            progress: list[Any] = []

            def total(n: int) -> None:
                progress.append(stack.enter_context(bar(n)))

            counts = generate_demo_history(
                session, generate_district(), now=now, until=until, zone=settings.zone,
                policy=load_policy(settings.sla_file), days=days, per_minute=per_minute,
                speed=speed, progress=lambda m: progress[0].update(m), total=total,
            )  # fmt: skip
    finally:
        database.dispose()
    marker = {
        "days": days,
        "cases": counts["cases"],
        "pings": counts["pings"],
        "until": until.isoformat(),
        "cases_per_minute": per_minute,
        "written_at": now.isoformat(),
        "seconds": round(time.monotonic() - started, 1),
    }
    (settings.data_dir / HISTORY_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return marker
