"""Rule alarms a command center writes by hand, next to the statistics.

A rules file is TOML (``[[rule]]`` tables) or JSON (``{"rules": [...]}`` or a list)::

    [[rule]]
    id = "iot-fire-cluster"
    name = "物联消防报警聚集"
    level = "orange"                 # blue|yellow|orange|red (or 蓝|黄|橙|红)
    when = "count"                   # count | unaccepted
    category = ["fire_hazard"]       # optional filters: category, source, priority
    source = ["iot"]
    min_count = 3
    window = "10m"                   # 90s, 10m, 2h, 1d or seconds
    within_m = 200                   # count: a cluster — cases within 200 m of one of them …
    # per = "grid"                   # … or per place: grid | zone | district

    [[rule]]
    id = "p1-unaccepted"
    when = "unaccepted"              # still `reported` (not registered or later) …
    priority = [1]
    after = "2m"                     # … this long after it was reported
    level = "red"

:func:`parse_rules` refuses a bad file with :class:`RuleError` only — whatever the input —
naming the rule and the field (``rule 2 (iot-fire-cluster): window: "10x" is not a
duration such as 90s, 10m, 2h, 1d``). :func:`evaluate` runs the rules over the recent
cases (plain records) and returns :class:`~dashboard.services.warning.alerts.RuleHit`s
for the :class:`~dashboard.services.warning.alerts.AlertBook`.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dashboard.geo import haversine_m
from dashboard.services.warning.alerts import RuleHit, category_text, window_text
from dashboard.services.warning.places import ALL, DISTRICT, PlaceIndex
from dashboard.services.warning.settings import LEVEL_ZH, LEVELS

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DURATION = re.compile(r"^\s*([0-9]{1,7})\s*([smhd]?)\s*$", re.ASCII)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_S = 7 * 86400
MAX_RULES = 500
_KEYS = {
    "id", "name", "name_en", "level", "when", "category", "source", "priority", "min_count",
    "window", "within_m", "per", "after",
}  # fmt: skip
_NOT_DURATION = "is not a duration such as 90s, 10m, 2h, 1d (at most 7d)"
_LEVEL_ALIASES = {zh: en for en, zh in LEVEL_ZH.items()}


class RuleError(ValueError):
    """A rules file that cannot be used, with the reason for people."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    name_en: str
    level: str
    when: str  # count | unaccepted
    categories: frozenset[str] = frozenset()  # empty: any
    sources: frozenset[str] = frozenset()
    priorities: frozenset[int] = frozenset()
    min_count: int = 1
    window_s: int = 0
    within_m: float | None = None
    per: str | None = None  # grid | zone | district
    after_s: int = 0

    def matches(self, case: CaseRecord) -> bool:
        return (
            (not self.categories or case.category in self.categories)
            and (not self.sources or case.source in self.sources)
            and (not self.priorities or case.priority in self.priorities)
        )


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A recent case as the rules see it."""

    id: str
    ts: float  # reported, epoch seconds
    lat: float
    lon: float
    category: str
    source: str = "other"
    priority: int = 3
    status: str = "reported"
    grid: str | None = None


# -- parsing ---------------------------------------------------------------------------


def parse_duration(value: object) -> int:
    """90s / 10m / 2h / 1d / a number of seconds → seconds (ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError
    if not 0 < seconds <= MAX_WINDOW_S:
        raise ValueError
    return seconds


def _strings(where: str, key: str, value: object, allowed: Iterable[str] | None) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise RuleError(f"{where}: {key}: a name or a non-empty list of names")
    if allowed is not None:
        allowed = set(allowed)
        unknown = sorted({v for v in items if v not in allowed})
        if unknown:
            raise RuleError(f"{where}: {key}: unknown {', '.join(map(repr, unknown[:5]))}")
    return frozenset(items)


def _int(where: str, key: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RuleError(f"{where}: {key}: a whole number from {lo} to {hi}")
    return value


def _rule(
    i: int, data: object, categories: Iterable[str] | None, sources: Iterable[str] | None
) -> Rule:
    where = f"rule {i}"
    if not isinstance(data, dict):
        raise RuleError(f"{where}: a table of fields (id, level, when, …)")
    rid = data.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise RuleError(f"{where}: id: 1-64 characters of A-Z a-z 0-9 . _ -")
    where = f"rule {i} ({rid})"
    unknown = sorted(str(k)[:40] for k in data if k not in _KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown field {', '.join(map(repr, unknown[:5]))}")
    name = data.get("name", rid)
    name_en = data.get("name_en", name)
    for key, value in (("name", name), ("name_en", name_en)):
        if not isinstance(value, str) or not 0 < len(value) <= 100:
            raise RuleError(f"{where}: {key}: text of 1-100 characters")
    level = data.get("level", "yellow")
    level = _LEVEL_ALIASES.get(level, level) if isinstance(level, str) else level
    if level not in LEVELS:
        raise RuleError(f"{where}: level: one of {', '.join(LEVELS)} (or 蓝, 黄, 橙, 红)")
    when = data.get("when", "count")
    if when not in ("count", "unaccepted"):
        raise RuleError(f"{where}: when: count or unaccepted")
    cats = srcs = frozenset[str]()
    if "category" in data:
        cats = _strings(where, "category", data["category"], categories)
    if "source" in data:
        srcs = _strings(where, "source", data["source"], sources)
    prios: frozenset[int] = frozenset()
    if "priority" in data:
        value = data["priority"]
        items = value if isinstance(value, list) else [value]
        if not items:
            raise RuleError(f"{where}: priority: 1 … 4, or a list of them")
        prios = frozenset(_int(where, "priority", v, 1, 4) for v in items)
    rule = Rule(rid, str(name), str(name_en), str(level), str(when), cats, srcs, prios)
    if when == "unaccepted":
        for key in ("min_count", "window", "within_m", "per"):
            if key in data:
                raise RuleError(f'{where}: {key}: not for `when = "unaccepted"` (use after)')
        if "after" not in data:
            raise RuleError(f"{where}: after: required (how long a case may stay unaccepted)")
        try:
            after = parse_duration(data["after"])
        except ValueError:
            raise RuleError(f"{where}: after: {_show(data['after'])} {_NOT_DURATION}") from None
        return _replace(rule, after_s=after)
    if "after" in data:
        raise RuleError(f'{where}: after: only for `when = "unaccepted"`')
    for key in ("min_count", "window"):
        if key not in data:
            raise RuleError(f"{where}: {key}: required for a count rule")
    min_count = _int(where, "min_count", data["min_count"], 1, 100_000)
    try:
        window = parse_duration(data["window"])
    except ValueError:
        raise RuleError(f"{where}: window: {_show(data['window'])} {_NOT_DURATION}") from None
    within = data.get("within_m")
    per = data.get("per")
    if (within is None) == (per is None):
        raise RuleError(f"{where}: a count rule needs either within_m (a cluster) or per (a place)")
    if within is not None:
        if (
            isinstance(within, bool)
            or not isinstance(within, int | float)
            or not (math.isfinite(within) and 0 < within <= 10_000)
        ):
            raise RuleError(f"{where}: within_m: metres, more than 0 and at most 10000")
        within = float(within)
    if per is not None and per not in ("grid", "zone", "district"):
        raise RuleError(f"{where}: per: grid, zone or district")
    return _replace(rule, min_count=min_count, window_s=window, within_m=within, per=per)


def _replace(rule: Rule, **changes: Any) -> Rule:
    return replace(rule, **changes)


def _show(value: object) -> str:
    if isinstance(value, str):
        text = f'"{value}"'
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "…"


def parse_rule_data(
    data: object,
    *,
    categories: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
) -> list[Rule]:
    """Rules from parsed TOML / JSON: ``{"rule": [...]}``, ``{"rules": [...]}`` or a list."""
    if isinstance(data, dict):
        extra = sorted(str(k)[:40] for k in data if k not in ("rule", "rules"))
        if extra:
            names = ", ".join(map(repr, extra[:5]))
            raise RuleError(f"unknown top-level field {names} (rules go in [[rule]])")
        items = data.get("rule", data.get("rules", []))
    else:
        items = data
    if not isinstance(items, list):
        raise RuleError("the rules: a list of tables ([[rule]] in TOML)")
    if len(items) > MAX_RULES:
        raise RuleError(f"at most {MAX_RULES} rules")
    cats = list(categories) if categories is not None else None
    srcs = list(sources) if sources is not None else None
    rules = [_rule(i, item, cats, srcs) for i, item in enumerate(items, start=1)]
    seen: set[str] = set()
    for i, rule in enumerate(rules, start=1):
        if rule.id in seen:
            raise RuleError(f"rule {i} ({rule.id}): id: used by an earlier rule")
        seen.add(rule.id)
    return rules


def parse_rules(
    text: str,
    fmt: str = "toml",
    *,
    categories: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
) -> list[Rule]:
    """Rules from a TOML or JSON text; RuleError (only) when they cannot be used."""
    if not isinstance(text, str):
        raise RuleError("the rules file must be text")
    try:
        if fmt == "toml":
            data: object = tomllib.loads(text)
        elif fmt == "json":
            data = json.loads(text)
        else:
            raise RuleError(f"unknown format {fmt!r}: toml or json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RuleError(f"not valid {fmt.upper()}: {str(exc)[:200]}") from None
    except (ValueError, UnicodeError) as exc:  # e.g. a lone surrogate, huge numbers
        raise RuleError(f"not valid {fmt.upper()}: {str(exc)[:200]}") from None
    return parse_rule_data(data, categories=categories, sources=sources)


# -- evaluation ------------------------------------------------------------------------


def _cat(rule: Rule) -> str:
    return next(iter(rule.categories)) if len(rule.categories) == 1 else ALL


def _cat_text(rule: Rule, lang: str) -> str:
    if not rule.categories:
        return "案件" if lang == "zh-CN" else "cases"
    return "、".join(category_text(c, lang) for c in sorted(rule.categories))


def _place_of(places: PlaceIndex | None, level: str, case: CaseRecord) -> tuple[str, str]:
    if places is None or level == "district":
        return DISTRICT, places.district_name if places else "全区"
    code = case.grid if level == "grid" else (places.zone_of(case.grid) if case.grid else None)
    if code is None:
        return "", ""
    return code, places.places[places.place_pos[code]].name if code in places.place_pos else code


def evaluate(
    rules: Sequence[Rule],
    cases: Sequence[CaseRecord],
    now: float,
    places: PlaceIndex | None = None,
) -> list[RuleHit]:
    """Every rule that fires at ``now`` over the recent cases."""
    hits: list[RuleHit] = []
    for rule in rules:
        matching = [c for c in cases if rule.matches(c)]
        if rule.when == "unaccepted":
            hits += _unaccepted(rule, matching, now, places)
        elif rule.within_m is not None:
            recent = [c for c in matching if now - rule.window_s <= c.ts <= now]
            hits += _clusters(rule, recent, now, places)
        else:
            recent = [c for c in matching if now - rule.window_s <= c.ts <= now]
            hits += _per_place(rule, recent, now, places)
    return hits


def _hit(rule: Rule, now: float, place: tuple[str, str, str], cases: list[CaseRecord],
         zh: str, en: str, key: str = "") -> RuleHit:  # fmt: skip
    code, level, name = place
    return RuleHit(
        key=key,
        rule=rule.id, name=rule.name, level=rule.level, place=code, place_level=level,
        place_name=name, category=_cat(rule), window_s=rule.window_s or rule.after_s,
        observed=len(cases), cases=tuple(c.id for c in sorted(cases, key=lambda c: c.ts)),
        ts=now, message=f"{zh}（规则：{rule.name}）", message_en=f"{en} (rule: {rule.name_en})",
    )  # fmt: skip


def _per_place(
    rule: Rule, cases: list[CaseRecord], now: float, places: PlaceIndex | None
) -> list[RuleHit]:
    groups: dict[tuple[str, str], list[CaseRecord]] = {}
    for case in cases:
        code, name = _place_of(places, rule.per or "district", case)
        if code:
            groups.setdefault((code, name), []).append(case)
    out = []
    for (code, name), group in sorted(groups.items()):
        if len(group) >= rule.min_count:
            zh = f"{name} {_cat_text(rule, 'zh-CN')} {window_text(rule.window_s)}内 {len(group)} 起"
            en = (
                f"{name} {_cat_text(rule, 'en')}: {len(group)} in "
                f"{window_text(rule.window_s, 'en')}"
            )
            place = (code, rule.per or "district", name)
            out.append(_hit(rule, now, place, group, zh, en, key=code))
    return out


def _clusters(
    rule: Rule, cases: list[CaseRecord], now: float, places: PlaceIndex | None
) -> list[RuleHit]:
    """Discs of radius within_m centred on a case holding ≥ min_count cases, greedily."""
    assert rule.within_m is not None
    left = list(cases)
    out = []
    while len(left) >= rule.min_count:
        best: list[CaseRecord] = []
        for centre in left:
            near = [
                c for c in left
                if haversine_m(centre.lat, centre.lon, c.lat, c.lon) <= rule.within_m
            ]  # fmt: skip
            if len(near) > len(best):
                best, anchor = near, centre
        if len(best) < rule.min_count:
            break
        _code, name = _place_of(places, "grid", anchor)
        where = f"{name or '坐标'}附近" if name else f"{anchor.lat:.5f},{anchor.lon:.5f} 附近"
        r = int(rule.within_m)
        zh = (
            f"{where}{r}米内 {_cat_text(rule, 'zh-CN')} {window_text(rule.window_s)}内 "
            f"{len(best)} 起"
        )
        en = (f"{len(best)} {_cat_text(rule, 'en')} within {r} m of {name or 'a point'} "
              f"in {window_text(rule.window_s, 'en')}")  # fmt: skip
        place = (f"{anchor.lat:.5f},{anchor.lon:.5f},{r}", "circle", name)
        out.append(_hit(rule, now, place, best, zh, en))
        ids = {c.id for c in best}
        left = [c for c in left if c.id not in ids]
    return out


def _unaccepted(
    rule: Rule, cases: list[CaseRecord], now: float, places: PlaceIndex | None
) -> list[RuleHit]:
    out = []
    for case in cases:
        if case.status != "reported" or now - case.ts < rule.after_s:
            continue
        code, name = _place_of(places, "grid", case)
        minutes = int((now - case.ts) // 60)
        label = category_text(case.category)
        zh = f"{name or '辖区'} {label} {case.id} 上报 {minutes} 分钟未受理"
        en = (
            f"{case.id} ({category_text(case.category, 'en')}) at {name or 'the district'} "
            f"not accepted for {minutes} min"
        )
        place = (code or case.id, "grid" if code else "case", name)
        out.append(_hit(rule, now, place, [case], zh, en, key=case.id))
    return out
