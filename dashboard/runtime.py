"""What a process needs at run time: settings, the database, Redis, and helpers bound to them.

Built once per process by the app factory, the worker or the CLI, and handed
down explicitly (no module-level globals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from dashboard.config import Settings
from dashboard.db import Database, make_database
from dashboard.live.deltas import DeltaLog
from dashboard.redis_server import redis_client
from dashboard.services.units import LatestPositions
from dashboard.sla import SlaPolicy, load_policy
from dashboard.streams import Keys, keys_for


@dataclass
class Runtime:
    settings: Settings
    redis_url: str
    db: Database
    redis: redis.Redis
    keys: Keys
    policy: SlaPolicy
    latest: LatestPositions = field(init=False)
    deltas: DeltaLog = field(init=False)

    def __post_init__(self) -> None:
        self.latest = LatestPositions(self.redis, self.keys)
        self.deltas = DeltaLog(self.redis, self.keys, self.settings.delta_maxlen)

    @classmethod
    def open(
        cls, settings: Settings, *, redis_url: str | None = None, worker: bool = False
    ) -> Runtime:
        url = redis_url or settings.redis_url
        if not url:
            raise RuntimeError(
                "no Redis URL: set REDIS_URL or start through the CLI (embedded Redis)"
            )
        return cls(
            settings=settings,
            redis_url=url,
            db=make_database(settings, worker=worker),
            redis=redis_client(url),
            keys=keys_for(settings),
            policy=load_policy(settings.sla_file),
        )

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        self.redis.close()
        self.db.dispose()
