"""The dispatch console's actions: what a shift lead (or an API client) may do to a case.

One entry point, :func:`execute`, serves the console's callbacks and the write API
alike, so both follow the same rules in the same order:

1. the role (403), by the one policy table (dashboard/policy.py): ``note`` needs
   ``add_note``, ``priority``, ``cancel`` and ``reopen`` their own permission, a bulk action
   ``bulk`` too; ``assign`` needs ``reassign``, or ``dispatch_new`` for a new, unassigned
   case (checked again once the case is loaded: an operator giving an assigned case
   another unit gets 403);
2. the input (422, with a reason per field): each action's body model, the write API's
   own (dashboard/api/schemas.py);
3. the case (404), then optimistic concurrency (409): the caller sends the case's
   ``version`` as it saw it, and a case changed since — by a producer's message or by
   another lead — is refused, never silently overwritten;
4. the lifecycle (409): a closed or cancelled case is only reopened, only a closed or
   cancelled case is reopened (lifecycle.may_reopen).

A change bumps the case's version, refreshes its deadline, adds a timeline entry
(CaseEvent ``kind="change"`` with the actor), an audit event, and an outbox row that
becomes the `lq:changes` entry (dashboard/live/outbox.py explains the ordering) — all in
the caller's transaction. :func:`perform` owns that transaction and publishes after
the commit: the workers then push the case's new state to every screen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.api.schemas import ACTION_BODIES, AssignBody, field_errors, reason_list
from dashboard.contract.changes import entry_fields, new_change_id
from dashboard.contract.entries import ID_RE
from dashboard.lifecycle import may_reopen
from dashboard.live.outbox import ChangeLog
from dashboard.models import Case, CaseEvent, ChangeOutbox, Department, Grid, Unit, Zone
from dashboard.policy import is_new_unassigned
from dashboard.services.accounts import Principal, audit
from dashboard.services.cases import case_to_api, get_case, iso, refresh_deadline
from dashboard.services.units import LatestPositions
from dashboard.sla import SlaPolicy
from dashboard.vocabulary import OPEN_STATUSES, TERMINAL

if TYPE_CHECKING:
    from dashboard.runtime import Runtime

# The permission each action needs (dashboard/policy.py); ``assign`` on a new, unassigned
# case needs only ``dispatch_new`` (FIRST_DISPATCH).
ACTION_PERMISSION: Mapping[str, str] = {
    "assign": "reassign",
    "priority": "priority",
    "cancel": "cancel",
    "note": "add_note",
    "reopen": "reopen",
}
FIRST_DISPATCH = "dispatch_new"
ACTIONS: tuple[str, ...] = tuple(ACTION_PERMISSION)
BODY_FIELDS: Mapping[str, frozenset[str]] = {
    action: frozenset(model.model_fields) for action, model in ACTION_BODIES.items()
}
BULK_MAX = 200
REOPEN_STATUS = "registered"  # a reopened case waits for a new dispatch


class DispatchError(Exception):
    """A refused action: the HTTP status, a sentence for people, reasons per field."""

    def __init__(
        self,
        status: int,
        error: str,
        fields: Mapping[str, str] | None = None,
        *,
        code: str,
        current_version: int | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.fields = dict(fields or {})
        self.code = code
        self.current_version = current_version


@dataclass(frozen=True, slots=True)
class Request:
    """A validated action request."""

    action: str
    version: int
    unit: str | None = None
    department: str | None = None
    note: str | None = None
    priority: int | None = None
    reason: str | None = None


@dataclass
class Outcome:
    """What one action did: the change (its id and lq:changes entry) and the case after it."""

    change_id: str
    fields: dict[str, str]
    effect: str
    case: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


# -- checks ---------------------------------------------------------------------------------
def check_permission(principal: Principal | None, action: str, *, bulk: bool = False) -> None:
    """The role's part that needs no case (403); see :func:`check_case_permission`."""
    if action not in ACTION_PERMISSION:
        raise DispatchError(404, f"unknown action {action[:40]!r}", code="unknown_action")
    if principal is None:
        raise DispatchError(401, "authentication required", code="unauthenticated")
    may = principal.can(ACTION_PERMISSION[action]) or (
        action == "assign" and principal.can(FIRST_DISPATCH)
    )
    if not may:
        raise DispatchError(
            403, f"the role {principal.role!r} may not {action} cases", code="forbidden"
        )
    if bulk and not principal.can("bulk"):
        raise DispatchError(
            403, f"the role {principal.role!r} may not act on several cases at once",
            code="forbidden",
        )  # fmt: skip


