"""Datum conversions against published reference values, distances, grid lookup."""

from __future__ import annotations

import math

import pytest

from dashboard.geo import (
    GridIndex,
    GridShape,
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    haversine_m,
    out_of_china,
    to_wgs84,
    wgs84_to_gcj02,
)

# Test vectors of wandergis/coordtransform, the reference implementation that hutool and
# coordtransform_rs test against (point: lon 116.404, lat 39.915, Beijing). Its forward
# transforms are the definitions; its inverses are one-step approximations, which ours
# (iterated to convergence) must agree with to within a metre.
P = (39.915, 116.404)
WGS_TO_GCJ = (39.91640428150164, 116.41024449916938)
GCJ_TO_BD = (39.92133699351021, 116.41036949371029)
GCJ_TO_WGS_APPROX = (39.91359571849836, 116.39775550083061)
BD_TO_GCJ_APPROX = (39.90865673957631, 116.39762729119315)


def close(a: tuple[float, float], b: tuple[float, float], metres: float) -> bool:
    return haversine_m(a[0], a[1], b[0], b[1]) <= metres


def test_forward_transforms_match_the_reference_exactly() -> None:
    assert wgs84_to_gcj02(*P) == pytest.approx(WGS_TO_GCJ, abs=1e-12)
    assert gcj02_to_bd09(*P) == pytest.approx(GCJ_TO_BD, abs=1e-12)


def test_inverse_transforms_agree_with_the_reference_approximations() -> None:
    assert close(gcj02_to_wgs84(*P), GCJ_TO_WGS_APPROX, 1.0)
    assert close(bd09_to_gcj02(*P), BD_TO_GCJ_APPROX, 1.0)
    # ... and are exact where the approximations are not:
    assert wgs84_to_gcj02(*gcj02_to_wgs84(*P)) == pytest.approx(P, abs=1e-9)
    assert gcj02_to_bd09(*bd09_to_gcj02(*P)) == pytest.approx(P, abs=1e-9)


@pytest.mark.parametrize(
    "point", [(29.3702, 106.2610), (22.54, 114.06), (45.75, 126.63), (39.9, 116.4)]
)
def test_round_trips_are_exact_to_a_centimetre(point: tuple[float, float]) -> None:
    for crs in ("gcj02", "bd09"):
        back = to_wgs84(*from_wgs84(*point, crs), crs)
        assert close(back, point, 0.01), crs


def test_offset_is_hundreds_of_metres_in_china_and_zero_outside() -> None:
    shift = haversine_m(*P, *wgs84_to_gcj02(*P))
    assert 300 < shift < 800
    boston = (42.3594, -71.0587)
    assert out_of_china(*boston)
    assert to_wgs84(*boston, "gcj02") == boston


def test_wgs84_is_identity_and_unknown_crs_raises() -> None:
    assert to_wgs84(1.0, 2.0, "wgs84") == (1.0, 2.0)
    with pytest.raises(ValueError):
        to_wgs84(1.0, 2.0, "utm")


def test_haversine_one_degree_of_latitude() -> None:
    assert math.isclose(haversine_m(0, 0, 1, 0), 111_195, rel_tol=1e-3)


def square(x0: float, y0: float, size: float) -> dict:
    return {
        "type": "Polygon",
        "coordinates": [
            [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
        ],
    }


def test_grid_index_locates_points_and_breaks_border_ties_stably() -> None:
    index = GridIndex([GridShape("B", square(1, 0, 1)), GridShape("A", square(0, 0, 1))])
    assert index.locate(0.5, 0.5) == "A"  # lat 0.5, lon 0.5
    assert index.locate(0.5, 1.5) == "B"
    assert index.locate(0.5, 1.0) == "A"  # on the shared border
    assert index.locate(5, 5) is None
    assert GridIndex([]).locate(0, 0) is None
