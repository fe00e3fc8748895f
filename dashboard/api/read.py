"""The read-only JSON API for integrators and tests (`/api/v1/...`) and `/healthz`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from dashboard.api import responses as out
from dashboard.api import schemas
from dashboard.api.errors import api_error
from dashboard.runtime import Runtime
from dashboard.services import cases as case_service
from dashboard.services import geo as geo_service
from dashboard.services import kpis as kpi_service
from dashboard.services import units as unit_service
from dashboard.web.context import current_runtime

api = Blueprint("api", __name__)
Query = TypeVar("Query", bound=BaseModel)


class BadRequest(Exception):
    """A refused parameter: a reason per field (the first one is the error's sentence)."""

    def __init__(self, fields: dict[str, str], status: int = 400) -> None:
        super().__init__(next(iter(fields.values()), "bad request"))
        self.fields = fields
        self.status = status



def answer(adapter: Any, data: Any) -> Response:
    """A 200 JSON answer through its response model (dashboard/api/responses.py)."""
    return Response(out.dump_json(adapter, data), mimetype="application/json")


@api.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> Response:
    reason = "; ".join(
        text if text.startswith(name) else f"{name}: {text}" for name, text in exc.fields.items()
    )
    return api_error(exc.status, None, reason or "bad request", exc.fields)


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return api_error(exc.code or 500, None, exc.description or exc.name)


def _query(model: type[Query], rt: Runtime) -> Query:
    """The request's query as ``model`` (a repeated ``status`` joined), or a 400 per field."""
    args: dict[str, Any] = request.args.to_dict()
    if "status" in args:
        args["status"] = ",".join(request.args.getlist("status"))
    try:
        return model.model_validate(args, context={"zone": rt.settings.zone})
    except ValidationError as exc:
        raise BadRequest(schemas.field_errors(exc, model)) from None


@api.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return answer(out.Health, {"status": "ok"})


@api.get("/api/v1/cases/<case_id>")
def get_case(case_id: str) -> Response:
    try:
        schemas.CASE_ID.validate_python(case_id)
    except ValidationError as exc:
        raise BadRequest({"id": schemas.field_errors(exc)["body"]}) from None
    rt = current_runtime()
    with rt.db.read() as session:
        data = case_service.get_case(session, case_id=case_id, zone=rt.settings.zone, now=rt.now())
    if data is None:
        return api_error(404, "not_found", f"no case {case_id}", {"id": "unknown"})
    return answer(out.CaseDetail, data)


@api.get("/api/v1/cases")
def list_cases() -> Response:
    rt = current_runtime()
    query = _query(schemas.CasesQuery, rt)
    with rt.db.read() as session:
        data = case_service.list_cases(
            session, zone=rt.settings.zone, now=rt.now(), status=query.status,
            since=query.since, limit=query.limit,
        )  # fmt: skip
    return answer(out.CASE_LIST, data)


@api.get("/api/v1/units")
def list_units() -> Response:
    rt = current_runtime()
    with rt.db.read() as session:
        data = unit_service.list_units(
            session, zone=rt.settings.zone, now=rt.now(), stale_s=rt.settings.unit_stale_s
        )
    return answer(out.UNIT_LIST, data)


def _bound(name: str, value: str, rt: Runtime, *, end: bool) -> datetime:
    """A KPI period bound: a date (``to`` includes that whole day) or a datetime."""
    if schemas.DATE_RE.fullmatch(value) and end:
        try:
            day = datetime.fromisoformat(value).date()
        except ValueError:
            raise BadRequest({name: f"{name} must be an ISO 8601 date or datetime"}) from None
        if day.year not in schemas.YEARS:
            raise BadRequest({name: f"{name} must be in the years 1970-2999, got {value!r}"})
        return kpi_service.day_period(day, rt.settings.zone).end
    try:
        return schemas.parse_time_param(value, rt.settings.zone, name)
    except ValueError as exc:
        raise BadRequest({name: str(exc)}) from None


@api.get("/api/v1/kpis")
def kpis() -> Response:
    """KPIs of a period (docs/kpis.md): ``from``/``to`` ISO dates or datetimes, default today."""
    rt = current_runtime()
    now = rt.now()
    zone = rt.settings.zone
    today = kpi_service.today_period(now, zone)
    query = _query(schemas.KpisQuery, rt)
    raw_from, raw_to = query.from_, query.to
    start = _bound("from", raw_from, rt, end=False) if raw_from else today.start
    if raw_to:
        end = _bound("to", raw_to, rt, end=True)
    elif raw_from and schemas.DATE_RE.fullmatch(raw_from):
        end = kpi_service.day_period(start.astimezone(zone).date(), zone).end  # that one day
    else:
        end = today.end if not raw_from else max(now, start + timedelta(milliseconds=1))
    if end <= start:
        raise BadRequest({"to": "to must be after from"})
    period = kpi_service.Period(start, end)
    options = kpi_service.options_for(rt.settings, rt.policy)
    with rt.db.read() as session:
        figures = kpi_service.compute_kpis(session, period=period, now=now, options=options)
    data = {
        "from": case_service.iso(start, zone),
        "to": case_service.iso(end, zone),
        "tz": rt.settings.tz,
        "at": case_service.iso(now, zone),
        **figures,
    }
    return answer(out.Kpis, data)


def _geo(payload: dict[str, Any], crs: str) -> Response:
    """``crs``: the datum of the map's tiles (dashboard/tiles.py)."""
    response = answer(out.FeatureCollection, geo_service.for_display(payload, crs))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@api.get("/api/v1/geo/basemap")
def geo_basemap() -> Response:
    rt = current_runtime()
    query = _query(schemas.GeoQuery, rt)
    with rt.db.read() as session:
        return _geo(geo_service.basemap(session), query.crs)


@api.get("/api/v1/geo/grids")
def geo_grids() -> Response:
    rt = current_runtime()
    query = _query(schemas.GridsQuery, rt)
    with rt.db.read() as session:
        return _geo(geo_service.grids(session, level=query.level), query.crs)


@api.get("/api/v1/geo/zones")
def geo_zones() -> Response:
    rt = current_runtime()
    query = _query(schemas.GeoQuery, rt)
    with rt.db.read() as session:
        return _geo(geo_service.zones(session), query.crs)


@api.get("/api/v1/geo/facilities")
def geo_facilities() -> Response:
    rt = current_runtime()
    query = _query(schemas.FacilitiesQuery, rt)
    with rt.db.read() as session:
        return _geo(geo_service.facilities(session, kind=query.kind), query.crs)