def may_assign(principal: Principal, case: Case, department: str | None = None) -> bool:
    """Whether ``principal`` may assign ``case`` (to ``department``, when one is named): a
    lead always; an operator only a new, unassigned case, and without replacing the
    department it already has."""
    if principal.can(ACTION_PERMISSION["assign"]):
        return True
    if not principal.can(FIRST_DISPATCH) or not is_new_unassigned(case.status, case.unit_id):
        return False
    return department is None or case.department_id in (None, department)


def check_case_permission(principal: Principal, req: Request, case: Case) -> None:
    """The role's part that depends on the case (403), checked once it is loaded."""
    if req.action == "assign" and not may_assign(principal, case, req.department):
        raise DispatchError(
            403,
            f"the role {principal.role!r} may only dispatch a new, unassigned case (case "
            f"{case.id} is {case.status}"
            + (f", unit {case.unit_id}" if case.unit_id else "")
            + (f", department {case.department_id}" if case.department_id else "")
            + "); reassigning is for a shift lead",
            code="forbidden",
        )


def parse_request(action: str, body: Any) -> Request:
    """Validate an action's body with its model (dashboard/api/schemas.py, the write API's
    own); every problem is reported, each under its field (422)."""
    if not isinstance(body, Mapping):
        raise DispatchError(
            422, "the body must be a JSON object", {"body": "not an object"}, code="bad_input"
        )
    model = ACTION_BODIES[action]
    errors: dict[str, str] = {}
    try:
        values = model.model_validate(body).model_dump()
    except ValidationError as exc:
        errors = field_errors(exc, model)
        values = {}
    if model is AssignBody and "unit" not in errors:
        errors |= AssignBody.cross_check(body)
    if errors:
        raise DispatchError(422, "invalid input: " + reason_list(errors), errors, code="bad_input")
    return Request(action=action, **values)


# -- the actions ----------------------------------------------------------------------------
def _move(case: Case, status: str, now: datetime) -> None:
    case.status = status
    case.status_since = now
    column = f"{status}_at"
    if getattr(case, column, None) is None:
        setattr(case, column, now)


def _conflict(case: Case, why: str, code: str) -> DispatchError:
    return DispatchError(409, why, {"status": case.status}, code=code, current_version=case.version)


def _load(session: Session, case_id: str) -> Case:
    case = None
    if ID_RE.fullmatch(case_id):
        case = session.scalars(select(Case).where(Case.id == case_id).with_for_update()).first()
    if case is None:
        raise DispatchError(404, f"no case {case_id[:64]!r}", {"id": "unknown"}, code="not_found")
    return case


def _check_references(session: Session, req: Request) -> None:
    errors: dict[str, str] = {}
    if req.unit is not None and session.get(Unit, req.unit) is None:
        errors["unit"] = f"no unit {req.unit!r}"
    if req.department is not None and session.get(Department, req.department) is None:
        errors["department"] = f"no department {req.department!r}"
    if errors:
        raise DispatchError(422, "; ".join(errors.values()), errors, code="unknown_reference")


def _unit_flags(session: Session, unit_id: str, case_id: str) -> list[str]:
    """Why a unit may not be free: other open cases it is on, or its own status."""
    flags = [
        f"unit_busy:{other}"
        for other in session.scalars(
            select(Case.id)
            .where(Case.unit_id == unit_id, Case.status.in_(OPEN_STATUSES), Case.id != case_id)
            .order_by(Case.id)
            .limit(5)
        )
    ]
    unit = session.get(Unit, unit_id)
    if unit is not None and unit.status in ("busy", "off_duty"):
        flags.append(f"unit_{unit.status}")
    return flags


