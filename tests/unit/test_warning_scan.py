"""The space-time permutation scan on a hand-built cluster over a lattice of grids."""

from __future__ import annotations

import numpy as np

from dashboard.services.warning import AlertBook, CaseTable, GridInfo, PlaceIndex
from dashboard.services.warning.scan import ScanSettings, gumbel_sf, neighbours, scan

NOW = 1_790_000_000.0
DAY = 86400.0


def lattice(n: int = 10) -> PlaceIndex:
    grids = [
        GridInfo(f"G{r}{c}", f"第{r}{c}网格", f"Z{r // 5}", 29.0 + r * 0.005, 106.0 + c * 0.005)
        for r in range(n)
        for c in range(n)
    ]
    return PlaceIndex.build(grids, {}, ("noise", "dispute"))


def background(places: PlaceIndex, days: int, per_slice: int, seed: int = 3) -> list:
    """Every day, ``per_slice`` cases spread evenly at random over grids in the last 2 h."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(days):
        end = NOW - d * DAY
        for _ in range(per_slice):
            g = places.grids[int(rng.integers(places.n_grids))].code
            out.append((end - float(rng.uniform(0, 7200)), g, "noise"))
    return out


def build(places: PlaceIndex, events: list) -> CaseTable:
    return CaseTable.build(
        places,
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
        ids=[f"C{i}" for i in range(len(events))],
    )


def test_neighbours_are_nearest_first() -> None:
    nbr = neighbours(lattice(), 5)
    assert nbr.shape == (100, 5)
    assert nbr[0, 0] == 0 and set(nbr[0, 1:3].tolist()) == {1, 10}  # G00: G01 and G10 next


def test_no_cluster_raises_nothing() -> None:
    places = lattice()
    table = build(places, background(places, 14, 60))
    for minute in range(0, 60, 10):
        assert scan(table, places, NOW - minute * 60, ScanSettings(seed=1)) == []


def test_a_cluster_over_neighbouring_grids_is_found() -> None:
    places = lattice()
    events = background(places, 14, 60)
    block = ["G44", "G45", "G54"]  # three neighbouring grids
    events += [(NOW - 60 - i * 100, block[i % 3], "noise") for i in range(12)]
    table = build(places, events)
    found = scan(table, places, NOW, ScanSettings(seed=1))
    assert found, "12 cases in 20 min over three neighbouring grids must be a cluster"
    top = found[0]
    assert set(block) <= set(top.grids) and len(top.grids) <= 5
    assert top.method == "stp_scan" and top.window_s == 1800
    assert top.observed >= 12 and top.expected < 3
    assert top.p_value < 1e-4 and top.level in ("blue", "yellow", "orange", "red")
    assert len([c for c in top.cases if int(c[1:]) >= len(events) - 12]) == 12
    # seeded: the same answer twice
    assert scan(table, places, NOW, ScanSettings(seed=1))[0] == top
    (event,) = AlertBook(places).update(NOW, found[:1])
    alert = event.alert
    assert alert.place_level == "cluster" and alert.method == "stp_scan"
    assert alert.fields()["grids"] == ",".join(top.grids)
    assert alert.message.startswith(
        f"{top.place.name}及周边{len(top.grids) - 1}个网格 全部类别 30分钟内"
    )


def test_gumbel_tail() -> None:
    maxima = np.random.default_rng(0).gumbel(5.0, 1.0, 999)
    assert abs(gumbel_sf(5.0 + 1.0 * 4.6, maxima) - 0.01) < 0.004
    assert gumbel_sf(30.0, maxima) < 1e-9
