"""Geodesy helpers: Chinese datums (GCJ-02, BD-09) to WGS-84, distances, grid lookup.

GCJ-02 ("Mars coordinates") is the obfuscated datum that Chinese map providers
(Amap, Tencent) use; BD-09 is Baidu's offset on top of it. Both are defined only
by their forward transform (WGS-84 → GCJ-02 → BD-09), so the inverse is found by
fixed-point iteration, accurate to well under a centimetre. Outside mainland China
GCJ-02 equals WGS-84, as every provider implements it. The candidate libraries on
PyPI (eviltransform, prcoords, coord-convert) are unmaintained since 2018-2019;
the algorithm is forty lines and is tested here against published reference points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import shapely
from shapely.geometry import Point, shape
from shapely.strtree import STRtree

Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_VALUES: tuple[str, ...] = ("wgs84", "gcj02", "bd09")

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as GCJ-02 uses it
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0
EARTH_RADIUS_M = 6371008.8


def out_of_china(lat: float, lon: float) -> bool:
    """The rough bounding box inside which GCJ-02 differs from WGS-84."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 → GCJ-02 (the published forward transform)."""
    if out_of_china(lat, lon):
        return lat, lon
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = math.sin(radlat)
    magic = 1 - _EE * magic * magic
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lat + dlat, lon + dlon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 → BD-09 (Baidu's published forward transform)."""
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 → GCJ-02 by iterating the forward transform (exact to ~1e-9 degrees)."""
    return _invert(gcj02_to_bd09, lat, lon)


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 → WGS-84 by iterating the forward transform (exact to ~1e-9 degrees)."""
    if out_of_china(lat, lon):
        return lat, lon
    return _invert(wgs84_to_gcj02, lat, lon)


def _invert(
    forward: object, lat: float, lon: float, tol: float = 1e-10, max_iter: int = 30
) -> tuple[float, float]:
    fwd = forward  # a callable (lat, lon) -> (lat, lon)
    guess_lat, guess_lon = lat, lon
    for _ in range(max_iter):
        f_lat, f_lon = fwd(guess_lat, guess_lon)  # type: ignore[operator]
        d_lat, d_lon = f_lat - lat, f_lon - lon
        guess_lat -= d_lat
        guess_lon -= d_lon
        if abs(d_lat) < tol and abs(d_lon) < tol:
            break
    return guess_lat, guess_lon


def to_wgs84(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """Convert a point given in ``crs`` to WGS-84."""
    if crs == "wgs84":
        return lat, lon
    if crs == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if crs == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))
    raise ValueError(f"unknown crs {crs!r}")


def from_wgs84(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """Convert a WGS-84 point to ``crs`` (for display on GCJ-02 tiles)."""
    if crs == "wgs84":
        return lat, lon
    if crs == "gcj02":
        return wgs84_to_gcj02(lat, lon)
    if crs == "bd09":
        return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))
    raise ValueError(f"unknown crs {crs!r}")


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class GridShape:
    code: str
    geometry: dict  # GeoJSON geometry, WGS-84 lon/lat order


class GridIndex:
    """Which grid contains a point: an STR-tree over the grid polygons (immutable)."""

    def __init__(self, grids: Iterable[GridShape]) -> None:
        items = list(grids)
        self._codes: Sequence[str] = [g.code for g in items]
        self._geoms = [shape(g.geometry) for g in items]
        for geom in self._geoms:
            shapely.prepare(geom)
        self._tree = STRtree(self._geoms) if self._geoms else None

    def __len__(self) -> int:
        return len(self._codes)

    def locate(self, lat: float, lon: float) -> str | None:
        """The code of the grid containing the point, or None outside every grid."""
        if self._tree is None:
            return None
        hits = self._tree.query(Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        # Shared borders: the lowest code wins so that the answer is stable.
        return min(self._codes[int(i)] for i in hits)
