"""The stream contract v1 (see CONTRACT.md / the README): parsing and validation.

Pure functions: they take the raw field/value pairs of one stream entry (bytes, as
Redis returns them) and return a typed message or raise `ContractError` with a
machine code, the offending field and a human reason. Rules that need the current
state of a case (required fields on create, transitions) live in `lifecycle`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dashboard.geo import CRS_VALUES, to_wgs84

CONTRACT_VERSION = 1

STATUSES: tuple[str, ...] = (
    "reported",
    "registered",
    "dispatched",
    "on_scene",
    "resolved",
    "closed",
    "cancelled",
)
SOURCES: tuple[str, ...] = (
    "hotline_12345",
    "police_110",
    "grid_app",
    "video_ai",
    "iot",
    "patrol",
    "walk_in",
    "other",
)
UNIT_STATUSES: tuple[str, ...] = ("available", "busy", "off_duty")

INCIDENT_FIELDS = frozenset(
    {
        "id", "status", "ts", "lat", "lon", "crs", "category", "priority", "source",
        "title", "description", "address", "grid", "unit", "department", "due",
    }
)  # fmt: skip
PING_FIELDS = frozenset(
    {"unit", "lat", "lon", "ts", "crs", "speed", "heading", "accuracy", "status"}
)
TEXT_LIMITS = {"title": 200, "description": 4000, "address": 300}

ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_INT_RE = re.compile(r"\d{1,16}")
# C0 controls except tab, newline and carriage return; also DEL. PostgreSQL cannot
# store NUL in text at all, and the others only ever come from broken producers.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_RAW_BYTES = 64 * 1024


class ContractError(ValueError):
    """An entry that breaks the contract; `code` is stable, `reason` is for people."""

    def __init__(self, code: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class IncidentMessage:
    id: str
    status: str
    ts: datetime
    lat: float | None = None  # WGS-84 after conversion
    lon: float | None = None
    category: str | None = None
    priority: int | None = None
    source: str | None = None
    title: str | None = None
    description: str | None = None
    address: str | None = None
    grid: str | None = None
    unit: str | None = None
    department: str | None = None
    due: datetime | None = None
    crs: str = "wgs84"
    raw: dict[str, str] = field(default_factory=dict, compare=False)

    def updates(self) -> dict[str, object]:
        """The optional fields this message sets (present and non-empty)."""
        names = (
            "category", "priority", "source", "title", "description", "address",
            "grid", "unit", "department", "due",
        )  # fmt: skip
        out: dict[str, object] = {
            n: getattr(self, n) for n in names if getattr(self, n) is not None
        }
        if self.lat is not None and self.lon is not None:
            out["lat"] = self.lat
            out["lon"] = self.lon
        return out


@dataclass(frozen=True, slots=True)
class PingMessage:
    unit: str
    lat: float  # WGS-84 after conversion
    lon: float
    ts: datetime
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    status: str | None = None


def decode_fields(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """Decode a raw entry as strict UTF-8; an empty value counts as an absent field."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        try:
            name = key.decode("utf-8") if isinstance(key, bytes) else key
        except UnicodeDecodeError:
            raise ContractError("invalid_utf8", "a field name is not valid UTF-8") from None
        if isinstance(value, bytes):
            if len(value) > _MAX_RAW_BYTES:
                raise ContractError(
                    "too_long", f"{name} is {len(value)} bytes, far over any limit", name
                )
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ContractError("invalid_utf8", f"{name} is not valid UTF-8", name) from None
        else:
            text = value
            if len(text) > _MAX_RAW_BYTES:
                raise ContractError("too_long", f"{name} is far over any limit", name)
        if text != "":
            out[name] = text
    return out


