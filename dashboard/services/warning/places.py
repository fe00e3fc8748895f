"""The places the early warning watches: grids, patrol zones and the whole district.

Plain data (no database): built from the grids' codes, names, zones and centroids, so the
detector, the scan and the rules share one numbering. A *series* is a (place, category)
pair, category ``*`` meaning all categories; series ids are ``place * (C + 1) + category``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

ALL = "*"  # the "all categories" series
DISTRICT = "district"  # the code of the whole district's place


@dataclass(frozen=True, slots=True)
class GridInfo:
    code: str
    name: str
    zone: str | None
    lat: float  # centroid, WGS-84
    lon: float


@dataclass(frozen=True, slots=True)
class Place:
    level: str  # grid | zone | district
    code: str
    name: str


@dataclass(frozen=True, eq=False)
class PlaceIndex:
    """Grids, zones and the district numbered once; categories numbered once."""

    grids: tuple[GridInfo, ...]
    zone_names: dict[str, str]
    categories: tuple[str, ...]
    district_name: str = "全区"
    places: tuple[Place, ...] = field(init=False)
    grid_pos: dict[str, int] = field(init=False)
    place_pos: dict[str, int] = field(init=False)
    cat_pos: dict[str, int] = field(init=False)
    grid_zone: np.ndarray = field(init=False)  # grid index → place index of its zone (or -1)

    def __post_init__(self) -> None:
        zones = sorted({g.zone for g in self.grids if g.zone} | set(self.zone_names))
        places = [Place("grid", g.code, g.name) for g in self.grids]
        places += [Place("zone", z, self.zone_names.get(z, z)) for z in zones]
        places.append(Place("district", DISTRICT, self.district_name))
        pos = {p.code: i for i, p in enumerate(places)}
        object.__setattr__(self, "places", tuple(places))
        object.__setattr__(self, "place_pos", pos)
        object.__setattr__(self, "grid_pos", {g.code: i for i, g in enumerate(self.grids)})
        object.__setattr__(self, "cat_pos", {c: i for i, c in enumerate(self.categories)})
        object.__setattr__(
            self,
            "grid_zone",
            np.array([pos[g.zone] if g.zone in pos else -1 for g in self.grids], dtype=np.int64),
        )

    @classmethod
    def build(
        cls,
        grids: Iterable[GridInfo],
        zone_names: dict[str, str],
        categories: Sequence[str],
        district_name: str = "全区",
    ) -> PlaceIndex:
        return cls(tuple(grids), dict(zone_names), tuple(categories), district_name)

    # -- numbering -------------------------------------------------------------------------

    @property
    def n_grids(self) -> int:
        return len(self.grids)

    @property
    def n_places(self) -> int:
        return len(self.places)

    @property
    def n_cats(self) -> int:
        """Categories plus the "all" column."""
        return len(self.categories) + 1

    @property
    def n_series(self) -> int:
        return self.n_places * self.n_cats

    @property
    def district_pos(self) -> int:
        return self.n_places - 1

    def series_id(self, place: str, category: str) -> int:
        c = len(self.categories) if category == ALL else self.cat_pos[category]
        return self.place_pos[place] * self.n_cats + c

    def series_key(self, sid: int) -> tuple[Place, str]:
        p, c = divmod(int(sid), self.n_cats)
        cat = ALL if c == len(self.categories) else self.categories[c]
        return self.places[p], cat

    def level_of_series(self) -> np.ndarray:
        """0 grid, 1 zone, 2 district for every series id."""
        level = np.array(
            [{"grid": 0, "zone": 1, "district": 2}[p.level] for p in self.places], dtype=np.int64
        )
        return np.repeat(level, self.n_cats)

    def case_series(self, grid_idx: np.ndarray, cat_idx: np.ndarray) -> np.ndarray:
        """(n, 6) series ids each case counts in: grid, zone, district × category, all.

        A case outside every grid (index -1) counts for the district only; its other
        columns hold -1 (dropped before counting)."""
        k = self.n_cats
        all_c = k - 1
        grid_idx = np.asarray(grid_idx, dtype=np.int64)
        cat_idx = np.asarray(cat_idx, dtype=np.int64)
        in_grid = grid_idx >= 0
        zone = np.where(in_grid, self.grid_zone[np.where(in_grid, grid_idx, 0)], -1)
        d = self.district_pos
        cols = [
            np.where(in_grid, grid_idx * k + cat_idx, -1),
            np.where(in_grid, grid_idx * k + all_c, -1),
            np.where(zone >= 0, zone * k + cat_idx, -1),
            np.where(zone >= 0, zone * k + all_c, -1),
            np.full_like(grid_idx, d * k) + cat_idx,
            np.full_like(grid_idx, d * k + all_c),
        ]
        return np.stack(cols, axis=1)

    # -- relations -------------------------------------------------------------------------

    def zone_of(self, place: str) -> str | None:
        i = self.grid_pos.get(place)
        return None if i is None else self.grids[i].zone

    def contains(self, outer: str, inner: str) -> bool:
        """Whether place ``outer`` is ``inner`` or contains it."""
        if outer == inner or outer == DISTRICT:
            return True
        return self.zone_of(inner) == outer

    def related(self, a: str, b: str) -> bool:
        return self.contains(a, b) or self.contains(b, a)


def related_categories(a: str, b: str) -> bool:
    return a == b or ALL in (a, b)