def _apply(
    session: Session, case: Case, req: Request, now: datetime
) -> tuple[str, dict[str, Any], list[str]]:
    """Change the case; return the effect, the entry's fields and the warnings."""
    fields: dict[str, Any] = {"prev_status": case.status}
    warnings: list[str] = []
    terminal = case.status in TERMINAL
    if req.action == "assign":
        if terminal:
            raise _conflict(case, f"the case is {case.status}: reopen it first", "case_closed")
        unit = req.unit if req.unit is not None else case.unit_id
        department = req.department if req.department is not None else case.department_id
        moves = case.status in ("reported", "registered", "resolved")
        if not moves and (unit, department) == (case.unit_id, case.department_id):
            raise DispatchError(
                422, "the case already has this unit and department",
                {"unit": "no change"}, code="no_change",
            )  # fmt: skip
        fields |= {"prev_unit": case.unit_id, "prev_department": case.department_id}
        if req.unit is not None:
            case.unit_id = req.unit
            warnings = _unit_flags(session, req.unit, case.id)
        if req.department is not None:
            case.department_id = req.department
        if case.status in ("reported", "registered"):
            _move(case, "dispatched", now)
            effect = "dispatched"
        elif case.status == "resolved":  # sent back to a unit: rework (返工)
            _move(case, "dispatched", now)
            case.rework_count += 1
            case.floor_ts = now
            effect = "rework"
        else:
            effect = "reassigned"
        fields |= {"unit": case.unit_id, "department": case.department_id}
    elif req.action == "priority":
        if terminal:
            raise _conflict(case, f"the case is {case.status}", "case_closed")
        if req.priority == case.priority:
            raise DispatchError(
                422, f"the case already has priority {case.priority}",
                {"priority": "no change"}, code="no_change",
            )  # fmt: skip
        fields |= {"prev_priority": case.priority, "priority": req.priority}
        case.priority = req.priority or case.priority
        effect = "priority"
    elif req.action == "note":
        effect = "note"
    elif req.action == "cancel":
        if terminal:
            raise _conflict(case, f"the case is already {case.status}", "case_closed")
        _move(case, "cancelled", now)
        fields["reason"] = req.reason
        effect = "cancelled"
    else:  # reopen
        if not may_reopen(case.status):
            raise _conflict(
                case, f"only a closed or cancelled case is reopened; this one is {case.status}",
                "not_closed",
            )  # fmt: skip
        case.status = REOPEN_STATUS
        case.status_since = now
        # Producer messages from before the reopen are late from now on: they stay in
        # the timeline but can no longer move the case (lifecycle.decide).
        case.floor_ts = now
        effect = "reopened"
    case.status_ts = max(case.status_ts, now)
    fields |= {"status": case.status, "note": req.note}
    if warnings:
        fields["flags"] = ",".join(warnings)
    return effect, fields, warnings


def _detail(effect: str, fields: Mapping[str, Any]) -> str:
    parts = [effect]
    for name in ("unit", "department", "priority", "reason", "flags"):
        if fields.get(name) not in (None, ""):
            parts.append(f"{name}={fields[name]}")
    return " ".join(parts)[:300]


def execute(
    session: Session,
    *,
    principal: Principal | None,
    action: str,
    case_id: str,
    body: Any,
    now: datetime,
    policy: SlaPolicy,
    stream: str,
    zone: tzinfo,
    ip: str | None = None,
    batch: str | None = None,
) -> Outcome:
    """Check and apply one action to one case inside the caller's transaction."""
    check_permission(principal, action)
    assert principal is not None
    req = parse_request(action, body)
    case = _load(session, case_id)
    check_case_permission(principal, req, case)
    _check_references(session, req)
    if case.version != req.version:
        raise DispatchError(
            409,
            f"case {case.id} was changed by someone else since you loaded it (you sent "
            f"version {req.version}, it is now at {case.version}): reload it and try again",
            {"version": f"stale: the case is at version {case.version}"},
            code="stale_version",
            current_version=case.version,
        )
    effect, values, warnings = _apply(session, case, req, now)
    case.version += 1
    case.updated_at = now
    refresh_deadline(case, policy, now)
    change_id = new_change_id()
    fields = entry_fields(
        {
            "change": change_id,
            "case": case.id,
            "action": action,
            "actor": principal.actor,
            "ts": iso(now),
            "version": case.version,
            "base_version": req.version,
            "batch": batch,
            **values,
        }
    )
    session.add(
        CaseEvent(
            case_id=case.id,
            ts=now,
            received_at=now,
            kind="change",
            status=case.status,
            effect=effect,
            applied=True,
            detail=_detail(effect, values),
            fields=fields,
            stream=stream,
            entry_id=change_id,
            actor=principal.actor[:100],
            version=case.version,
        )
    )
    session.add(ChangeOutbox(id=change_id, case_id=case.id, fields=fields, created_at=now))
    audit(
        session,
        actor=principal.actor,
        action=f"case.{action}",
        target=case.id,
        ip=ip,
        detail={"change": change_id, "version": case.version, "effect": effect},
    )
    session.flush()
    return Outcome(change_id, fields, effect, case_to_api(case, zone=zone, now=now), warnings)


