"""The HTTP API's requests, once: every body and query as a pydantic model, and the error.

The handlers validate with them (dashboard/api/read.py, api/write.py; the dispatch service
validates the console's bodies with the same action models) and the OpenAPI document
(dashboard/api/openapi.py) is generated from them with the answers' models
(dashboard/api/responses.py) — so the description and the validation cannot disagree. The
constrained types (ids, text, versions) and their limits: dashboard/api/types.py. Pure
pydantic: no Flask, no services (the services may import it).

Reading a validation error: :func:`field_errors` turns pydantic's errors into the API's
``fields`` (a reason per field, dashboard/api/errors.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, tzinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from dashboard.api.types import (
    CANCEL_REASON_MAX,
    NOTE_MAX,
    Ident,
    OptionalIdent,
    Priority,
    Version,
    optional_text,
    required_text,
)
from dashboard.contract.entries import STATUSES


# -- errors -------------------------------------------------------------------------------------
class Error(BaseModel):
    """Every error answer of the API (dashboard/api/errors.py)."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="the reason, for people")
    code: str = Field(description="a machine code: e.g. bad_input, forbidden, stale_version")
    fields: dict[str, str] = Field(description="a reason per field at fault (may be empty)")
    version: int | None = Field(
        default=None, description="a stale-version 409: the case's current version"
    )


def field_errors(exc: ValidationError, model: type[BaseModel] | None = None) -> dict[str, str]:
    """A reason per field (the first one of each), in the words of the API's types."""
    out: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        name = str(loc[0])[:64] if loc else "body"
        if name in out:
            continue
        kind = error.get("type")
        if kind == "missing":
            field = model.model_fields.get(name) if model is not None else None
            what = field.description if field is not None else None
            out[name] = f"required: {what}" if what else "required"
        elif kind == "extra_forbidden":
            allowed = sorted(
                (f.alias or n) for n, f in (model.model_fields if model else {}).items()
            )
            out[name] = f"unknown field (allowed: {', '.join(allowed)})"
        else:
            out[name] = str(error.get("msg", "invalid"))
    return out


def reason_list(fields: Mapping[str, str]) -> str:
    return "; ".join(f"{name}: {reason}" for name, reason in fields.items())


# -- the write API's bodies (POST /api/v1/cases/{id}/{action}) ---------------------------------
class _ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version
    note: optional_text(NOTE_MAX) = Field(  # type: ignore[valid-type]
        default=None, description="a note for the timeline"
    )


class AssignBody(_ActionBody):
    """Send the case to a unit and/or a department (dispatched, reassigned, or rework)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("unit", "department")
            ]
        },
    )
    unit: OptionalIdent = None
    department: OptionalIdent = None

    @staticmethod
    def cross_check(body: Mapping[str, Any]) -> dict[str, str]:
        """What a field alone cannot say (OpenAPI says it as ``anyOf``)."""
        if not body.get("unit") and not body.get("department"):
            return {"unit": "give a unit, a department or both"}
        return {}


class PriorityBody(_ActionBody):
    """Change the case's priority."""

    priority: Priority


class NoteBody(_ActionBody):
    """Add a note to the case's timeline."""

    note: required_text(NOTE_MAX, "the note's text")  # type: ignore[valid-type]


class CancelBody(_ActionBody):
    """Cancel the case, with the reason."""

    reason: required_text(CANCEL_REASON_MAX, "why the case is cancelled")  # type: ignore[valid-type]


class ReopenBody(_ActionBody):
    """Reopen a closed or cancelled case (it waits for a new dispatch)."""


ACTION_BODIES: Mapping[str, type[_ActionBody]] = {
    "assign": AssignBody,
    "priority": PriorityBody,
    "note": NoteBody,
    "cancel": CancelBody,
    "reopen": ReopenBody,
}


