"""Loading a real district's grids from GeoJSON (``lianqin import grids FILE.geojson``).

The file is a FeatureCollection of Polygon / MultiPolygon features whose
properties name each grid: ``code`` (the grid code cases carry, the contract's
id charset), ``name`` and ``kind`` (residential, commercial, market, campus,
rural, industrial, mixed, other); optionally ``level`` (``grid``, the default,
or ``micro``), ``parent`` (a micro-grid's grid) and ``zone`` (a patrol zone
code). Every problem is reported with the feature's position and code, all at
once, and nothing is written unless the whole file is valid.

Loading replaces the grids (and micro-grids) of the database; the district
outline of the offline base map becomes the union of the new grids, and the old
district's roads and water are removed unless kept. Existing cases keep the
grid code they were filed under.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shapely.geometry import mapping, shape
from shapely.ops import unary_union
from shapely.validation import explain_validity
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dashboard.contract.entries import ID_RE, ID_RULE
from dashboard.geo import to_wgs84
from dashboard.models import Grid, MapFeature, Zone

GRID_KINDS: tuple[str, ...] = (
    "residential",
    "commercial",
    "market",
    "campus",
    "rural",
    "industrial",
    "mixed",
    "other",
)
LEVELS = ("grid", "micro")
_CODE_RE = ID_RE  # a grid or zone code is an id of the stream contract
MAX_ERRORS = 50


class GridImportError(ValueError):
    """The file is not a valid grid collection; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = f"\n… and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        super().__init__("\n".join(shown) + more)


@dataclass(frozen=True, slots=True)
class GridRow:
    code: str
    name: str
    kind: str
    level: str
    parent: str | None
    zone: str | None
    geometry: dict[str, Any]
    centroid: tuple[float, float]  # lat, lon


def _convert(coords: Any, crs: str) -> Any:
    if coords and isinstance(coords[0], int | float):
        lat, lon = to_wgs84(float(coords[1]), float(coords[0]), crs)
        return [round(lon, 7), round(lat, 7)]
    return [_convert(part, crs) for part in coords]


