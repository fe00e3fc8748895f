"""The rest of a real district besides its grids (dashboard/imports/grids.py): patrol zones,
stations, cameras and sensors from GeoJSON, departments and units from CSV.

The GeoJSON files are what a center's GIS exports: FeatureCollections in WGS-84, GCJ-02
(Amap, Tencent), BD-09 (Baidu) or CGCS2000 (the national datum of Tianditu and of the
surveying bureaus). CGCS2000 and WGS-84 differ by a few centimetres — far below what a
command-center map shows — so CGCS2000 coordinates are taken as WGS-84 as they are; GCJ-02
and BD-09 are converted. Everything is stored in WGS-84.

Like the grids, each file is checked whole: every problem is reported (position and id), and
nothing is written unless the whole file is valid. Zones and each facility kind are
*replaced* by their file (the file is the district's list); departments and units are
*upserted* by id (a unit's live status and position, which come from its pings, are kept).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import Point, shape
from shapely.validation import explain_validity
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dashboard.contract.entries import ID_RE, ID_RULE
from dashboard.geo import GridIndex, GridShape, to_wgs84
from dashboard.models import Department, Facility, Grid, Unit, Zone

# The datums a file may declare; ``cgcs2000`` is read as WGS-84 (centimetres apart).
CRS_CHOICES = ("wgs84", "cgcs2000", "gcj02", "bd09")
FACILITY_KINDS = ("station", "camera", "sensor")
UNIT_KINDS = ("patrol", "grid_worker", "vehicle", "volunteer", "unknown")
DEPARTMENT_KINDS = ("department", "volunteer", "street", "community", "other")
MAX_ERRORS = 50


def datum(crs: str) -> str:
    """The conversion a declared CRS needs: CGCS2000 is WGS-84 to within centimetres."""
    if crs not in CRS_CHOICES:
        raise ValueError(f"unknown crs {crs!r}: one of {', '.join(CRS_CHOICES)}")
    return "wgs84" if crs == "cgcs2000" else crs


class DistrictImportError(ValueError):
    """A file that is not valid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        more = f"\n… and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        super().__init__("\n".join(errors[:MAX_ERRORS]) + more)


def _convert(coords: Any, crs: str) -> Any:
    if coords and isinstance(coords[0], int | float):
        lat, lon = to_wgs84(float(coords[1]), float(coords[0]), datum(crs))
        return [round(lon, 7), round(lat, 7)]
    return [_convert(part, crs) for part in coords]


def _position_ok(coords: Any) -> bool:
    if not isinstance(coords, list) or not coords:
        return False
    if isinstance(coords[0], int | float) and not isinstance(coords[0], bool):
        return (
            len(coords) >= 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in coords[:2])
            and all(math.isfinite(v) for v in coords[:2])
            and -180 <= coords[0] <= 180
            and -90 <= coords[1] <= 90
        )
    return all(_position_ok(part) for part in coords)


def _features(data: Any) -> list[Any]:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise DistrictImportError(["the file must hold a GeoJSON FeatureCollection"])
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise DistrictImportError(["the FeatureCollection has no features"])
    return features


def _text(props: dict[str, Any], name: str, where: str, errors: list[str], *, required: bool
          ) -> str:  # fmt: skip
    value = props.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(f"{where}: {name} is required")
        return ""
    if not isinstance(value, str) or len(value) > 100:
        errors.append(f"{where}: {name} must be a text of at most 100 characters")
        return ""
    return value.strip()


def _code(value: Any, name: str, where: str, errors: list[str]) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        errors.append(f"{where}: {name} must be {ID_RULE}, got {value!r:.40}")
        return None
    return value


# -- patrol zones ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneRow:
    code: str
    name: str
    name_en: str
    station_name: str
    geometry: dict[str, Any]


