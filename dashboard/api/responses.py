"""The HTTP API's answers, once: every response as a pydantic model.

The handlers answer through :func:`dump` (a shape that drifts from its model fails there, in
every test, not in a client) and the OpenAPI document (dashboard/api/openapi.py) describes the
answers with them. The services build the dicts (dashboard/services/cases.py ``case_to_api``,
units.py ``unit_to_api``, kpis.py, geo.py); these models are what the API promises of them.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from dashboard.contract.entries import STATUSES
from dashboard.services.kpis import KPI_NAMES
from dashboard.vocabulary import STAGE_COLUMNS

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Status = Literal[STATUSES]  # type: ignore[valid-type]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


Stages = create_model(  # type: ignore[call-overload]
    "Stages",
    __base__=_Out,
    __doc__="When the case entered each stage (null: not yet)",
    **{status: (Timestamp | None, ...) for status in STAGE_COLUMNS},
)


class CaseOut(_Out):
    """A case with the stream contract's field names (README "Reading back")."""

    id: str
    status: Status
    ts: Timestamp = Field(description="the newest time of any applied message")
    lat: float
    lon: float
    category: str
    priority: int
    source: str
    title: str
    description: str
    address: str
    grid: str | None
    unit: str | None
    department: str | None
    due: Timestamp | None
    deadline: Timestamp | None = Field(description="the current stage's deadline")
    overdue: bool
    version: int
    rework_count: int
    stages: Stages  # type: ignore[valid-type]


class EventOut(_Out):
    """One timeline entry: a producer's message or a change (``kind``)."""

    ts: Timestamp
    received_at: Timestamp
    kind: str
    status: str | None
    effect: str
    applied: bool
    detail: str
    fields: dict[str, Any] | None
    stream: str
    entry_id: str
    actor: str | None
    version: int


class AssignmentOut(_Out):
    """One responder of a case (issue 13: dashboard/services/cases.assignment_to_api)."""

    id: int
    assignee: str
    kind: str = Field(description="department | station | unit")
    role: str = Field(description="lead | assist | responder")
    required: bool
    status: str
    times: dict[str, Timestamp | None] = Field(description="each stage's time, or null")
    accept_due: Timestamp | None
    done_due: Timestamp | None
    overdue: bool
    escalation: int = Field(description="督办 level: 0 none, 1 first, 2 second")
    last_urged: Timestamp | None
    urge_count: int
    parent: int | None = Field(description="the assignment this one was transferred from")
    transferred_to: str | None
    reason: str | None
    result: str | None
    entered_by: str | None
    version: int


class CallbackOut(_Out):
    """The citizen's callback (回访) after resolution."""

    result: str
    at: Timestamp | None
    by: str | None
    note: str | None


class CaseWithResponders(CaseOut):
    """A case with its responders, its callback and its closure (issue 13)."""

    assignments: list[AssignmentOut]
    callback: CallbackOut | None
    closed_by: str | None
    close_reason: str | None


class CaseDetail(CaseWithResponders):
    """One case with its whole timeline, oldest first."""

    timeline: list[EventOut]


class ChangeOut(_Out):
    id: str = Field(description="the change's id (the lq:changes entry's idempotency key)")
    action: str
    effect: str
    actor: str
    version: int = Field(description="the case's version after the change")


class AssignmentActionResult(_Out):
    """A responders' action done (issue 13): the case after it with its assignments, the
    change, and the lq:tasks entries written (their ids)."""

    case: CaseWithResponders
    change: ChangeOut
    tasks: list[str]


class ActionResult(_Out):
    """A change done: the case after it, the change, and warnings (e.g. a busy unit)."""

    case: CaseOut
    change: ChangeOut
    warnings: list[str]


class UnitOut(_Out):
    id: str
    name: str
    kind: str
    department: str | None
    zone: str | None
    status: str
    lat: float | None
    lon: float | None
    ts: Timestamp | None = Field(description="the latest position's time")
    speed: float | None
    heading: float | None
    accuracy: float | None
    online: bool


_KPI_TYPES: dict[str, Any] = {
    "units_online": dict[str, int],  # by status, plus "total"
}
Kpis = create_model(  # type: ignore[call-overload]
    "Kpis",
    __base__=_Out,
    __doc__="The KPIs of a period (docs: the KPI definitions); null: not defined for it",
    from_=(Timestamp, Field(alias="from")),
    to=(Timestamp, ...),
    tz=(str, ...),
    at=(Timestamp, ...),
    **{name: (_KPI_TYPES.get(name, int | float | None), None) for name in KPI_NAMES},
)


class Feature(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["Feature"]
    geometry: dict[str, Any] | None
    properties: dict[str, Any] | None


class FeatureCollection(BaseModel):
    """GeoJSON."""

    model_config = ConfigDict(extra="allow")
    type: Literal["FeatureCollection"]
    features: list[Feature]


class Health(_Out):
    status: Literal["ok"]


CASE_LIST = TypeAdapter(list[CaseOut])
UNIT_LIST = TypeAdapter(list[UnitOut])


def dump_json(adapter: TypeAdapter[Any] | type[BaseModel], data: Any) -> bytes:
    """``data`` checked against its response model and serialised as JSON (UTF-8, the
    model's key order): a shape that drifts from its description fails here, in every test,
    not in a client. pydantic-core's serialiser: about as fast as ``json.dumps`` alone."""
    if not isinstance(adapter, TypeAdapter):
        adapter = _adapter(adapter)
    return adapter.dump_json(adapter.validate_python(data), by_alias=True)


@cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)
