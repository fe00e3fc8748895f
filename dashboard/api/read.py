"""The read-only JSON API for integrators and tests (`/api/v1/...`) and `/healthz`."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from dashboard.contract.entries import ID_RE, STATUSES
from dashboard.runtime import Runtime
from dashboard.services import cases as case_service
from dashboard.services import geo as geo_service
from dashboard.services import kpis as kpi_service
from dashboard.services import units as unit_service

api = Blueprint("api", __name__)
# ASCII digits only: str.isdigit() and \d also take "²" and "٢", which int() then refuses.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_MS_RE = re.compile(r"[0-9]{10,16}", re.ASCII)
_LIMIT_RE = re.compile(r"[0-9]{1,4}", re.ASCII)
# The years a query's times may name, as written: with any offset, every layer (the
# database drivers, rendering in the local zone) can represent them; year 1 or 9999 with
# an offset cannot.
YEARS = range(1970, 3000)


class BadRequest(Exception):
    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.status = status


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["lianqin"]
    return rt


@api.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> tuple[Response, int]:
    return jsonify({"error": exc.reason, "field": exc.field}), exc.status


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return jsonify({"error": exc.description or exc.name}), exc.code or 500


def parse_since(value: str, rt: Runtime) -> datetime:
    """An ISO date or datetime (local time zone when it has no offset) or epoch milliseconds."""
    zone = rt.settings.zone
    try:
        if _MS_RE.fullmatch(value):
            parsed = datetime.fromtimestamp(int(value) / 1000, tz=zone)
        elif _DATE_RE.fullmatch(value):
            parsed = datetime.combine(datetime.fromisoformat(value).date(), time(0), tzinfo=zone)
        elif value.isascii():
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise ValueError("not ASCII")
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            "since", f"since must be an ISO 8601 date or datetime, got {value[:40]!r}"
        ) from None
    if parsed.year not in YEARS:
        raise BadRequest("since", f"since must be in the years 1970-2999, got {value[:40]!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _statuses(rt: Runtime) -> list[str] | None:
    raw = [part for value in request.args.getlist("status") for part in value.split(",") if part]
    for status in raw:
        if status not in STATUSES:
            raise BadRequest(
                "status", f"unknown status {status[:40]!r} (one of: {', '.join(STATUSES)})"
            )
    return raw or None


def _limit() -> int:
    raw = request.args.get("limit", "100")
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= 1000:
        raise BadRequest("limit", f"limit must be an integer 1..1000, got {raw[:20]!r}")
    return int(raw)


@api.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@api.get("/api/v1/cases/<case_id>")
def get_case(case_id: str) -> Response | tuple[Response, int]:
    if not ID_RE.fullmatch(case_id):
        raise BadRequest("id", "a case id is 1-64 characters of A-Z a-z 0-9 . _ : -")
    rt = runtime()
    with rt.db.read() as session:
        data = case_service.get_case(session, case_id=case_id, zone=rt.settings.zone, now=rt.now())
    if data is None:
        return jsonify({"error": f"no case {case_id}", "field": "id"}), 404
    return jsonify(data)


@api.get("/api/v1/cases")
def list_cases() -> Response:
    rt = runtime()
    status = _statuses(rt)
    since_raw = request.args.get("since")
    since = parse_since(since_raw, rt) if since_raw else None
    limit = _limit()
    with rt.db.read() as session:
        data = case_service.list_cases(
            session, zone=rt.settings.zone, now=rt.now(), status=status, since=since, limit=limit
        )
    return jsonify(data)


@api.get("/api/v1/units")
def list_units() -> Response:
    rt = runtime()
    with rt.db.read() as session:
        data = unit_service.list_units(
            session, zone=rt.settings.zone, now=rt.now(), stale_s=rt.settings.unit_stale_s
        )
    return jsonify(data)


def _bound(name: str, value: str, rt: Runtime, *, end: bool) -> datetime:
    """A KPI period bound: a date (``to`` includes that whole day) or a datetime."""
    if _DATE_RE.fullmatch(value) and end:
        try:
            day = datetime.fromisoformat(value).date()
        except ValueError:
            raise BadRequest(name, f"{name} must be an ISO 8601 date or datetime") from None
        if day.year not in YEARS:
            raise BadRequest(name, f"{name} must be in the years 1970-2999, got {value!r}")
        return kpi_service.day_period(day, rt.settings.zone).end
    try:
        return parse_since(value, rt)
    except BadRequest as exc:
        raise BadRequest(name, exc.reason.replace("since", name, 1)) from None


@api.get("/api/v1/kpis")
def kpis() -> Response:
    """KPIs of a period (docs/kpis.md): ``from``/``to`` ISO dates or datetimes, default today."""
    rt = runtime()
    now = rt.now()
    zone = rt.settings.zone
    today = kpi_service.today_period(now, zone)
    raw_from, raw_to = request.args.get("from"), request.args.get("to")
    start = _bound("from", raw_from, rt, end=False) if raw_from else today.start
    if raw_to:
        end = _bound("to", raw_to, rt, end=True)
    elif raw_from and _DATE_RE.fullmatch(raw_from):
        end = kpi_service.day_period(start.astimezone(zone).date(), zone).end  # that one day
    else:
        end = today.end if not raw_from else max(now, start + timedelta(milliseconds=1))
    if end <= start:
        raise BadRequest("to", "to must be after from")
    period = kpi_service.Period(start, end)
    options = kpi_service.options_for(rt.settings, rt.policy)
    with rt.db.read() as session:
        figures = kpi_service.compute_kpis(session, period=period, now=now, options=options)
    return jsonify(
        {
            "from": case_service.iso(start, zone),
            "to": case_service.iso(end, zone),
            "tz": rt.settings.tz,
            "at": case_service.iso(now, zone),
            **figures,
        }
    )


def _geo(payload: dict[str, Any]) -> Response:
    crs = request.args.get("crs", "wgs84")  # the datum of the map's tiles (dashboard/tiles.py)
    if crs not in ("wgs84", "gcj02"):
        raise BadRequest("crs", "crs is wgs84 or gcj02")
    response = jsonify(geo_service.for_display(payload, crs))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@api.get("/api/v1/geo/basemap")
def geo_basemap() -> Response:
    with runtime().db.read() as session:
        return _geo(geo_service.basemap(session))


@api.get("/api/v1/geo/grids")
def geo_grids() -> Response:
    level = request.args.get("level", "grid")
    if level not in ("grid", "micro"):
        raise BadRequest("level", "level is grid or micro")
    with runtime().db.read() as session:
        return _geo(geo_service.grids(session, level=level))


@api.get("/api/v1/geo/zones")
def geo_zones() -> Response:
    with runtime().db.read() as session:
        return _geo(geo_service.zones(session))


@api.get("/api/v1/geo/facilities")
def geo_facilities() -> Response:
    kind = request.args.get("kind")
    if kind is not None and kind not in ("camera", "sensor", "station"):
        raise BadRequest("kind", "kind is camera, sensor or station")
    with runtime().db.read() as session:
        return _geo(geo_service.facilities(session, kind=kind))