def execute_bulk(
    session: Session,
    *,
    principal: Principal | None,
    action: str,
    cases: Any,
    body: Any,
    now: datetime,
    policy: SlaPolicy,
    stream: str,
    zone: tzinfo,
    ip: str | None = None,
) -> list[Outcome]:
    """One action on several cases (``cases``: ``[{"id", "version"}]``), all or nothing:
    if any case is refused, none is changed and the error names each refused case."""
    check_permission(principal, action, bulk=True)
    if not isinstance(body, Mapping):
        raise DispatchError(422, "the body must be an object", {"body": "not an object"},
                            code="bad_input")  # fmt: skip
    if not isinstance(cases, list) or not 1 <= len(cases) <= BULK_MAX:
        raise DispatchError(
            422, f"choose 1-{BULK_MAX} cases", {"cases": "empty or too many"}, code="bad_input"
        )
    items: dict[str, Any] = {}
    for item in cases:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            raise DispatchError(422, "each case is {id, version}", {"cases": "malformed"},
                                code="bad_input")  # fmt: skip
        items[item["id"]] = item.get("version")
    batch = new_change_id().replace("chg-", "batch-")
    out: list[Outcome] = []
    refused: dict[str, str] = {}
    worst: DispatchError | None = None
    for case_id in sorted(items):  # a stable lock order
        try:
            with session.begin_nested():
                out.append(
                    execute(
                        session, principal=principal, action=action, case_id=case_id,
                        body={**body, "version": items[case_id]}, now=now, policy=policy,
                        stream=stream, zone=zone, ip=ip, batch=batch,
                    )
                )  # fmt: skip
        except DispatchError as exc:
            if exc.status == 422 and exc.code == "bad_input":
                raise  # the same input for every case: say it once
            refused[case_id] = exc.error
            if worst is None or exc.status == 409:
                worst = exc
    if refused:
        assert worst is not None
        raise DispatchError(
            worst.status,
            f"{len(refused)} of {len(items)} cases refused; nothing was changed",
            refused,
            code=worst.code,
        )
    return out


def perform(
    rt: Runtime,
    *,
    principal: Principal | None,
    action: str,
    case_id: str | None = None,
    body: Any,
    cases: Any = None,
    ip: str | None = None,
) -> list[Outcome]:
    """Run one action (``case_id``) or a bulk one (``cases``) in its own transaction, then
    publish its changes to lq:changes (after the commit: see dashboard/live/outbox.py)."""
    now = rt.now()
    common: dict[str, Any] = {
        "principal": principal,
        "action": action,
        "body": body,
        "now": now,
        "policy": rt.policy,
        "stream": rt.keys.changes,
        "zone": rt.settings.zone,
        "ip": ip,
    }
    with rt.db.write() as session:
        if cases is not None:
            outcomes = execute_bulk(session, cases=cases, **common)
        else:
            outcomes = [execute(session, case_id=case_id or "", **common)]
    log = ChangeLog(rt.redis, rt.keys, rt.settings.changes_maxlen)
    log.publish(rt.db, [(o.change_id, o.fields) for o in outcomes], now=now)
    return outcomes


# -- nearest units --------------------------------------------------------------------------
def travel_speed_ms(kind: str, speeds_kmh: Mapping[str, float]) -> float:
    kmh = speeds_kmh.get(kind) or speeds_kmh.get("unknown") or 10.0
    return kmh / 3.6