def _check_coords(coords: Any, where: str, errors: list[str]) -> bool:
    """Every position is [lon, lat] of finite numbers in range."""
    if not isinstance(coords, list) or not coords:
        errors.append(f"{where}: coordinates must be a non-empty array")
        return False
    if isinstance(coords[0], int | float) and not isinstance(coords[0], bool):
        ok = (
            len(coords) >= 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in coords[:2])
            and all(math.isfinite(v) for v in coords[:2])
        )
        if not ok:
            errors.append(f"{where}: a position must be [lon, lat] numbers, got {coords!r:.60}")
            return False
        lon, lat = coords[0], coords[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            errors.append(
                f"{where}: position [{lon}, {lat}] out of range (GeoJSON is [lon, lat] in degrees)"
            )
            return False
        return True
    return all(_check_coords(part, where, errors) for part in coords)


def parse_grid_collection(data: Any, *, crs: str = "wgs84") -> list[GridRow]:
    """Validate a FeatureCollection of grids; raise GridImportError listing every problem."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise GridImportError(["the file must hold a GeoJSON FeatureCollection"])
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise GridImportError(["the FeatureCollection has no features"])
    errors: list[str] = []
    rows: list[GridRow] = []
    seen: dict[str, int] = {}
    for n, feature in enumerate(features, start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        code_text = props.get("code") if isinstance(props, dict) else None
        where = f"feature {n}" + (f" ({code_text})" if isinstance(code_text, str) else "")
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            errors.append(f"{where}: not a GeoJSON Feature")
            continue
        if not isinstance(props, dict):
            errors.append(f"{where}: no properties (code, name and kind are required)")
            continue
        before = len(errors)
        code = props.get("code")
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
            errors.append(f"{where}: code must be {ID_RULE}")
        elif code in seen:
            errors.append(f"{where}: code {code} already used by feature {seen[code]}")
        else:
            seen[code] = n
        name = props.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            errors.append(f"{where}: name must be a non-empty text of at most 100 characters")
        kind = props.get("kind")
        if kind not in GRID_KINDS:
            errors.append(f"{where}: kind must be one of {', '.join(GRID_KINDS)}, got {kind!r}")
        level = props.get("level") or "grid"
        if level not in LEVELS:
            errors.append(f"{where}: level must be grid or micro, got {level!r}")
        parent = props.get("parent")
        if level == "micro" and not isinstance(parent, str):
            errors.append(f"{where}: a micro-grid names its grid in parent")
        zone = props.get("zone")
        if zone is not None and (not isinstance(zone, str) or not _CODE_RE.fullmatch(zone)):
            errors.append(f"{where}: zone must be a zone code")
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") not in (
            "Polygon",
            "MultiPolygon",
        ):
            kind_of = geometry.get("type") if isinstance(geometry, dict) else geometry
            errors.append(f"{where}: geometry must be a Polygon or MultiPolygon, got {kind_of!r}")
            continue
        if not _check_coords(geometry.get("coordinates"), where, errors):
            continue
        try:
            converted = {
                "type": geometry["type"],
                "coordinates": _convert(geometry["coordinates"], crs),
            }
            shp = shape(converted)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            errors.append(f"{where}: not a valid polygon ({exc})")
            continue
        if shp.is_empty or not shp.is_valid:
            errors.append(f"{where}: invalid polygon: {explain_validity(shp)}")
            continue
        if len(errors) > before:
            continue
        centroid = shp.centroid
        rows.append(
            GridRow(
                code=str(code),
                name=str(name).strip(),
                kind=str(kind),
                level=str(level),
                parent=parent if level == "micro" else None,
                zone=zone,
                geometry=converted,
                centroid=(round(centroid.y, 7), round(centroid.x, 7)),
            )
        )
    grid_codes = {r.code for r in rows if r.level == "grid"}
    for row in rows:
        if row.level == "micro" and row.parent not in grid_codes:
            errors.append(f"micro-grid {row.code}: parent {row.parent!r} is not a grid of the file")
    if not grid_codes and not errors:
        errors.append("the file has micro-grids only: at least one grid (level grid) is needed")
    if errors:
        raise GridImportError(errors)
    return rows


def replace_grids(
    session: Session, rows: list[GridRow], *, keep_basemap: bool = False
) -> dict[str, int]:
    """Replace every grid and micro-grid with ``rows``; redraw the outline; the caller commits."""
    zones = [(z.code, shape(z.geometry)) for z in session.scalars(select(Zone))]

    def zone_of(row: GridRow) -> str | None:
        if row.zone:
            return row.zone
        lat, lon = row.centroid
        for code, geom in zones:
            if geom.contains(shape({"type": "Point", "coordinates": [lon, lat]})):
                return code
        return None

    removed = session.execute(delete(Grid)).rowcount  # type: ignore[attr-defined]
    session.add_all(
        Grid(
            code=r.code,
            name=r.name,
            kind=r.kind,
            level=r.level,
            parent_code=r.parent,
            zone_code=zone_of(r),
            geometry=r.geometry,
            centroid_lat=r.centroid[0],
            centroid_lon=r.centroid[1],
        )
        for r in rows
    )
    outline = unary_union([shape(r.geometry) for r in rows if r.level == "grid"])
    if keep_basemap:
        session.execute(delete(MapFeature).where(MapFeature.kind == "outline"))
    else:
        session.execute(delete(MapFeature))  # the old district's roads and water too
    session.add(MapFeature(kind="outline", name="district", geometry=_geojson(outline)))
    session.flush()
    return {
        "grids": sum(1 for r in rows if r.level == "grid"),
        "micro_grids": sum(1 for r in rows if r.level == "micro"),
        "replaced": int(removed or 0),
    }


def _geojson(geom: Any) -> dict[str, Any]:
    def listify(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [listify(v) for v in value]
        return round(value, 7) if isinstance(value, float) else value

    data = mapping(geom)
    return {"type": data["type"], "coordinates": listify(data["coordinates"])}
