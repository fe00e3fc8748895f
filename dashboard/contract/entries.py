"""The stream contract v1 (README, docs/contract.md): parsing and validation.

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
from dashboard.times import EARLIEST, LATEST, NO_DEADLINE
from dashboard.vocabulary import STATUSES, UNIT_STATUSES

CONTRACT_VERSION = 1

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

# ASCII only, everywhere: Python's ``\d``, ``int()`` and ``float()`` also accept other
# scripts' digits (``٢٩.٣٧``), which the contract's "plain decimals" do not allow.
# The id rule (case, unit, department, grid ids), as a pattern for every layer that states it:
# this module, the HTTP API's types (dashboard/api/types.py) and grid imports.
ID_MAX = 64
ID_CHARS = "A-Za-z0-9._:-"
ID_PATTERN = f"[{ID_CHARS}]{{1,{ID_MAX}}}"
ID_RULE = f"1-{ID_MAX} characters of A-Z a-z 0-9 . _ : -"  # the rule in words, for reasons
ID_RE = re.compile(ID_PATTERN, re.ASCII)
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
_INT_RE = re.compile(r"[0-9]{1,16}", re.ASCII)
# C0 controls except tab, newline and carriage return; also DEL. PostgreSQL cannot
# store NUL in text at all, and the others only ever come from broken producers.
# CONTROL_CHARS is that character class's body, for the layers that state it again (the
# HTTP API's text types, the OpenAPI patterns).
CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_CONTROL_RE = re.compile(f"[{CONTROL_CHARS}]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_RAW_BYTES = 64 * 1024
# A dead letter's reason and field, and every log line about an entry, stay this short
# whatever the entry holds (a field name may be megabytes long).
REASON_MAX = 300
FIELD_MAX = 64


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and made encodable (lone surrogates escaped)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def show(name: str) -> str:
    """A field name (or any producer text) as it may appear in a reason: short, quoted."""
    return repr(name[:FIELD_MAX]) + ("…" if len(name) > FIELD_MAX else "")


class ContractError(ValueError):
    """An entry that breaks the contract; `code` is stable, `reason` is for people.

    The reason and the field are bounded and always encodable, whatever the entry held:
    they go into dead letters and log lines.
    """

    def __init__(self, code: str, reason: str, field: str | None = None) -> None:
        reason = printable(reason, REASON_MAX)
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.field = None if field is None else printable(field, FIELD_MAX)


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


def _utf8(value: bytes | str, what: str, name: str | None) -> str:
    """Strict UTF-8: bytes must decode, and text (from an in-process producer) must encode
    (a lone surrogate such as ``"\\ud800"`` cannot: no database or Redis would take it)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError("invalid_utf8", f"{what} is not valid UTF-8", name) from None
    if not isinstance(value, str):
        raise ContractError("bad_value", f"{what} is not text", name)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ContractError(
                "invalid_utf8", f"{what} holds text that cannot be encoded as UTF-8", name
            ) from None
    return value


def decode_fields(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """Decode a raw entry as strict UTF-8; an empty value counts as an absent field."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        name = _utf8(key, "a field name", None)
        if isinstance(value, bytes | str) and len(value) > _MAX_RAW_BYTES:
            unit = "bytes" if isinstance(value, bytes) else "characters"
            raise ContractError(
                "too_long", f"{show(name)} is {len(value)} {unit}, far over any limit", name
            )
        text = _utf8(value, show(name), name)
        if text != "":
            out[name] = text
    return out


def _check_fields(values: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ContractError(
            "unknown_field",
            f"unknown field {show(unknown[0])} (contract v{CONTRACT_VERSION} fields: "
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


def _time_error(name: str, value: str, why: str) -> ContractError:
    return ContractError("bad_time", f"{name} {why}, got {value[:60]!r}", name)


def parse_time(
    value: str,
    name: str,
    *,
    now: datetime | None = None,
    skew_s: int | None,
    no_deadline: bool = False,
) -> datetime:
    """ISO 8601 with a UTC offset, or integer epoch milliseconds; returned in UTC.

    Every time accepted lies in the window every layer can show (``dashboard.times``):
    from 2000-01-01 to before 2200-01-01 UTC. With ``skew_s`` set, a time more than that
    many seconds after ``now`` is refused too (a producer with a broken clock). With
    ``no_deadline`` (``due``), a time in year 9999 — ``9999-12-31T23:59:59Z``, the usual
    "no deadline" — is accepted and returned as ``NO_DEADLINE``.
    """
    if _INT_RE.fullmatch(value):
        try:
            parsed = _EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            raise _time_error(name, value, "epoch milliseconds out of range") from None
    else:
        text = value.strip()
        if not text.isascii():
            raise _time_error(name, value, "must be ISO 8601 in ASCII digits")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _time_error(
                name, value, "must be ISO 8601 with a UTC offset or epoch milliseconds"
            ) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise _time_error(name, value, "needs a UTC offset (e.g. +08:00)")
    if no_deadline and parsed.year == 9999:
        return NO_DEADLINE
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: outside what datetime holds
        raise _time_error(name, value, "is out of range") from None
    if parsed < EARLIEST:
        raise _time_error(name, value, "is before 2000-01-01")
    if parsed >= LATEST:
        raise _time_error(
            name,
            value,
            "is after 2200-01-01" + (" (a year-9999 due means no deadline)" if no_deadline else ""),
        )
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
    due = None
    if "due" in values:
        due = parse_time(values["due"], "due", skew_s=None, no_deadline=True)
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
