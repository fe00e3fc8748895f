"""The demo district: a plausible 联勤 jurisdiction around the contract's example point.

`generate_district(seed)` is pure and deterministic: the same seed gives the same
district, byte for byte. It lays a 14 × 10 lattice of streets over about 8 km × 6 km
near 29.37°N 106.26°E (Chongqing), warps and jitters its vertices so that streets
look drawn rather than ruled, and drops a few corner cells so that the boundary is
irregular. Every cell is a grid (网格): they share vertices, so they tile the district
exactly (no gaps, no overlaps). Each grid is cut into 7 or 8 micro-grids (微网格) along
the straight iso-lines of its bilinear patch, which therefore tile it too.

`seed_district(session, district)` writes it through the ORM, idempotently.

Coordinates are WGS-84, GeoJSON in lon/lat order, rounded to 1e-6 degrees (~0.1 m).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from shapely.geometry import Polygon, mapping
from shapely.ops import unary_union
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.geo import EARTH_RADIUS_M, GridIndex, GridShape
from dashboard.models import Department, Facility, Grid, MapFeature, Unit, Zone

log = logging.getLogger(__name__)

CENTER = (29.37, 106.26)  # lat, lon: the contract's example point, Chongqing
WIDTH_M = 8000.0
HEIGHT_M = 6000.0
COLS = 14
ROWS = 10
# Cells left out of the lattice (row counted from the north, column from the west), so
# that 140 - 7 = 133 grids remain and the boundary is not a plain rectangle.
REMOVED_CELLS = frozenset({(0, 0), (0, 1), (1, 0), (0, 13), (9, 0), (9, 12), (9, 13)})
KIND_COUNTS = {"residential": 106, "market": 9, "campus": 6, "commercial": 4, "rural": 8}
MICRO_GRID_TOTAL = 997
GRID_KINDS = tuple(KIND_COUNTS)
_PRECISION = 6
_CELL_W = WIDTH_M / COLS
_CELL_H = HEIGHT_M / ROWS
_M_PER_DEG_LAT = math.pi / 180.0 * EARTH_RADIUS_M
_M_PER_DEG_LON = _M_PER_DEG_LAT * math.cos(math.radians(CENTER[0]))

# Street names of the interior lattice lines: east-west lines from the south (1..9),
# north-south lines from the west (1..13). Arterials are drawn as their own features.
EW_STREETS = (
    "南苑路",
    "福城大道",
    "富民路",
    "康宁路",
    "双福大道",
    "聚贤路",
    "兴业路",
    "桂花路",
    "北苑路",
)
NS_STREETS = (
    "枫林街", "松柏街", "福星路", "翠竹街", "杏林街", "文华街", "迎宾路",
    "新华街", "金桥街", "玉兰街", "聚福路", "荷花街", "石榴街",
)  # fmt: skip
ARTERIALS: dict[tuple[str, int], str] = {
    ("ew", 5): "双福大道",
    ("ew", 2): "福城大道",
    ("ns", 7): "迎宾路",
    ("ns", 3): "福星路",
    ("ns", 11): "聚福路",
}
COMMUNITIES = (
    "双福", "福城", "聚福", "福星", "金竹", "清水", "桂湖", "兰亭", "和平", "江南",
    "新桥", "凤凰", "锦绣", "龙泉", "枫香", "青龙", "白鹭", "荷塘", "翠湖", "玉泉",
    "松林", "紫薇", "长乐", "永兴", "天星",
)  # fmt: skip
VILLAGES = ("石门村", "新湖村", "稻香村")
CAMPUSES = ("西部科技职业学院", "渝南师范学院")
COMMERCIAL_PLACES = ("双福万达广场", "福城步行街", "双福汇购物中心", "迎宾商务中心")
ESTATE_SUFFIXES = ("小区", "花园", "家园", "苑", "新村", "雅居")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN_NAMES = (
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "平", "刚", "桂英", "建华", "志强", "海燕", "晓东", "红梅", "国庆",
    "玉兰", "文博", "子涵", "宇航", "思远", "雨欣", "俊杰", "春梅", "建国", "丽华", "小龙",
)  # fmt: skip
ZONE_NAMES = (
    ("第一巡区", "Patrol Zone 1 (northwest)"),
    ("第二巡区", "Patrol Zone 2 (north)"),
    ("第三巡区", "Patrol Zone 3 (northeast)"),
    ("第四巡区", "Patrol Zone 4 (southwest)"),
    ("第五巡区", "Patrol Zone 5 (south)"),
    ("第六巡区", "Patrol Zone 6 (southeast)"),
)
CORE_ZONE = ("Z7", "核心商圈巡区", "Core Business Zone", "核心商圈警务站")
# The core zone: the lattice block around the centre (rows from the north, columns).
CORE_ROWS = (4, 5)
CORE_COLS = (5, 6, 7, 8)

DEPARTMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("police", "公安派出所", "Police Station", "department"),
    ("city_mgmt", "城市管理", "City Management", "department"),
    ("market_supervision", "市场监管", "Market Supervision", "department"),
    ("environment", "生态环境", "Ecology and Environment", "department"),
    ("civil_affairs", "民政", "Civil Affairs", "department"),
    ("justice", "司法所/人民调解", "Justice and Mediation", "department"),
    ("traffic_police", "交警", "Traffic Police", "department"),
    ("fire_rescue", "消防救援", "Fire and Rescue", "department"),
    ("grid_office", "网格化服务管理中心", "Grid Management Office", "department"),
    ("vol_red_armband", "红袖标志愿者队", "Red Armband Volunteers", "volunteer"),
    ("vol_safety", "平安志愿者队", "Public Safety Volunteers", "volunteer"),
)
VEHICLES: tuple[tuple[str, str], ...] = (
    ("巡逻警车01", "police"),
    ("巡逻警车02", "police"),
    ("巡逻警车03", "police"),
    ("巡逻警车04", "police"),
    ("城管执法车01", "city_mgmt"),
    ("城管执法车02", "city_mgmt"),
    ("市场监管执法车", "market_supervision"),
    ("环境监察车", "environment"),
    ("交警铁骑01", "traffic_police"),
    ("交警铁骑02", "traffic_police"),
    ("消防巡查车", "fire_rescue"),
    ("民政救助服务车", "civil_affairs"),
)
VOLUNTEER_TEAMS: tuple[tuple[str, str], ...] = (
    ("红袖标志愿者一队", "vol_red_armband"),
    ("红袖标志愿者二队", "vol_red_armband"),
    ("红袖标志愿者三队", "vol_red_armband"),
    ("平安志愿者一队", "vol_safety"),
    ("平安志愿者二队", "vol_safety"),
    ("平安志愿者三队", "vol_safety"),
)
PATROL_UNITS = 40
CAMERAS = 105
SENSORS = 40


@dataclass(frozen=True, slots=True)
class GridSpec:
    """A grid (level ``grid``) or a micro-grid (level ``micro``, with its parent)."""

    code: str
    name: str
    kind: str
    level: str
    parent_code: str | None
    zone_code: str
    geometry: dict[str, Any]
    centroid_lat: float
    centroid_lon: float
    community: str = ""
    landmark: str = ""  # the estate, market, campus or mall it covers (for case texts)
    streets: tuple[str, ...] = ()  # streets along its border (for addresses)

    @property
    def corners(self) -> tuple[tuple[float, float], ...]:
        """The (lat, lon) corners of a grid's quadrilateral: SW, SE, NE, NW."""
        ring = self.geometry["coordinates"][0]
        return tuple((lat, lon) for lon, lat in ring[:4])


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    code: str
    name: str
    name_en: str
    station_name: str
    station_lat: float
    station_lon: float
    geometry: dict[str, Any]
    station_grid: str = ""
    grid_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FacilitySpec:
    id: str
    kind: str  # camera, sensor, station
    name: str
    lat: float
    lon: float
    grid_code: str


