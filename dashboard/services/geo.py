"""Map geometry for the browser: the view, the offline base map, grids and zones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.geo import from_wgs84
from dashboard.models import Case, Facility, Grid, MapFeature, Unit, Zone


@dataclass(frozen=True, slots=True)
class MapView:
    center: tuple[float, float]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    zoom: int = 14


# Where the map opens when no district is loaded: the contract's example point (Chongqing).
DEFAULT_CENTER = (29.3702, 106.2610)


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def _extent(geometries: list[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], int | float):
            xs.append(float(coords[0]))
            ys.append(float(coords[1]))
        else:
            for part in coords:
                walk(part)

    for geometry in geometries:
        walk(geometry.get("coordinates", []))
    if not xs:
        return None
    return min(ys), min(xs), max(ys), max(xs)


# How many of the newest cases the map's fallback extent looks at, and the share of them
# left out at each edge (a stray point far away must not zoom the map out to a continent).
POINT_SAMPLE = 20000
POINT_TRIM = 0.01


def _trimmed(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    cut = int(len(ordered) * POINT_TRIM) if len(ordered) >= 100 else 0
    return ordered[cut], ordered[len(ordered) - 1 - cut]


def _points_extent(session: Session) -> tuple[float, float, float, float] | None:
    """The extent of what is on the map when no area is loaded: facilities, the units' last
    positions and the newest cases (their outermost 1 % trimmed off)."""
    points = [
        (float(lat), float(lon))
        for lat, lon in session.execute(select(Facility.lat, Facility.lon)).tuples()
    ]
    points += [
        (float(lat), float(lon))
        for lat, lon in session.execute(select(Unit.last_lat, Unit.last_lon)).tuples()
        if lat is not None and lon is not None
    ]
    cases = [
        (float(lat), float(lon))
        for lat, lon in session.execute(
            select(Case.lat, Case.lon).order_by(Case.reported_at.desc()).limit(POINT_SAMPLE)
        ).tuples()
    ]
    if cases:
        south, north = _trimmed([lat for lat, _ in cases])
        west, east = _trimmed([lon for _, lon in cases])
        points += [(south, west), (north, east)]
    if not points:
        return None
    lats = [lat for lat, _ in points]
    lons = [lon for _, lon in points]
    south, west, north, east = min(lats), min(lons), max(lats), max(lons)
    pad_lat = max((north - south) * 0.05, 0.002)  # a single point still gets a street's view
    pad_lon = max((east - west) * 0.05, 0.002)
    return south - pad_lat, west - pad_lon, north + pad_lat, east + pad_lon


_ZOOMS = ((14, 0.06), (13, 0.12), (12, 0.25), (11, 0.5), (10, 1.0), (9, 2.0), (8, 4.0))


def map_view(session: Session) -> MapView:
    """Center and bounds of whatever geography is loaded: the district's outline, else its
    grids, else its patrol zones, else the points on the map (facilities, units, the newest
    cases — an import without a district), else a default."""
    outline = list(session.scalars(select(MapFeature.geometry).where(MapFeature.kind == "outline")))
    extent = (
        _extent(outline)
        or _extent(list(session.scalars(select(Grid.geometry).where(Grid.level == "grid"))))
        or _extent(list(session.scalars(select(Zone.geometry))))
        or _points_extent(session)
    )
    if extent is None:
        lat, lon = DEFAULT_CENTER
        return MapView(
            center=(lat, lon), bounds=((lat - 0.03, lon - 0.04), (lat + 0.03, lon + 0.04))
        )
    south, west, north, east = extent
    center = ((south + north) / 2, (west + east) / 2)
    span = max(north - south, (east - west) * 0.87)
    zoom = next((z for z, most in _ZOOMS if span < most), 7)
    return MapView(center=center, bounds=((south, west), (north, east)), zoom=zoom)


def basemap(session: Session) -> dict[str, Any]:
    """The district's own outline, roads and water: the base map when there are no tiles."""
    order = {"outline": 0, "water": 1, "road": 2, "arterial": 3}
    rows = sorted(session.scalars(select(MapFeature)), key=lambda f: (order.get(f.kind, 9), f.id))
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": f.geometry,
                "properties": {"kind": f.kind, "name": f.name},
            }
            for f in rows
        ]
    )


def grids(session: Session, *, level: str = "grid") -> dict[str, Any]:
    rows = session.scalars(select(Grid).where(Grid.level == level).order_by(Grid.code))
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": g.geometry,
                "properties": {
                    "code": g.code,
                    "name": g.name,
                    "kind": g.kind,
                    "zone": g.zone_code,
                    "parent": g.parent_code,
                },
            }
            for g in rows
        ]
    )


def zones(session: Session) -> dict[str, Any]:
    rows = session.scalars(select(Zone).order_by(Zone.code))
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": z.geometry,
                "properties": {
                    "code": z.code,
                    "name": z.name,
                    "name_en": z.name_en,
                    "station": z.station_name,
                    "station_lat": z.station_lat,
                    "station_lon": z.station_lon,
                },
            }
            for z in rows
        ]
    )


def facilities(session: Session, *, kind: str | None = None) -> dict[str, Any]:
    query = select(Facility).order_by(Facility.id)
    if kind:
        query = query.where(Facility.kind == kind)
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [f.lon, f.lat]},
                "properties": {"id": f.id, "kind": f.kind, "name": f.name, "grid": f.grid_code},
            }
            for f in session.scalars(query)
        ]
    )


def for_display(collection: dict[str, Any], crs: str) -> dict[str, Any]:
    """A copy of a FeatureCollection shifted to the datum of the map's tiles (GCJ-02 for Amap).

    Display only: what is stored and what the rest of the API returns stays WGS-84.
    """
    if crs == "wgs84":
        return collection

    def shift(coords: Any) -> Any:
        if coords and isinstance(coords[0], int | float):
            lat, lon = from_wgs84(float(coords[1]), float(coords[0]), crs)
            return [round(lon, 7), round(lat, 7)]
        return [shift(part) for part in coords]

    features = []
    for feature in collection["features"]:
        geometry = dict(feature["geometry"])
        geometry["coordinates"] = shift(geometry.get("coordinates", []))
        props = dict(feature.get("properties") or {})
        if props.get("station_lat") is not None and props.get("station_lon") is not None:
            lat, lon = from_wgs84(props["station_lat"], props["station_lon"], crs)
            props["station_lat"], props["station_lon"] = round(lat, 7), round(lon, 7)
        features.append({**feature, "geometry": geometry, "properties": props})
    return {**collection, "features": features}