def parse_zones(data: Any, *, crs: str = "wgs84") -> list[ZoneRow]:
    """Patrol zones: Polygon / MultiPolygon features with ``code``, ``name`` and optionally
    ``name_en`` and ``station`` (the name of the zone's police station)."""
    errors: list[str] = []
    rows: list[ZoneRow] = []
    seen: dict[str, int] = {}
    for n, feature in enumerate(_features(data), start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        where = f"feature {n}"
        if not isinstance(props, dict):
            errors.append(f"{where}: no properties (code and name are required)")
            continue
        before = len(errors)
        code = _code(props.get("code"), "code", where, errors)
        where = f"feature {n}" + (f" ({code})" if code else "")
        if code in seen:
            errors.append(f"{where}: code {code} already used by feature {seen[code]}")
        elif code:
            seen[code] = n
        name = _text(props, "name", where, errors, required=True)
        name_en = _text(props, "name_en", where, errors, required=False)
        station = _text(props, "station", where, errors, required=False)
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") not in (
            "Polygon",
            "MultiPolygon",
        ):
            errors.append(f"{where}: geometry must be a Polygon or MultiPolygon")
            continue
        if not _position_ok(geometry.get("coordinates")):
            errors.append(f"{where}: coordinates must be [lon, lat] numbers in range")
            continue
        converted = {
            "type": geometry["type"],
            "coordinates": _convert(geometry["coordinates"], crs),
        }
        try:
            shp = shape(converted)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            errors.append(f"{where}: not a valid polygon ({exc})")
            continue
        if shp.is_empty or not shp.is_valid:
            errors.append(f"{where}: invalid polygon: {explain_validity(shp)}")
            continue
        if len(errors) == before and code:
            rows.append(ZoneRow(code, name, name_en, station, converted))
    if errors:
        raise DistrictImportError(errors)
    return rows


def replace_zones(session: Session, rows: list[ZoneRow]) -> dict[str, int]:
    """Replace the patrol zones; a grid whose zone is gone (or that had none) takes the zone
    its centre lies in. A zone keeps the station position it had (stations: their own file).
    The caller commits."""
    old = {z.code: z for z in session.scalars(select(Zone))}
    removed = session.execute(delete(Zone)).rowcount  # type: ignore[attr-defined]
    session.flush()
    for r in rows:
        before = old.get(r.code)
        session.add(
            Zone(
                code=r.code, name=r.name, name_en=r.name_en,
                station_name=r.station_name or (before.station_name if before else ""),
                station_lat=before.station_lat if before else None,
                station_lon=before.station_lon if before else None,
                geometry=r.geometry,
            )
        )  # fmt: skip
    shapes = [(r.code, shape(r.geometry)) for r in rows]
    codes = {r.code for r in rows}
    regrouped = 0
    for grid in session.scalars(select(Grid)):
        if grid.zone_code in codes:
            continue
        centre = Point(grid.centroid_lon, grid.centroid_lat)
        grid.zone_code = next((c for c, s in shapes if s.contains(centre)), None)
        regrouped += 1
    session.flush()
    return {"zones": len(rows), "replaced": int(removed or 0), "grids_regrouped": regrouped}


# -- stations, cameras, sensors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FacilityRow:
    id: str
    kind: str
    name: str
    lat: float
    lon: float
    zone: str | None  # stations: the zone whose station this is


