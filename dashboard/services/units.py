"""Units: latest positions in Redis (a GEO set plus a hash) and in the database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.contract.entries import PingMessage
from dashboard.models import Unit
from dashboard.services.cases import iso, ms
from dashboard.streams import Keys
from dashboard.text import as_str

# Moves a unit only when the ping is newer than what the hash holds, atomically, so
# that two workers applying pings of one unit out of order never move it backwards.
# GEOADD refuses latitudes beyond ±85.05° (Web Mercator), which the contract allows:
# such a unit is in the hash but leaves the GEO set (no "nearest" search reaches it)
# instead of failing the whole batch's script.
_LATEST_LUA = """
local moved = {}
for i = 1, #ARGV, 5 do
  local id = ARGV[i]
  local ts = tonumber(ARGV[i + 1])
  local cur = redis.call('HGET', KEYS[2], id)
  local cur_ts = -1
  if cur then
    local ok, decoded = pcall(cjson.decode, cur)
    if ok and decoded['ts'] then cur_ts = tonumber(decoded['ts']) end
  end
  if ts > cur_ts then
    local added = redis.pcall('GEOADD', KEYS[1], ARGV[i + 2], ARGV[i + 3], id)
    if type(added) == 'table' and added['err'] then redis.call('ZREM', KEYS[1], id) end
    redis.call('HSET', KEYS[2], id, ARGV[i + 4])
    moved[#moved + 1] = id
  end
end
return moved
"""


class LatestPositions:
    """Read and write the latest unit positions kept in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._script = client.register_script(_LATEST_LUA)

    def update(
        self, latest: Mapping[str, PingMessage], info: Mapping[str, Mapping[str, Any]]
    ) -> list[str]:
        """Move the units whose ping is newer than the stored one; return the ids moved."""
        records = {unit: unit_live_record(p, info.get(unit, {})) for unit, p in latest.items()}
        return self.put(latest, records, {u: encode_record(r) for u, r in records.items()})

    def put(
        self,
        latest: Mapping[str, PingMessage],
        records: Mapping[str, Mapping[str, Any]],
        encoded: Mapping[str, str],
    ) -> list[str]:
        """``update`` with the live records already built and encoded (the worker's hot path,
        which reuses the same JSON text in its delta)."""
        if not latest:
            return []
        args: list[Any] = []
        for unit, ping in latest.items():
            args.extend((unit, records[unit]["ts"], ping.lon, ping.lat, encoded[unit]))
        moved = self._script(keys=[self.keys.units_geo, self.keys.units_latest], args=args)
        return [as_str(m) for m in moved]

    def all(self) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(self.keys.units_latest)
        out: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            unit = as_str(key)
            try:
                out[unit] = json.loads(value)
            except ValueError:
                continue
        return out

    def get(self, unit: str) -> dict[str, Any] | None:
        raw = self.client.hget(self.keys.units_latest, unit)
        return None if raw is None else json.loads(raw)

    def near(
        self, lat: float, lon: float, radius_m: float, count: int = 50
    ) -> list[tuple[str, float]]:
        """Units within ``radius_m`` of a point, nearest first, with distances in metres."""
        hits: Any = self.client.geosearch(
            self.keys.units_geo,
            longitude=lon,
            latitude=lat,
            radius=radius_m,
            unit="m",
            sort="ASC",
            count=count,
            withdist=True,
        )
        return [(as_str(h[0]), float(h[1])) for h in hits]


def unit_live_record(ping: PingMessage, info: Mapping[str, Any]) -> dict[str, Any]:
    """The compact live shape of a unit (window.lianqin.units, the Redis hash)."""
    return {
        "id": ping.unit,
        "lat": round(ping.lat, 6),
        "lon": round(ping.lon, 6),
        "ts": int(ping.ts.timestamp() * 1000),
        "status": ping.status or info.get("status") or "available",
        "kind": info.get("kind") or "unknown",
        "name": info.get("name") or ping.unit,
        "heading": ping.heading,
        "speed": ping.speed,
    }


def encode_record(record: Mapping[str, Any]) -> str:
    """A live record as compact JSON (the Redis hash's values, a delta's units)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def unit_info(session: Session, unit_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = session.execute(
        select(Unit.id, Unit.kind, Unit.name, Unit.status).where(Unit.id.in_(unit_ids))
    ).tuples()
    return {uid: {"kind": kind, "name": name, "status": status} for uid, kind, name, status in rows}


def unit_to_api(unit: Unit, *, zone: tzinfo, now: datetime, stale_s: int) -> dict[str, Any]:
    online = unit.last_ts is not None and now - unit.last_ts <= timedelta(seconds=stale_s)
    return {
        "id": unit.id,
        "name": unit.name,
        "kind": unit.kind,
        "department": unit.department_id,
        "zone": unit.zone_code,
        "status": unit.status,
        "lat": unit.last_lat,
        "lon": unit.last_lon,
        "ts": iso(unit.last_ts, zone),
        "speed": unit.last_speed,
        "heading": unit.last_heading,
        "accuracy": unit.last_accuracy,
        "online": online,
    }


def list_units(
    session: Session, *, zone: tzinfo, now: datetime, stale_s: int
) -> list[dict[str, Any]]:
    return [
        unit_to_api(u, zone=zone, now=now, stale_s=stale_s)
        for u in session.scalars(select(Unit).order_by(Unit.id))
    ]


def live_units(session: Session) -> list[dict[str, Any]]:
    """Units with a known position, in the live shape (used when Redis has none yet)."""
    out = []
    for u in session.scalars(select(Unit).where(Unit.last_ts.is_not(None))):
        out.append(
            {
                "id": u.id,
                "lat": u.last_lat,
                "lon": u.last_lon,
                "ts": ms(u.last_ts),
                "status": u.status,
                "kind": u.kind,
                "name": u.name,
                "heading": u.last_heading,
                "speed": u.last_speed,
            }
        )
    return out