@dataclass(frozen=True, slots=True)
class DepartmentSpec:
    id: str
    name: str
    name_en: str
    kind: str  # department, volunteer


@dataclass(frozen=True, slots=True)
class UnitSpec:
    id: str
    name: str
    kind: str  # patrol, grid_worker, vehicle, volunteer
    department_id: str
    zone_code: str
    grid_code: str  # the home grid
    home_lat: float
    home_lon: float


@dataclass(frozen=True, slots=True)
class RoadSpec:
    kind: str  # arterial, road, water
    name: str
    geometry: dict[str, Any]


@dataclass(frozen=True, eq=False)
class District:
    """The whole demo district as plain data (no database)."""

    name: str
    name_en: str
    seed: int
    center: tuple[float, float]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    outline: dict[str, Any]
    grids: tuple[GridSpec, ...]
    micro_grids: tuple[GridSpec, ...]
    zones: tuple[ZoneSpec, ...]
    facilities: tuple[FacilitySpec, ...]
    departments: tuple[DepartmentSpec, ...]
    units: tuple[UnitSpec, ...]
    roads: tuple[RoadSpec, ...]

    @cached_property
    def grid_by_code(self) -> dict[str, GridSpec]:
        return {g.code: g for g in (*self.grids, *self.micro_grids)}

    @cached_property
    def zone_by_code(self) -> dict[str, ZoneSpec]:
        return {z.code: z for z in self.zones}

    @cached_property
    def unit_by_id(self) -> dict[str, UnitSpec]:
        return {u.id: u for u in self.units}

    @cached_property
    def grid_index(self) -> GridIndex:
        """Point → grid code over the grids (level ``grid``)."""
        return GridIndex(GridShape(g.code, g.geometry) for g in self.grids)

    def facilities_of(self, kind: str) -> tuple[FacilitySpec, ...]:
        return tuple(f for f in self.facilities if f.kind == kind)