def parse_facilities(data: Any, *, kind: str, crs: str = "wgs84") -> list[FacilityRow]:
    """Point features: cameras and sensors with ``id`` and ``name``; stations with ``name``
    and the ``zone`` they serve (``id`` defaults to ``ST-<zone>``)."""
    if kind not in FACILITY_KINDS:
        raise ValueError(f"unknown facility kind {kind!r}")
    errors: list[str] = []
    rows: list[FacilityRow] = []
    seen: dict[str, int] = {}
    for n, feature in enumerate(_features(data), start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        where = f"feature {n}"
        if not isinstance(props, dict):
            errors.append(f"{where}: no properties")
            continue
        before = len(errors)
        zone = None
        if kind == "station":
            zone = _code(props.get("zone"), "zone", where, errors)
            raw_id = props.get("id") or (f"ST-{zone}" if zone else None)
        else:
            raw_id = props.get("id")
        ident = _code(raw_id, "id", where, errors)
        where = f"feature {n}" + (f" ({ident})" if ident else "")
        if ident in seen:
            errors.append(f"{where}: id {ident} already used by feature {seen[ident]}")
        elif ident:
            seen[ident] = n
        name = _text(props, "name", where, errors, required=kind == "station")
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            errors.append(f"{where}: geometry must be a Point")
            continue
        coords: Any = geometry.get("coordinates")
        if not _position_ok(coords) or not isinstance(coords[0], int | float):
            errors.append(f"{where}: a Point's coordinates must be [lon, lat] numbers in range")
            continue
        lon, lat = _convert(coords, crs)
        if len(errors) == before and ident:
            rows.append(FacilityRow(ident, kind, name, lat, lon, zone))
    if errors:
        raise DistrictImportError(errors)
    return rows


def replace_facilities(session: Session, kind: str, rows: list[FacilityRow]) -> dict[str, int]:
    """Replace the facilities of ``kind``; each is filed under the grid it lies in. A station
    is also its zone's station (name and position: the dispatch console and the wall's
    zone labels use them); a station naming an unknown zone is an error. The caller commits."""
    zones = {z.code: z for z in session.scalars(select(Zone))}
    unknown = sorted({r.zone for r in rows if r.zone and r.zone not in zones})
    if unknown:
        raise DistrictImportError(
            [f"station of zone {code}: no such zone (import the zones first)" for code in unknown]
        )
    index = GridIndex(
        GridShape(code, geom)
        for code, geom in session.execute(
            select(Grid.code, Grid.geometry).where(Grid.level == "grid")
        ).tuples()
    )
    removed = session.execute(delete(Facility).where(Facility.kind == kind)).rowcount  # type: ignore[attr-defined]
    session.flush()
    session.add_all(
        Facility(
            id=r.id, kind=kind, name=r.name, lat=r.lat, lon=r.lon,
            grid_code=index.locate(r.lat, r.lon),
        )
        for r in rows
    )  # fmt: skip
    for r in rows:
        if r.zone:
            zone = zones[r.zone]
            zone.station_name, zone.station_lat, zone.station_lon = r.name, r.lat, r.lon
    session.flush()
    return {kind: len(rows), "replaced": int(removed or 0)}


# -- departments and units (CSV) ------------------------------------------------------------------


def _csv_rows(file: Path, required: tuple[str, ...], optional: tuple[str, ...]
              ) -> list[tuple[int, dict[str, str]]]:  # fmt: skip
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DistrictImportError([f"{file}: not a UTF-8 CSV file ({exc})"]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        raise DistrictImportError(
            [f"{file.name}: the header lacks {', '.join(missing)} (columns: "
             f"{', '.join(required)}, optionally {', '.join(optional)})"]
        )  # fmt: skip
    return [
        (n, {(k or "").strip(): (v or "").strip() for k, v in row.items()})
        for n, row in enumerate(reader, start=2)
    ]


def parse_departments(file: Path) -> list[dict[str, str]]:
    """``id,name[,name_en,kind]``; kind: department (default), volunteer, street, community,
    other."""
    errors: list[str] = []
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for line, row in _csv_rows(file, ("id", "name"), ("name_en", "kind")):
        where = f"line {line}"
        before = len(errors)
        ident = _code(row.get("id"), "id", where, errors)
        if ident in seen:
            errors.append(f"{where}: id {ident} appears twice")
        name = row.get("name", "")
        if not name or len(name) > 100:
            errors.append(f"{where}: name must be a non-empty text of at most 100 characters")
        kind = row.get("kind") or "department"
        if kind not in DEPARTMENT_KINDS:
            errors.append(f"{where}: kind must be one of {', '.join(DEPARTMENT_KINDS)}")
        if len(errors) == before and ident:
            seen.add(ident)
            rows.append(
                {"id": ident, "name": name, "name_en": row.get("name_en", "")[:100], "kind": kind}
            )
    if errors:
        raise DistrictImportError(errors)
    if not rows:
        raise DistrictImportError([f"{file.name}: no rows"])
    return rows


def parse_units(file: Path) -> list[dict[str, Any]]:
    """``id,name,kind[,department_id,zone_code]``; kind: patrol, grid_worker, vehicle,
    volunteer, unknown. Positions come from the units' pings (the stream contract)."""
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row in _csv_rows(file, ("id", "name", "kind"), ("department_id", "zone_code")):
        where = f"line {line}"
        before = len(errors)
        ident = _code(row.get("id"), "id", where, errors)
        if ident in seen:
            errors.append(f"{where}: id {ident} appears twice")
        name = row.get("name", "")
        if len(name) > 100:
            errors.append(f"{where}: name must be at most 100 characters")
        kind = row.get("kind", "")
        if kind not in UNIT_KINDS:
            errors.append(f"{where}: kind must be one of {', '.join(UNIT_KINDS)}, got {kind!r}")
        department = row.get("department_id") or None
        zone = row.get("zone_code") or None
        for label, value in (("department_id", department), ("zone_code", zone)):
            if value is not None:
                _code(value, label, where, errors)
        if len(errors) == before and ident:
            seen.add(ident)
            rows.append(
                {"id": ident, "name": name, "kind": kind, "department_id": department,
                 "zone_code": zone}
            )  # fmt: skip
    if errors:
        raise DistrictImportError(errors)
    if not rows:
        raise DistrictImportError([f"{file.name}: no rows"])
    return rows


def upsert_departments(session: Session, rows: list[dict[str, str]]) -> dict[str, int]:
    existing = {d.id: d for d in session.scalars(select(Department))}
    created = 0
    for row in rows:
        dept = existing.get(row["id"])
        if dept is None:
            session.add(Department(**row))
            created += 1
        else:
            dept.name, dept.name_en, dept.kind = row["name"], row["name_en"], row["kind"]
    session.flush()
    return {"departments": len(rows), "created": created}


def upsert_units(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Units by id; their departments and zones must exist (import those first). A unit's
    live status and last position are kept."""
    departments = set(session.scalars(select(Department.id)))
    zones = set(session.scalars(select(Zone.code)))
    errors = [
        f"unit {r['id']}: department {r['department_id']} is not known (lianqin import departments)"
        for r in rows
        if r["department_id"] and r["department_id"] not in departments
    ] + [
        f"unit {r['id']}: zone {r['zone_code']} is not known (lianqin import zones)"
        for r in rows
        if r["zone_code"] and r["zone_code"] not in zones
    ]
    if errors:
        raise DistrictImportError(errors)
    existing = {u.id: u for u in session.scalars(select(Unit))}
    created = 0
    for row in rows:
        unit = existing.get(row["id"])
        if unit is None:
            session.add(Unit(status="available", **row))
            created += 1
        else:
            for name, value in row.items():
                setattr(unit, name, value)
    session.flush()
    return {"units": len(rows), "created": created}


# -- the offline base map: roads and water --------------------------------------------------------

BASEMAP_KINDS = ("arterial", "road", "water")
_LINEAR = ("LineString", "MultiLineString", "Polygon", "MultiPolygon")


def parse_basemap(data: Any, *, crs: str = "wgs84") -> list[tuple[str, str, dict[str, Any]]]:
    """Roads and water for the map without tiles: LineString / MultiLineString (or
    Polygon for a lake) features with ``kind`` (arterial, road, water) and optional ``name``."""
    errors: list[str] = []
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for n, feature in enumerate(_features(data), start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        where = f"feature {n}"
        if not isinstance(props, dict):
            errors.append(f"{where}: no properties (kind is required)")
            continue
        kind = props.get("kind")
        if kind not in BASEMAP_KINDS:
            errors.append(f"{where}: kind must be one of {', '.join(BASEMAP_KINDS)}, got {kind!r}")
        name = _text(props, "name", where, errors, required=False)
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") not in _LINEAR:
            errors.append(f"{where}: geometry must be one of {', '.join(_LINEAR)}")
            continue
        if not _position_ok(geometry.get("coordinates")):
            errors.append(f"{where}: coordinates must be [lon, lat] numbers in range")
            continue
        if kind in BASEMAP_KINDS:
            converted = {
                "type": geometry["type"],
                "coordinates": _convert(geometry["coordinates"], crs),
            }
            rows.append((str(kind), name, converted))
    if errors:
        raise DistrictImportError(errors)
    return rows


def replace_basemap(session: Session, rows: list[tuple[str, str, dict[str, Any]]]
                    ) -> dict[str, int]:  # fmt: skip
    """Replace the roads and water (the district's outline stays). The caller commits."""
    from dashboard.models import MapFeature

    removed = session.execute(delete(MapFeature).where(MapFeature.kind.in_(BASEMAP_KINDS))).rowcount  # type: ignore[attr-defined]
    session.add_all(MapFeature(kind=k, name=name, geometry=g) for k, name, g in rows)
    session.flush()
    return {"features": len(rows), "replaced": int(removed or 0)}