# -- queries --------------------------------------------------------------------------------
# An ISO date, an ISO datetime (local time zone without an offset) or epoch ms; an empty
# value counts as absent (the default applies). Years 1970-2999 as written.
_YEARS = r"^(19[7-9][0-9]|2[0-9]{3})-"
DATE_OR_TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date", "pattern": _YEARS},
        {"type": "string", "format": "date-time", "pattern": _YEARS},
        {"type": "string", "pattern": r"^([0-9]{10,13})?$"},
    ]
}
# ASCII digits only: str.isdigit() and \d also take "²" and "٢", which int() then refuses.
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_MS_RE = re.compile(r"[0-9]{10,16}", re.ASCII)
_LIMIT_RE = re.compile(r"[0-9]{1,4}", re.ASCII)
# The years a query's times may name, as written: with any offset, every layer (the
# database drivers, rendering in the local zone) can represent them; year 1 or 9999 with
# an offset cannot.
YEARS = range(1970, 3000)


def parse_time_param(value: str, zone: tzinfo, name: str = "since") -> datetime:
    """An ISO date or datetime (``zone`` when it has no offset) or epoch milliseconds; a
    ValueError with the reason otherwise."""
    try:
        if _MS_RE.fullmatch(value):
            parsed = datetime.fromtimestamp(int(value) / 1000, tz=zone)
        elif DATE_RE.fullmatch(value):
            parsed = datetime.combine(datetime.fromisoformat(value).date(), time(0), tzinfo=zone)
        elif value.isascii():
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise ValueError("not ASCII")
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f"{name} must be an ISO 8601 date or datetime, got {value[:40]!r}"
        ) from None
    if parsed.year not in YEARS:
        raise ValueError(f"{name} must be in the years 1970-2999, got {value[:40]!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _since(value: Any, info: ValidationInfo) -> datetime | None:
    if value is None or value == "":
        return None
    zone = (info.context or {})["zone"]
    try:
        return parse_time_param(str(value), zone, "since")
    except ValueError as exc:
        raise PydanticCustomError("lq_time", "{reason}", {"reason": str(exc)}) from None


def _statuses(value: Any) -> list[str] | None:
    parts = [part for part in str(value or "").split(",") if part]
    for status in parts:
        if status not in STATUSES:
            raise PydanticCustomError(
                "lq_status", "{reason}",
                {"reason": f"unknown status {status[:40]!r} (one of: {', '.join(STATUSES)})"},
            )  # fmt: skip
    return parts or None


def _limit(value: Any) -> int:
    raw = str(value)
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= 1000:
        raise PydanticCustomError(
            "lq_limit",
            "{reason}",
            {"reason": f"limit must be an integer 1..1000, got {raw[:20]!r}"},
        )
    return int(raw)


_ONE_STATUS = "(" + "|".join(STATUSES) + ")"
StatusList = Annotated[
    list[str] | None,
    BeforeValidator(_statuses),
    WithJsonSchema({"type": "string", "pattern": f"^({_ONE_STATUS}(,{_ONE_STATUS})*)?$"}),
]
Since = Annotated[datetime | None, BeforeValidator(_since), WithJsonSchema(DATE_OR_TIME_SCHEMA)]
Limit = Annotated[
    int, BeforeValidator(_limit), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 1000})
]
DateOrTime = Annotated[str | None, WithJsonSchema(DATE_OR_TIME_SCHEMA)]
Crs = Literal["wgs84", "gcj02"]


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class CasesQuery(_Query):
    status: StatusList = Field(None, description="one or more statuses, comma-separated")
    since: Since = Field(None, description="ISO date or datetime, or epoch ms")
    limit: Limit = Field(100, description="1..1000")


class KpisQuery(_Query):
    """``from``/``to``: parsed by the handler (a date ``to`` includes that whole day)."""

    from_: DateOrTime = Field(
        None, alias="from", description="ISO date or datetime (default: today)"
    )
    to: DateOrTime = Field(None, description="ISO date (inclusive) or datetime (exclusive)")


class GeoQuery(_Query):
    crs: Crs = Field("wgs84", description="display datum")


class GridsQuery(GeoQuery):
    level: Literal["grid", "micro"] = Field("grid", description="grid level")


class FacilitiesQuery(GeoQuery):
    kind: Literal["camera", "sensor", "station"] | None = Field(None, description="one kind")


CASE_ID = TypeAdapter(Ident)