# -- coordinates -------------------------------------------------------------------------


def _to_lonlat(x: float, y: float) -> tuple[float, float]:
    """Local metres (east, north of the centre) → rounded (lon, lat)."""
    lon = CENTER[1] + x / _M_PER_DEG_LON
    lat = CENTER[0] + y / _M_PER_DEG_LAT
    return round(lon, _PRECISION), round(lat, _PRECISION)


def _polygon(ring: Sequence[tuple[float, float]]) -> dict[str, Any]:
    coords = [[lon, lat] for lon, lat in ring]
    if coords[0] != coords[-1]:
        coords.append(list(coords[0]))
    return {"type": "Polygon", "coordinates": [coords]}


def _line(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [[lon, lat] for lon, lat in points]}


def _geojson(geom: Any) -> dict[str, Any]:
    """A shapely geometry as a JSON-ready GeoJSON dict (lists, not tuples)."""

    def listify(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [listify(v) for v in value]
        return round(value, _PRECISION) if isinstance(value, float) else value

    data = mapping(geom)
    return {"type": data["type"], "coordinates": listify(data["coordinates"])}


def _bilinear(corners: Sequence[tuple[float, float]], u: float, v: float) -> tuple[float, float]:
    """A point of the quadrilateral SW, SE, NE, NW (any 2-D coordinates) at (u, v) ∈ [0, 1]²."""
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = corners
    w_a, w_b, w_c, w_d = (1 - u) * (1 - v), u * (1 - v), u * v, (1 - u) * v
    return (
        w_a * ax + w_b * bx + w_c * cx + w_d * dx,
        w_a * ay + w_b * by + w_c * cy + w_d * dy,
    )


def random_point_in_grid(
    grid: GridSpec, rng: random.Random, margin: float = 0.12
) -> tuple[float, float]:
    """A random (lat, lon) well inside a grid (level ``grid``: a convex quadrilateral)."""
    corners = [(lon, lat) for lat, lon in grid.corners]
    lon, lat = _bilinear(corners, rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin))
    return round(lat, _PRECISION), round(lon, _PRECISION)


# -- generation --------------------------------------------------------------------------


@dataclass
class _Cell:
    row: int  # from the north
    col: int  # from the west
    code: str = ""
    kind: str = "residential"
    zone: str = ""
    name: str = ""
    community: str = ""
    landmark: str = ""

    @property
    def j(self) -> int:
        """The index of its southern lattice line (0 = the south edge)."""
        return ROWS - 1 - self.row


def _lattice(rng: random.Random) -> list[list[tuple[float, float]]]:
    """Vertex positions in local metres, ``[j][i]``: a smooth warp plus a small jitter.

    The displacement stays under 0.2 of a cell in each axis, so every cell remains a
    convex quadrilateral (which makes bilinear sampling and subdivision safe).
    """
    phase = [rng.uniform(0, 2 * math.pi) for _ in range(4)]
    amp, jitter = 60.0, 50.0
    x0, y0 = -WIDTH_M / 2, -HEIGHT_M / 2
    grid: list[list[tuple[float, float]]] = []
    for j in range(ROWS + 1):
        row: list[tuple[float, float]] = []
        for i in range(COLS + 1):
            bx, by = x0 + i * _CELL_W, y0 + j * _CELL_H
            wx = amp * math.sin(by / 1700.0 + phase[0]) * math.cos(bx / 2300.0 + phase[1])
            wy = amp * math.sin(bx / 1900.0 + phase[2]) * math.cos(by / 2100.0 + phase[3])
            row.append(
                (bx + wx + rng.uniform(-jitter, jitter), by + wy + rng.uniform(-jitter, jitter))
            )
        grid.append(row)
    return grid


