"""The duplicate-report scorer: Chinese paraphrases score high, other events nearby low."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.services.duplicates import (
    DuplicateSettings,
    NearbyIndex,
    Report,
    bigrams,
    dice,
    find_duplicates,
    normalise,
    numbered,
    rank_all,
    related,
    score_pair,
)

LAT, LON = 29.37, 106.26
M_LAT = 111_195.0
M_LON = M_LAT * math.cos(math.radians(LAT))


def at(north_m: float, east_m: float) -> tuple[float, float]:
    return LAT + north_m / M_LAT, LON + east_m / M_LON


def report(
    rid: str,
    ts: float,
    north: float,
    east: float,
    category: str,
    text: str,
    source: str = "hotline_12345",
    title: str = "",
) -> Report:
    lat, lon = at(north, east)
    return Report(rid, ts, lat, lon, category, source, title, text)


OPEN = report(
    "A",
    0,
    0,
    0,
    "noise",
    "12345热线市民来电反映：福城苑17栋住户夜间施工扰民，吵得睡不着。",
    title="夜间施工扰民",
)


def test_a_chinese_paraphrase_scores_high() -> None:
    new = report(
        "B",
        900,
        20,
        10,
        "noise",
        "市民来电称，福城苑17栋有居民晚上装修，噪音很大，影响休息，希望尽快处理。",
        source="grid_app",
        title="夜间装修噪音",
    )
    cand = score_pair(new, OPEN)
    assert cand is not None and cand.score >= DuplicateSettings().min_score
    assert cand.distance_m == pytest.approx(22.4, abs=0.5)
    assert set(cand.explain) >= {"place", "time", "category", "text"}


def test_another_building_nearby_scores_low() -> None:
    other = report("C", 900, 30, -20, "noise", "12345热线市民来电反映：福城苑5栋住户夜间施工扰民。")
    cand = score_pair(other, OPEN)
    assert cand is not None and cand.score < DuplicateSettings().min_score
    assert cand.explain.get("numbers") == "conflict"


def test_another_kind_of_event_nearby_scores_low() -> None:
    other = report("D", 600, 10, 10, "dispute", "福城苑两户居民因停车位发生争执，现场情绪激动。")
    cand = score_pair(other, OPEN)
    assert cand is not None and cand.score < DuplicateSettings().min_score
    assert cand.explain["category"] == DuplicateSettings().related_factor


def test_unrelated_categories_far_or_late_reports_are_not_candidates() -> None:
    assert score_pair(report("E", 60, 5, 5, "fire_hazard", OPEN.description), OPEN) is None
    assert score_pair(report("F", 60, 150, 0, "noise", OPEN.description), OPEN) is None
    assert score_pair(report("G", 7201, 0, 0, "noise", OPEN.description), OPEN) is None


def test_a_machine_report_is_judged_by_place_and_time() -> None:
    fire = report("H", 0, 0, 0, "fire_hazard", "福城苑3栋楼道有电动车充电冒烟，有烧焦味。")
    alarm = report(
        "I",
        120,
        5,
        0,
        "fire_hazard",
        "物联感知：烟感探测器触发报警，请立即核实现场情况。",
        source="iot",
    )
    cand = score_pair(alarm, fire)
    assert cand is not None and cand.score > 0.8
    assert "machine" in str(cand.explain["text"])


def test_find_duplicates_uses_the_cells_and_ranks() -> None:
    index = NearbyIndex(100.0, LAT)
    same = report("S", 300, 30, 0, "noise", "福城苑17栋晚上有人装修，噪音扰民。")
    far = report("X", 300, 400, 0, "noise", OPEN.description)
    for r in (OPEN, same, far):
        index.add(r)
    new = report("N", 600, 10, 0, "noise", "福城苑17栋住户夜间施工，噪音扰民。")
    found = find_duplicates(new, index)
    assert [c.id for c in found] == ["S", "A"] or [c.id for c in found] == ["A", "S"]
    assert all(0.0 <= c.score <= 1.0 for c in found)
    assert [c.id for c in rank_all(new, [OPEN, same, far])] == [c.id for c in found]
    index.remove("S")
    assert [c.id for c in find_duplicates(new, index)] == ["A"]
    assert index.prune(before=200) == 1 and len(index) == 1  # A (ts 0) forgotten; X stays


def test_text_helpers() -> None:
    assert normalise("12345热线市民来电反映：１７栋 住户！") == "17栋住户"
    assert numbered("福城苑１７栋3单元201室") == {"栋": {"17"}, "单元": {"3"}, "室": {"201"}}
    assert dice(bigrams("夜间施工"), bigrams("夜间施工")) == 1.0
    assert related("noise", "illegal_construction") and related("illegal_construction", "noise")
    assert not related("noise", "fire_hazard")


@given(st.text(max_size=60), st.text(max_size=60))
def test_scores_stay_in_range_whatever_the_text(a: str, b: str) -> None:
    cand = score_pair(report("P", 10, 5, 5, "noise", a), report("Q", 0, 0, 0, "noise", b))
    assert cand is not None and 0.0 <= cand.score <= 1.0
