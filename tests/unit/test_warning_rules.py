"""Rule alarms: the parser refuses bad rules with its own error only; the evaluator fires."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.contract.entries import SOURCES
from dashboard.services.warning import AlertBook, GridInfo, PlaceIndex
from dashboard.services.warning.rules import (
    CaseRecord,
    RuleError,
    evaluate,
    parse_duration,
    parse_rule_data,
    parse_rules,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "warning-rules.example.toml"
CATS = ("dispute", "fire_hazard", "noise")
LAT, LON = 29.37, 106.26
M_LAT = 111_195.0
M_LON = M_LAT * math.cos(math.radians(LAT))
NOW = 1_790_000_000.0


def places() -> PlaceIndex:
    grids = [
        GridInfo("G1", "福城社区第4网格", "Z1", LAT, LON),
        GridInfo("G2", "福城社区第5网格", "Z1", LAT, LON + 0.01),
    ]
    return PlaceIndex.build(grids, {"Z1": "第一巡区"}, CATS)


def case(cid: str, ago_s: float, north: float = 0, east: float = 0, **kw) -> CaseRecord:
    return CaseRecord(cid, NOW - ago_s, LAT + north / M_LAT, LON + east / M_LON, **kw)


def example_rules():
    return parse_rules(EXAMPLE.read_text(encoding="utf-8"), categories=CATS, sources=SOURCES)


def test_the_example_file_parses() -> None:
    rules = {r.id: r for r in example_rules()}
    assert set(rules) == {"iot-fire-cluster", "p1-unaccepted", "dispute-grid-day"}
    fire = rules["iot-fire-cluster"]
    assert (fire.min_count, fire.window_s, fire.within_m, fire.level) == (3, 600, 200.0, "orange")
    assert rules["p1-unaccepted"].after_s == 120 and rules["p1-unaccepted"].priorities == {1}
    assert rules["dispute-grid-day"].per == "grid" and rules["dispute-grid-day"].window_s == 86400


def test_json_is_accepted_too() -> None:
    text = json.dumps({"rules": [{"id": "a", "min_count": 2, "window": 600, "per": "zone"}]})
    (rule,) = parse_rules(text, "json")
    assert rule.window_s == 600 and rule.level == "yellow"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"id": "a", "min_count": 3, "window": "10x", "per": "grid"},
            'window: "10x" is not a duration',
        ),
        ({"id": "a", "min_count": 3, "window": "10m"}, "either within_m (a cluster) or per"),
        ({"id": "a", "min_count": 0, "window": "10m", "per": "grid"}, "min_count: a whole number"),
        ({"id": "a", "min_count": True, "window": "10m", "per": "grid"}, "min_count"),
        (
            {"id": "a", "min_count": 3, "window": "10m", "per": "grid", "categroy": "x"},
            "unknown field 'categroy'",
        ),
        (
            {"id": "a", "min_count": 3, "window": "10m", "per": "grid", "category": "fire"},
            "unknown 'fire'",
        ),
        (
            {"id": "a", "min_count": 3, "window": "10m", "per": "grid", "level": "pink"},
            "level: one of",
        ),
        ({"id": "a", "when": "unaccepted"}, "after: required"),
        ({"id": "a", "when": "unaccepted", "after": "2m", "window": "1h"}, "window: not for"),
        ({"id": "a b", "min_count": 3, "window": "10m", "per": "grid"}, "id: 1-64"),
        ({"id": "a", "min_count": 3, "window": "8d", "per": "grid"}, "at most 7d"),
        ({"id": "a", "min_count": 3, "window": "1h", "within_m": -5}, "within_m: metres"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(rule: dict, message: str) -> None:
    with pytest.raises(RuleError, match="rule 1") as info:
        parse_rule_data({"rule": [rule]}, categories=CATS, sources=SOURCES)
    assert message in str(info.value)


def test_duplicate_ids_and_broken_files_are_refused() -> None:
    good = {"id": "a", "min_count": 3, "window": "10m", "per": "grid"}
    with pytest.raises(RuleError, match="used by an earlier rule"):
        parse_rule_data({"rule": [good, good]})
    with pytest.raises(RuleError, match="not valid TOML"):
        parse_rules("[[rule]\nid = ")
    with pytest.raises(RuleError, match="not valid JSON"):
        parse_rules("{", "json")
    with pytest.raises(RuleError, match="unknown top-level field"):
        parse_rules("ruels = 1")


def test_durations() -> None:
    assert [parse_duration(x) for x in ("90s", "10m", "2h", "1d", 45, " 3 m ")] == [
        90,
        600,
        7200,
        86400,
        45,
        180,
    ]
    for bad in ("", "1w", "-1m", 0, 1.5, True, None, "10mm", "٣m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
rule_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=8) | st.integers(),
        "when": st.sampled_from(["count", "unaccepted", "x"]),
        "min_count": json_values,
        "window": st.sampled_from(["10m", "1d", "x", 0, 60]) | json_values,
        "per": st.sampled_from(["grid", "zone", "moon"]) | json_values,
        "within_m": json_values,
        "after": json_values,
        "level": st.sampled_from(["red", "红", "x"]),
        "category": json_values,
        "source": json_values,
        "priority": json_values,
        "name": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_rules_or_rule_error(text: str) -> None:
    for fmt in ("toml", "json"):
        try:
            parse_rules(text, fmt, categories=CATS, sources=SOURCES)
        except RuleError:
            pass


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        json_values,
        st.lists(rule_like, max_size=3),
        st.dictionaries(
            st.sampled_from(["rule", "rules", "x"]), st.lists(rule_like | json_values, max_size=3)
        ),
    )
)
def test_any_structure_gives_rules_or_rule_error(data: object) -> None:
    try:
        rules = parse_rule_data(data, categories=CATS, sources=SOURCES)
    except RuleError:
        return
    for rule in rules:  # whatever is accepted can be evaluated
        evaluate([rule], [case("c", 10, category="noise")], NOW, places())


def test_a_cluster_of_iot_fire_alarms_fires_once_per_cluster() -> None:
    rules = [r for r in example_rules() if r.id == "iot-fire-cluster"]
    fire = {"category": "fire_hazard", "source": "iot", "grid": "G1"}
    cases = [
        case("a", 60, 0, 0, **fire),
        case("b", 120, 50, 50, **fire),
        case("c", 300, -80, 40, **fire),
        case("far", 200, 900, 0, **fire),  # 900 m away
        case("old", 900, 10, 0, **fire),  # 15 min ago: out of the window
        case("app", 60, 5, 5, category="fire_hazard", source="grid_app", grid="G1"),
    ]
    (hit,) = evaluate(rules, cases, NOW, places())
    assert set(hit.cases) == {"a", "b", "c"} and hit.observed == 3
    assert hit.level == "orange" and hit.place_level == "circle"
    assert "200米内" in hit.message and "消防隐患" in hit.message
    assert evaluate(rules, cases[1:], NOW, places()) == []


def test_an_unaccepted_urgent_case_fires_and_stays_one_alert() -> None:
    rules = [r for r in example_rules() if r.id == "p1-unaccepted"]
    cases = [
        case("late", 150, priority=1, grid="G1", category="noise"),
        case("fresh", 30, priority=1, grid="G1", category="noise"),
        case("taken", 600, priority=1, status="registered", grid="G1", category="noise"),
        case("p2", 600, priority=2, grid="G1", category="noise"),
    ]
    (hit,) = evaluate(rules, cases, NOW, places())
    assert hit.cases == ("late",) and "2 分钟未受理" in hit.message
    book = AlertBook(places())
    first = book.update(NOW, hits=[hit])
    again = book.update(NOW + 60, hits=evaluate(rules, cases, NOW + 60, places()))
    assert [e.kind for e in first] == ["raised"]
    assert [e.kind for e in again] == []  # the same case: the same alert, nothing new
    two = evaluate(rules, cases, NOW + 90, places())  # "fresh" is now late too
    assert [(e.kind, e.alert.cases) for e in book.update(NOW + 90, hits=two)] == [
        ("raised", ("fresh",))
    ]


def test_disputes_per_grid_in_a_day() -> None:
    rules = [r for r in example_rules() if r.id == "dispute-grid-day"]
    cases = [case(f"d{i}", i * 3600, category="dispute", grid="G1") for i in range(5)]
    cases += [case(f"e{i}", i * 3600, category="dispute", grid="G2") for i in range(4)]
    (hit,) = evaluate(rules, cases, NOW, places())
    assert hit.place == "G1" and hit.observed == 5
    assert hit.message.startswith("福城社区第4网格 矛盾纠纷 1天内 5 起")
    assert hit.message_en.startswith("福城社区第4网格 Dispute: 5 in 1 d")