def _assign_kinds(cells: dict[tuple[int, int], _Cell], rng: random.Random) -> None:
    centre = ((ROWS - 1) / 2, (COLS - 1) / 2)

    def dist(key: tuple[int, int]) -> float:
        return math.hypot(key[0] - centre[0], (key[1] - centre[1]) * 0.85)

    def neighbours(key: tuple[int, int]) -> list[tuple[int, int]]:
        r, c = key
        return [(r + dr, c + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))]

    free = set(cells)
    # Commercial: the 2 × 2 block at the centre.
    for key in ((4, 6), (4, 7), (5, 6), (5, 7)):
        cells[key].kind = "commercial"
        free.discard(key)
    # Rural: boundary cells farthest from the centre.
    boundary = [k for k in free if any(n not in cells for n in neighbours(k))]
    boundary.sort(key=lambda k: (-dist(k) + rng.uniform(0, 0.6), k))
    for key in boundary[: KIND_COUNTS["rural"]]:
        cells[key].kind = "rural"
        free.discard(key)
    # Campuses: two L-shaped clusters of three, one west, one east, off the edges.
    for side in (range(2, 5), range(9, 12)):
        options = [
            (r, c)
            for r in range(2, 7)
            for c in side
            if all(k in free for k in ((r, c), (r + 1, c), (r, c + 1)))
            and not any(
                cells.get(n) and cells[n].kind == "commercial"
                for k in ((r, c), (r + 1, c), (r, c + 1))
                for n in neighbours(k)
            )
        ]
        r, c = rng.choice(sorted(options))
        for key in ((r, c), (r + 1, c), (r, c + 1)):
            cells[key].kind = "campus"
            free.discard(key)
    # Markets: nine, favouring the centre, never two side by side.
    candidates = sorted(free, key=lambda k: (dist(k) + rng.uniform(0, 3.0), k))
    markets: list[tuple[int, int]] = []
    for key in candidates:
        if all(max(abs(key[0] - m[0]), abs(key[1] - m[1])) >= 2 for m in markets):
            markets.append(key)
        if len(markets) == KIND_COUNTS["market"]:
            break
    for key in markets:
        cells[key].kind = "market"
        free.discard(key)


def _zone_of(cell: _Cell) -> str:
    if cell.row in CORE_ROWS and cell.col in CORE_COLS:
        return CORE_ZONE[0]
    band = 0 if cell.col <= 4 else 1 if cell.col <= 9 else 2
    return f"Z{band + 1 + (3 if cell.row >= 5 else 0)}"