def nearest_units(
    session: Session,
    latest: LatestPositions,
    *,
    lat: float,
    lon: float,
    now: datetime,
    stale_s: int,
    speeds_kmh: Mapping[str, float],
    radius_m: float,
    limit: int,
    case_id: str | None = None,
) -> list[dict[str, Any]]:
    """The units to suggest for a case at (lat, lon), best first.

    From the latest positions in Redis (GEOSEARCH), leaving out units off duty and units
    with no ping for ``stale_s``. Each gets the straight-line distance and an ETA at its
    kind's speed. Free units come first, then units that are busy (their own status, or
    on another open case: allowed, but flagged), each group by ETA.
    """
    hits = latest.near(lat, lon, radius_m, count=max(limit * 8, 64))
    if not hits:
        return []
    ids = [unit_id for unit_id, _ in hits]
    raw: Any = latest.client.hmget(latest.keys.units_latest, ids)
    now_ms = now.timestamp() * 1000
    fresh: dict[str, tuple[dict[str, Any], float]] = {}
    for (unit_id, distance), value in zip(hits, raw, strict=True):
        if value is None:
            continue
        record = json.loads(value)
        age_ms = now_ms - float(record.get("ts") or 0)
        if record.get("status") == "off_duty" or age_ms > stale_s * 1000:
            continue
        fresh[unit_id] = (record, distance)
    if not fresh:
        return []
    rows = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(list(fresh))))}
    on_cases: dict[str, list[str]] = {}
    query = select(Case.unit_id, Case.id).where(
        Case.unit_id.in_(list(fresh)), Case.status.in_(OPEN_STATUSES)
    )
    if case_id is not None:
        query = query.where(Case.id != case_id)
    for holder, other in session.execute(query.order_by(Case.id)).tuples():
        on_cases.setdefault(holder or "", []).append(other)
    out = []
    for unit_id, (record, distance) in fresh.items():
        row = rows.get(unit_id)
        kind = record.get("kind") or (row.kind if row else "unknown")
        others = on_cases.get(unit_id, [])
        out.append(
            {
                "id": unit_id,
                "name": record.get("name") or (row.name if row else unit_id),
                "kind": kind,
                "status": record.get("status") or "available",
                "department": row.department_id if row else None,
                "lat": record.get("lat"),
                "lon": record.get("lon"),
                "ts": record.get("ts"),
                "distance_m": round(distance, 1),
                "eta_s": round(distance / travel_speed_ms(kind, speeds_kmh)),
                "busy": record.get("status") == "busy" or bool(others),
                "cases": others,
            }
        )
    out.sort(key=lambda u: (u["busy"], u["eta_s"], u["id"]))
    return out[:limit]


# -- what the console shows -----------------------------------------------------------------
def console_case(
    session: Session,
    latest: LatestPositions,
    *,
    case_id: str,
    zone: tzinfo,
    now: datetime,
    stale_s: int,
    speeds_kmh: Mapping[str, float],
    radius_m: float,
    limit: int,
) -> dict[str, Any] | None:
    """A case with its timeline and the nearest units to it, or None if there is none."""
    if not ID_RE.fullmatch(case_id or ""):
        return None
    data = get_case(session, case_id=case_id, zone=zone, now=now)
    if data is None:
        return None
    nearest = nearest_units(
        session, latest, lat=data["lat"], lon=data["lon"], now=now, stale_s=stale_s,
        speeds_kmh=speeds_kmh, radius_m=radius_m, limit=limit, case_id=case_id,
    )  # fmt: skip
    return {"case": data, "nearest": nearest}


def console_options(session: Session, *, lang: str) -> dict[str, Any]:
    """The console's choices: departments, units, grids and zones (with each grid's zone)."""
    english = lang == "en"

    def name(zh: str, en: str) -> str:
        return (en or zh) if english else zh

    departments = [
        {"value": d.id, "label": name(d.name, d.name_en)}
        for d in session.scalars(select(Department).order_by(Department.id))
    ]
    units = [
        {"value": u.id, "label": f"{u.id} {u.name}" if u.name and u.name != u.id else u.id}
        for u in session.scalars(select(Unit).order_by(Unit.id))
    ]
    zones = [
        {"value": z.code, "label": name(z.name, z.name_en)}
        for z in session.scalars(select(Zone).order_by(Zone.code))
    ]
    grid_rows = session.execute(
        select(Grid.code, Grid.name, Grid.zone_code).where(Grid.level == "grid").order_by(Grid.code)
    ).tuples()
    grids = []
    grid_zone: dict[str, str] = {}
    for code, grid_name, zone_code in grid_rows:
        grids.append({"value": code, "label": f"{code} {grid_name}" if grid_name else code})
        if zone_code:
            grid_zone[code] = zone_code
    return {
        "departments": departments,
        "units": units,
        "zones": zones,
        "grids": grids,
        "grid_zone": grid_zone,
    }