def _check_fields(values: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ContractError(
            "unknown_field",
            f"unknown field {unknown[0]!r} (contract v{CONTRACT_VERSION} fields: "
            f"{', '.join(sorted(allowed))})",
            unknown[0],
        )


def _required(values: Mapping[str, str], name: str) -> str:
    if name not in values:
        raise ContractError("missing_field", f"missing required field {name!r}", name)
    return values[name]


def parse_ident(value: str, name: str) -> str:
    if not ID_RE.fullmatch(value):
        raise ContractError(
            "bad_id",
            f"{name} must be 1-64 characters of A-Z a-z 0-9 . _ : -, got {value[:80]!r}",
            name,
        )
    return value


def parse_time(
    value: str, name: str, *, now: datetime | None = None, skew_s: int | None
) -> datetime:
    """ISO 8601 with a UTC offset, or integer epoch milliseconds; returned in UTC.

    With ``skew_s`` set, a time more than that many seconds after ``now`` is refused
    (a producer with a broken clock); nothing before 2000 is accepted either.
    """
    if _INT_RE.fullmatch(value):
        try:
            parsed = datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ContractError(
                "bad_time", f"{name} epoch milliseconds out of range", name
            ) from None
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ContractError(
                "bad_time",
                f"{name} must be ISO 8601 with a UTC offset or epoch milliseconds, "
                f"got {value[:60]!r}",
                name,
            ) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ContractError(
                "bad_time", f"{name} needs a UTC offset (e.g. +08:00), got {value[:60]!r}", name
            )
        parsed = parsed.astimezone(UTC)
    if parsed < _MIN_TS:
        raise ContractError("bad_time", f"{name} is before 2000-01-01: {value[:60]!r}", name)
    if skew_s is not None:
        ref = now or datetime.now(UTC)
        if parsed > ref + timedelta(seconds=skew_s):
            raise ContractError(
                "future_time",
                f"{name} {parsed.isoformat()} is more than {skew_s} s in the future "
                "(check the producer's clock)",
                name,
            )
    return parsed


def _decimal(value: str, name: str) -> float:
    if not _DECIMAL_RE.fullmatch(value):
        raise ContractError(
            "bad_number", f"{name} must be a decimal number, got {value[:40]!r}", name
        )
    number = float(value)
    if not math.isfinite(number):
        raise ContractError("bad_number", f"{name} must be finite, got {value[:40]!r}", name)
    return number


def _coordinates(values: Mapping[str, str]) -> tuple[float, float]:
    lat = _decimal(values["lat"], "lat")
    lon = _decimal(values["lon"], "lon")
    if not -90.0 <= lat <= 90.0:
        raise ContractError("bad_coordinates", f"lat must be within -90..90, got {lat}", "lat")
    if not -180.0 <= lon <= 180.0:
        raise ContractError("bad_coordinates", f"lon must be within -180..180, got {lon}", "lon")
    crs = values.get("crs", "wgs84")
    if crs not in CRS_VALUES:
        raise ContractError(
            "bad_crs", f"crs must be one of {', '.join(CRS_VALUES)}, got {crs[:20]!r}", "crs"
        )
    return to_wgs84(lat, lon, crs)


def _text(values: Mapping[str, str], name: str) -> str | None:
    text = values.get(name)
    if text is None:
        return None
    limit = TEXT_LIMITS[name]
    if len(text) > limit:
        raise ContractError(
            "too_long", f"{name} is {len(text)} characters, the limit is {limit}", name
        )
    if _CONTROL_RE.search(text):
        raise ContractError("control_character", f"{name} contains a control character", name)
    return text


def _choice(values: Mapping[str, str], name: str, allowed: Collection[str]) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise ContractError(
            f"unknown_{name}", f"unknown {name} {value[:40]!r} (one of: {', '.join(allowed)})", name
        )
    return value


def parse_incident(
    fields: Mapping[bytes | str, bytes | str],
    *,
    categories: Collection[str],
    now: datetime | None = None,
    skew_s: int | None = 900,
) -> IncidentMessage:
    """Validate one `lq:incidents` entry."""
    values = decode_fields(fields)
    _check_fields(values, INCIDENT_FIELDS)
    case_id = parse_ident(_required(values, "id"), "id")
    status = _required(values, "status")
    if status not in STATUSES:
        raise ContractError(
            "unknown_status",
            f"unknown status {status[:40]!r} (one of: {', '.join(STATUSES)})",
            "status",
        )
    ts = parse_time(_required(values, "ts"), "ts", now=now, skew_s=skew_s)
    lat = lon = None
    if "lat" in values or "lon" in values:
        if "lat" not in values or "lon" not in values:
            missing = "lon" if "lat" in values else "lat"
            raise ContractError(
                "missing_field", f"{missing} must come together with the other coordinate", missing
            )
        lat, lon = _coordinates(values)
    elif "crs" in values:
        _choice(values, "crs", CRS_VALUES)
    priority = None
    if "priority" in values:
        raw = values["priority"]
        if raw not in ("1", "2", "3", "4"):
            raise ContractError(
                "bad_priority",
                f"priority must be 1 (urgent) to 4 (low), got {raw[:20]!r}",
                "priority",
            )
        priority = int(raw)
    ident = {n: parse_ident(values[n], n) for n in ("grid", "unit", "department") if n in values}
    due = parse_time(values["due"], "due", skew_s=None) if "due" in values else None
    return IncidentMessage(
        id=case_id,
        status=status,
        ts=ts,
        lat=lat,
        lon=lon,
        category=_choice(values, "category", categories),
        priority=priority,
        source=_choice(values, "source", SOURCES),
        title=_text(values, "title"),
        description=_text(values, "description"),
        address=_text(values, "address"),
        grid=ident.get("grid"),
        unit=ident.get("unit"),
        department=ident.get("department"),
        due=due,
        crs=values.get("crs", "wgs84"),
        raw=values,
    )


def _non_negative(values: Mapping[str, str], name: str, upper: float | None = None) -> float | None:
    if name not in values:
        return None
    number = _decimal(values[name], name)
    if number < 0 or (upper is not None and number > upper):
        bound = f"0..{upper:g}" if upper is not None else "≥ 0"
        raise ContractError("out_of_range", f"{name} must be {bound}, got {number:g}", name)
    return number


def parse_ping(
    fields: Mapping[bytes | str, bytes | str],
    *,
    now: datetime | None = None,
    skew_s: int | None = 900,
) -> PingMessage:
    """Validate one `lq:pings` entry."""
    values = decode_fields(fields)
    _check_fields(values, PING_FIELDS)
    unit = parse_ident(_required(values, "unit"), "unit")
    _required(values, "lat")
    _required(values, "lon")
    lat, lon = _coordinates(values)
    ts = parse_time(_required(values, "ts"), "ts", now=now, skew_s=skew_s)
    return PingMessage(
        unit=unit,
        lat=lat,
        lon=lon,
        ts=ts,
        speed=_non_negative(values, "speed"),
        heading=_non_negative(values, "heading", 360.0),
        accuracy=_non_negative(values, "accuracy"),
        status=_choice(values, "status", UNIT_STATUSES),
    )