def _name_cells(cells: list[_Cell], rng: random.Random) -> None:
    """Chinese names: community grids are numbered within their community."""
    counters: dict[str, int] = {}
    campus_cells = sorted((c for c in cells if c.kind == "campus"), key=lambda c: c.col)
    campus_of = {id(c): CAMPUSES[0 if c.col < COLS // 2 else 1] for c in campus_cells}
    commercial = sorted((c for c in cells if c.kind == "commercial"), key=lambda c: (c.row, c.col))
    commercial_of = {id(c): COMMERCIAL_PLACES[n] for n, c in enumerate(commercial)}
    estate_suffix = {name: rng.choice(ESTATE_SUFFIXES) for name in COMMUNITIES}
    for cell in cells:
        community = COMMUNITIES[(cell.row // 2) * 5 + cell.col // 3]
        cell.community = community
        if cell.kind == "rural":
            village = VILLAGES[0 if cell.col < 5 else 1 if cell.col < 10 else 2]
            n = counters[village] = counters.get(village, 0) + 1
            cell.community = village
            cell.name = f"{village}第{n}网格"
            cell.landmark = village
        elif cell.kind == "market":
            n = counters[f"market:{community}"] = counters.get(f"market:{community}", 0) + 1
            cell.landmark = f"{community}{('农贸市场', '综合市场', '菜市场')[min(n, 3) - 1]}"
            cell.name = f"{cell.landmark}网格"
        elif cell.kind == "campus":
            campus = campus_of[id(cell)]
            n = counters[campus] = counters.get(campus, 0) + 1
            cell.landmark = campus
            cell.name = f"{campus}第{n}网格"
        elif cell.kind == "commercial":
            cell.landmark = commercial_of[id(cell)]
            cell.name = f"{cell.landmark}网格"
        else:
            key = f"{community}社区"
            n = counters[key] = counters.get(key, 0) + 1
            cell.landmark = f"{community}{estate_suffix[community]}"
            cell.name = f"{key}第{n}网格"


def _street_runs(
    lattice: list[list[tuple[float, float]]], present: set[tuple[int, int]]
) -> list[tuple[str, int, list[tuple[float, float]]]]:
    """Interior lattice lines as runs of vertices (metres), where a grid borders them."""

    def cell_at(j: int, i: int) -> bool:
        return (ROWS - 1 - j, i) in present  # cell whose SW vertex is (j, i)

    runs: list[tuple[str, int, list[tuple[float, float]]]] = []
    for j in range(1, ROWS):
        edges = [cell_at(j, i) or cell_at(j - 1, i) for i in range(COLS)]
        runs.extend(("ew", j, pts) for pts in _runs(edges, lambda i, j=j: lattice[j][i]))
    for i in range(1, COLS):
        edges = [cell_at(j, i) or cell_at(j, i - 1) for j in range(ROWS)]
        runs.extend(("ns", i, pts) for pts in _runs(edges, lambda j, i=i: lattice[j][i]))
    return runs


def _runs(edges: list[bool], vertex: Any) -> Iterable[list[tuple[float, float]]]:
    start = None
    for k, on in [*enumerate(edges), (len(edges), False)]:
        if on and start is None:
            start = k
        elif not on and start is not None:
            yield [vertex(n) for n in range(start, k + 1)]
            start = None


def _extend(points: list[tuple[float, float]], metres: float) -> list[tuple[float, float]]:
    """The polyline lengthened at both ends (arterials run on beyond the boundary)."""

    def ahead(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        dx, dy = b[0] - a[0], b[1] - a[1]
        norm = math.hypot(dx, dy) or 1.0
        return (b[0] + dx / norm * metres, b[1] + dy / norm * metres)

    return [ahead(points[1], points[0]), *points, ahead(points[-2], points[-1])]


def _river(rng: random.Random) -> list[tuple[float, float]]:
    """清溪河: enters in the west, meanders south-east, leaves through the south-east."""
    phase = rng.uniform(0, 2 * math.pi)
    points = []
    n = 48
    for k in range(n + 1):
        t = k / n
        x = -WIDTH_M / 2 - 300 + t * (WIDTH_M + 600)
        y = HEIGHT_M * (0.12 - 0.42 * t) + 260 * math.sin(t * 5.5 * math.pi + phase)
        points.append((x, y))
    return points


def _micro_splits(rng: random.Random, n: int) -> tuple[float, list[float], list[float]]:
    """Where to cut a grid into ``n`` micro-grids: a middle line and two rows of cuts."""
    bottom = n // 2
    top = n - bottom
    vm = 0.5 + rng.uniform(-0.08, 0.08)

    def cuts(parts: int) -> list[float]:
        inner = [(k + rng.uniform(-0.15, 0.15)) / parts for k in range(1, parts)]
        return [0.0, *inner, 1.0]

    return vm, cuts(bottom), cuts(top)


def _micro_polygons(
    corners_lonlat: Sequence[tuple[float, float]], rng: random.Random, n: int
) -> list[list[tuple[float, float]]]:
    """Rings (lon, lat) of ``n`` micro-grids tiling a convex quadrilateral.

    The two rows meet along a straight iso-line of the bilinear patch; each piece
    carries the other row's cut points that fall on its side of that line, so that
    neighbours share every vertex (no T-junction slivers).
    """
    vm, bottom, top = _micro_splits(rng, n)

    def p(u: float, v: float) -> tuple[float, float]:
        # At the corners the weights are exactly 0 and 1: the parent's vertices come back
        # bit for bit, so micro-grids share them with the grid and its neighbours.
        lon, lat = _bilinear(corners_lonlat, u, v)
        return round(lon, _PRECISION), round(lat, _PRECISION)

    rings: list[list[tuple[float, float]]] = []
    # The northern row first (codes run from the north-west, like the grids).
    for u0, u1 in itertools.pairwise(top):
        middle = [p(u, vm) for u in bottom if u0 < u < u1]
        rings.append([p(u0, vm), *middle, p(u1, vm), p(u1, 1.0), p(u0, 1.0)])
    for u0, u1 in itertools.pairwise(bottom):
        middle = [p(u, vm) for u in reversed(top) if u0 < u < u1]
        rings.append([p(u0, 0.0), p(u1, 0.0), p(u1, vm), *middle, p(u0, vm)])
    return rings


def _centroid(poly: Polygon) -> tuple[float, float]:
    point = poly.centroid
    if not poly.contains(point):
        point = poly.representative_point()
    return round(point.y, _PRECISION), round(point.x, _PRECISION)


def _person_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def generate_district(seed: int = 7) -> District:
    """The demo district for ``seed`` (deterministic, pure, well under a second)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not security
    lattice = _lattice(rng)
    cells = {
        (r, c): _Cell(r, c) for r in range(ROWS) for c in range(COLS) if (r, c) not in REMOVED_CELLS
    }
    _assign_kinds(cells, rng)
    ordered = [cells[k] for k in sorted(cells)]  # north to south, west to east
    for n, cell in enumerate(ordered, start=1):
        cell.code = f"G{n:03d}"
        cell.zone = _zone_of(cell)
    _name_cells(ordered, rng)

    ew = {j: EW_STREETS[j - 1] for j in range(1, ROWS)}
    ns = {i: NS_STREETS[i - 1] for i in range(1, COLS)}

    # Grids.
    grids: list[GridSpec] = []
    polys: dict[str, Polygon] = {}
    corners_of: dict[str, list[tuple[float, float]]] = {}
    for cell in ordered:
        j, i = cell.j, cell.col
        corners = [
            _to_lonlat(*lattice[j][i]),
            _to_lonlat(*lattice[j][i + 1]),
            _to_lonlat(*lattice[j + 1][i + 1]),
            _to_lonlat(*lattice[j + 1][i]),
        ]
        poly = Polygon(corners)
        polys[cell.code] = poly
        corners_of[cell.code] = corners
        lat, lon = _centroid(poly)
        streets = tuple(
            name
            for name in (ew.get(j), ew.get(j + 1), ns.get(i), ns.get(i + 1))
            if name is not None
        )
        grids.append(
            GridSpec(
                code=cell.code,
                name=cell.name,
                kind=cell.kind,
                level="grid",
                parent_code=None,
                zone_code=cell.zone,
                geometry=_polygon(corners),
                centroid_lat=lat,
                centroid_lon=lon,
                community=cell.community,
                landmark=cell.landmark,
                streets=streets,
            )
        )

    # Micro-grids: 7 each, 8 in the denser ones, 997 in all.
    extra = MICRO_GRID_TOTAL - 7 * len(grids)
    dense = [g.code for g in grids if g.kind in ("residential", "commercial", "market")]
    eights = set(rng.sample(dense, extra))
    micro: list[GridSpec] = []
    for grid in grids:
        n = 8 if grid.code in eights else 7
        for k, ring in enumerate(_micro_polygons(corners_of[grid.code], rng, n), start=1):
            lat, lon = _centroid(Polygon(ring))
            micro.append(
                GridSpec(
                    code=f"{grid.code}-{k:02d}",
                    name=f"{grid.name}{k}号微网格",
                    kind=grid.kind,
                    level="micro",
                    parent_code=grid.code,
                    zone_code=grid.zone_code,
                    geometry=_polygon(ring),
                    centroid_lat=lat,
                    centroid_lon=lon,
                    community=grid.community,
                    landmark=grid.landmark,
                    streets=grid.streets,
                )
            )

    # Zones, each with a station in its most central grid.
    zone_names = {f"Z{n}": (zh, en, f"{zh}警务站") for n, (zh, en) in enumerate(ZONE_NAMES, 1)}
    zone_names[CORE_ZONE[0]] = CORE_ZONE[1:]
    zones: list[ZoneSpec] = []
    facilities: list[FacilitySpec] = []
    grid_by_code = {g.code: g for g in grids}
    for code in sorted(zone_names):
        members = [g.code for g in grids if g.zone_code == code]
        shape = unary_union([polys[c] for c in members])
        centre = shape.centroid
        home = min(members, key=lambda c: polys[c].centroid.distance(centre))
        zh, en, station = zone_names[code]
        g = grid_by_code[home]
        zones.append(
            ZoneSpec(
                code=code,
                name=zh,
                name_en=en,
                station_name=station,
                station_lat=g.centroid_lat,
                station_lon=g.centroid_lon,
                geometry=_geojson(shape),
                station_grid=home,
                grid_codes=tuple(members),
            )
        )
        facilities.append(
            FacilitySpec(f"ST-{code}", "station", station, g.centroid_lat, g.centroid_lon, home)
        )

    outline_shape = unary_union(list(polys.values()))
    outline = _geojson(outline_shape)
    west, south, east, north = outline_shape.bounds

    facilities = (
        _cameras(rng, lattice, cells, grids, polys, ew, ns) + _sensors(rng, grids) + facilities
    )
    units = _units(rng, grids, zones)
    roads = _roads(rng, lattice, cells, ew, ns)
    departments = tuple(DepartmentSpec(*d) for d in DEPARTMENTS)
    return District(
        name="双福街道（演示辖区）",
        name_en="Shuangfu Subdistrict (demo)",
        seed=seed,
        center=CENTER,
        bounds=(
            (round(south, _PRECISION), round(west, _PRECISION)),
            (round(north, _PRECISION), round(east, _PRECISION)),
        ),
        outline=outline,
        grids=tuple(grids),
        micro_grids=tuple(micro),
        zones=tuple(zones),
        facilities=tuple(facilities),
        departments=departments,
        units=tuple(units),
        roads=tuple(roads),
    )


def _cameras(
    rng: random.Random,
    lattice: list[list[tuple[float, float]]],
    cells: dict[tuple[int, int], _Cell],
    grids: list[GridSpec],
    polys: dict[str, Polygon],
    ew: dict[int, str],
    ns: dict[int, str],
) -> list[FacilitySpec]:
    """Video points: at street crossings (busier ones first) and inside busy grids."""
    weight = {"commercial": 5.0, "market": 3.0, "campus": 2.0, "residential": 1.0, "rural": 0.3}
    crossings: list[tuple[float, int, int, list[_Cell]]] = []
    for j in range(1, ROWS):
        for i in range(1, COLS):
            around = [
                cells[(ROWS - 1 - jj, ii)]
                for jj in (j - 1, j)
                for ii in (i - 1, i)
                if (ROWS - 1 - jj, ii) in cells
            ]
            if len(around) < 3:
                continue
            arterial = ("ew", j) in ARTERIALS or ("ns", i) in ARTERIALS
            score = sum(weight[c.kind] for c in around) * (2.0 if arterial else 1.0)
            # Weighted sampling without replacement (Efraimidis-Spirakis keys).
            crossings.append((rng.random() ** (1.0 / score), j, i, around))
    crossings.sort(reverse=True)
    by_code = {g.code: g for g in grids}
    out: list[FacilitySpec] = []
    for _key, j, i, around in crossings[:70]:
        cell = rng.choice(around)
        x, y = lattice[j][i]
        lon, lat = _to_lonlat(x, y)
        target = polys[cell.code].centroid
        # 15 m from the crossing into one of the grids around it.
        dx, dy = (target.x - lon) * _M_PER_DEG_LON, (target.y - lat) * _M_PER_DEG_LAT
        norm = math.hypot(dx, dy) or 1.0
        lon2, lat2 = _to_lonlat(x + dx / norm * 15, y + dy / norm * 15)
        name = f"{ew[j]}与{ns[i]}交叉口"
        out.append(FacilitySpec(f"CAM-{len(out) + 1:03d}", "camera", name, lat2, lon2, cell.code))
    inner: list[tuple[GridSpec, str]] = []
    for g in grids:
        if g.kind in ("commercial", "market"):
            inner += [(g, "出入口"), (g, "中心")]
        elif g.kind == "campus":
            inner.append((g, "校门"))
    residential = [g for g in grids if g.kind == "residential"]
    for g in rng.sample(residential, CAMERAS - len(out) - len(inner)):
        inner.append((g, "小区门口"))
    for g, spot in inner:
        lat, lon = random_point_in_grid(by_code[g.code], rng, margin=0.25)
        out.append(
            FacilitySpec(
                f"CAM-{len(out) + 1:03d}", "camera", f"{g.landmark}{spot}", lat, lon, g.code
            )
        )
    return out


def _sensors(rng: random.Random, grids: list[GridSpec]) -> list[FacilitySpec]:
    """IoT fire sensors: electrical-fire monitors in markets, smoke sensors in old blocks."""
    out: list[FacilitySpec] = []
    places: list[tuple[GridSpec, str]] = []
    for g in grids:
        if g.kind == "market":
            places += [(g, "电气火灾监测点"), (g, "智能烟感")]
    residential = [g for g in grids if g.kind == "residential"]
    for g in rng.sample(residential, SENSORS - len(places)):
        places.append((g, f"{rng.randint(1, 30)}栋智能烟感"))
    for g, what in places:
        lat, lon = random_point_in_grid(g, rng, margin=0.2)
        out.append(
            FacilitySpec(
                f"IOT-{len(out) + 1:03d}", "sensor", f"{g.landmark}{what}", lat, lon, g.code
            )
        )
    return out


def _units(rng: random.Random, grids: list[GridSpec], zones: list[ZoneSpec]) -> list[UnitSpec]:
    by_code = {g.code: g for g in grids}
    names = iter(_person_names(rng, PATROL_UNITS + len(grids)))
    units: list[UnitSpec] = []

    def near_station(zone: ZoneSpec) -> tuple[str, float, float]:
        # Half start from the station's grid, the others anywhere in the zone.
        code = zone.station_grid if rng.random() < 0.5 else rng.choice(zone.grid_codes)
        lat, lon = random_point_in_grid(by_code[code], rng)
        return code, lat, lon

    # Patrol staff: six per geographic zone, four in the core zone.
    zone_cycle = [z for z in zones if z.code != CORE_ZONE[0]] * 6 + [
        z for z in zones if z.code == CORE_ZONE[0]
    ] * (PATROL_UNITS - 36)
    for n, zone in enumerate(zone_cycle, start=1):
        code, lat, lon = near_station(zone)
        units.append(
            UnitSpec(
                f"P-{n:03d}", f"巡逻员 {next(names)}", "patrol", "police", zone.code, code, lat, lon
            )
        )
    for n, grid in enumerate(grids, start=1):
        lat, lon = random_point_in_grid(grid, rng)
        units.append(
            UnitSpec(
                f"GW-{n:03d}", f"网格员 {next(names)}", "grid_worker", "grid_office",
                grid.zone_code, grid.code, lat, lon,
            )
        )  # fmt: skip
    for n, (name, dept) in enumerate(VEHICLES, start=1):
        zone = zones[(n - 1) % len(zones)]
        code, lat, lon = near_station(zone)
        units.append(UnitSpec(f"V-{n:03d}", name, "vehicle", dept, zone.code, code, lat, lon))
    for n, (name, dept) in enumerate(VOLUNTEER_TEAMS, start=1):
        zone = zones[(n - 1) % 6]
        code, lat, lon = near_station(zone)
        units.append(UnitSpec(f"VT-{n:03d}", name, "volunteer", dept, zone.code, code, lat, lon))
    return units


def _roads(
    rng: random.Random,
    lattice: list[list[tuple[float, float]]],
    cells: dict[tuple[int, int], _Cell],
    ew: dict[int, str],
    ns: dict[int, str],
) -> list[RoadSpec]:
    roads: list[RoadSpec] = []
    for (axis, k), name in ARTERIALS.items():
        if axis == "ew":
            points = [lattice[k][i] for i in range(COLS + 1)]
        else:
            points = [lattice[j][k] for j in range(ROWS + 1)]
        roads.append(
            RoadSpec("arterial", name, _line([_to_lonlat(*p) for p in _extend(points, 250)]))
        )
    seen: dict[str, int] = {}
    for axis, k, points in _street_runs(lattice, set(cells)):
        if (axis, k) in ARTERIALS:
            continue
        base = ew[k] if axis == "ew" else ns[k]
        n = seen[base] = seen.get(base, 0) + 1
        name = base if n == 1 else f"{base}（{n}段）"
        roads.append(RoadSpec("road", name, _line([_to_lonlat(*p) for p in points])))
    roads.append(RoadSpec("water", "清溪河", _line([_to_lonlat(*p) for p in _river(rng)])))
    return roads


# -- the database ------------------------------------------------------------------------


def _upsert(
    session: Session,
    model: type[Any],
    key: str,
    rows: list[dict[str, Any]],
    *,
    insert_only: Sequence[str] = (),
) -> int:
    """Insert missing rows, update changed fields of existing ones; return how many were new.

    Fields in ``insert_only`` are written on insert only (live state such as a unit's
    status must survive a re-seed).
    """
    column = getattr(model, key)
    existing = {
        getattr(obj, key): obj
        for obj in session.scalars(select(model).where(column.in_([r[key] for r in rows])))
    }
    created = 0
    for row in rows:
        obj = existing.get(row[key])
        if obj is None:
            session.add(model(**row))
            created += 1
            continue
        for name, value in row.items():
            if name not in insert_only and getattr(obj, name) != value:
                setattr(obj, name, value)
    return created


def _chunks(rows: list[dict[str, Any]], size: int = 500) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def seed_district(session: Session, district: District) -> dict[str, int]:
    """Write the district through the ORM, idempotently; the caller commits.

    Units are written without positions (they come from pings) and keep their live
    status when the district is seeded again. Map features are keyed by kind and name.
    Returns the number of rows of each kind the district has, plus ``created``.
    """
    created = 0
    created += _upsert(
        session,
        Department,
        "id",
        [
            {"id": d.id, "name": d.name, "name_en": d.name_en, "kind": d.kind}
            for d in district.departments
        ],
    )
    created += _upsert(
        session,
        Zone,
        "code",
        [
            {
                "code": z.code,
                "name": z.name,
                "name_en": z.name_en,
                "station_name": z.station_name,
                "station_lat": z.station_lat,
                "station_lon": z.station_lon,
                "geometry": z.geometry,
            }
            for z in district.zones
        ],
    )
    grid_rows = [
        {
            "code": g.code,
            "name": g.name,
            "kind": g.kind,
            "level": g.level,
            "parent_code": g.parent_code,
            "zone_code": g.zone_code,
            "geometry": g.geometry,
            "centroid_lat": g.centroid_lat,
            "centroid_lon": g.centroid_lon,
        }
        for g in (*district.grids, *district.micro_grids)
    ]
    for chunk in _chunks(grid_rows):
        created += _upsert(session, Grid, "code", chunk)
    for chunk in _chunks(
        [
            {
                "id": f.id,
                "kind": f.kind,
                "name": f.name,
                "lat": f.lat,
                "lon": f.lon,
                "grid_code": f.grid_code,
            }
            for f in district.facilities
        ]
    ):
        created += _upsert(session, Facility, "id", chunk)
    created += _upsert(
        session,
        Unit,
        "id",
        [
            {
                "id": u.id,
                "name": u.name,
                "kind": u.kind,
                "department_id": u.department_id,
                "zone_code": u.zone_code,
                "status": "available",
            }
            for u in district.units
        ],
        insert_only=("status",),
    )
    features = [("outline", district.name, district.outline)] + [
        (r.kind, r.name, r.geometry) for r in district.roads
    ]
    existing = {(f.kind, f.name): f for f in session.scalars(select(MapFeature))}
    for kind, name, geometry in features:
        row = existing.get((kind, name))
        if row is None:
            session.add(MapFeature(kind=kind, name=name, geometry=geometry))
            created += 1
        elif row.geometry != geometry:
            row.geometry = geometry
    session.flush()
    counts = {
        "departments": len(district.departments),
        "zones": len(district.zones),
        "grids": len(district.grids),
        "micro_grids": len(district.micro_grids),
        "facilities": len(district.facilities),
        "units": len(district.units),
        "map_features": len(features),
        "created": created,
    }
    log.info("district %s seeded: %s", district.name, counts)
    return counts


__all__ = [
    "DepartmentSpec",
    "District",
    "FacilitySpec",
    "GridSpec",
    "RoadSpec",
    "UnitSpec",
    "ZoneSpec",
    "generate_district",
    "random_point_in_grid",
    "seed_district",
]
