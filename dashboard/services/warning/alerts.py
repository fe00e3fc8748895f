"""Alerts: what the wall shows and ``lq:alerts`` carries, and one alert per episode.

:class:`AlertBook` turns the signals of each run (statistical) and the hits of the rules
into alert *events*: ``raised`` for a new alert, ``escalated`` when an ongoing alert's
level rises, ``updated`` when its figures change. A spike that goes on for an hour is
one alert that may climb from 蓝 to 红, not sixty: a signal joins an ongoing alert of a
related place (the same, a zone and its grid, the district) and a related category (the
same, or "all"); a rule hit joins an ongoing alert of the same rule that shares a place
or a case. An episode ends after ``quiet_s`` without a signal; the alert itself stays
until people close it (its lifecycle — open → acknowledged → closed — is kept by the
database, not here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from dashboard.i18n import CATEGORY_LABELS
from dashboard.services.warning.detector import Signal
from dashboard.services.warning.places import ALL, PlaceIndex, related_categories
from dashboard.services.warning.settings import LEVELS

Kind = Literal["statistical", "rule"]
Status = Literal["open", "acknowledged", "closed"]


def window_text(window_s: int, lang: str = "zh-CN") -> str:
    """30分钟 / 2小时 / 1天 (or 30 min / 2 h / 1 d)."""
    if window_s % 86400 == 0:
        n, zh, en = window_s // 86400, "天", "d"
    elif window_s % 3600 == 0:
        n, zh, en = window_s // 3600, "小时", "h"
    elif window_s % 60 == 0:
        n, zh, en = window_s // 60, "分钟", "min"
    else:
        n, zh, en = window_s, "秒", "s"
    return f"{n}{zh}" if lang == "zh-CN" else f"{n} {en}"


def category_text(category: str, lang: str = "zh-CN") -> str:
    if category == ALL:
        return "全部类别" if lang == "zh-CN" else "All categories"
    return CATEGORY_LABELS.get(lang, {}).get(category, category)


def _num(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as written to ``lq:alerts`` and the database (flat fields: `fields()`)."""

    id: str
    level: str  # blue | yellow | orange | red
    kind: Kind
    place: str  # grid / zone code, "district", or a rule's cluster "lat,lon,r"
    place_level: str  # grid | zone | district | circle
    place_name: str
    category: str  # a category code or "*"
    window_s: int
    observed: int
    expected: float | None  # None for rule alerts
    ts: float  # epoch seconds of the run that raised / last changed it
    first_ts: float
    cases: tuple[str, ...]
    rule: str = ""  # the rule's id (kind rule)
    method: str = ""  # nb_baseline | stp_scan | rule
    p_value: float | None = None
    status: Status = "open"
    message: str = ""  # zh-CN
    message_en: str = ""
    grids: tuple[str, ...] = ()  # a scan cluster's grids (place_level "cluster")

    def fields(self) -> dict[str, str]:
        """The ``lq:alerts`` entry: flat text fields, the empty ones left out."""
        values = {
            "id": self.id, "level": self.level, "kind": self.kind, "place": self.place,
            "place_level": self.place_level, "category": self.category,
            "window_s": str(self.window_s), "observed": str(self.observed),
            "expected": "" if self.expected is None else f"{self.expected:.3f}",
            "ts": datetime.fromtimestamp(self.ts, UTC).isoformat().replace("+00:00", "Z"),
            "status": self.status, "message": self.message, "message_en": self.message_en,
            "cases": ",".join(self.cases), "rule": self.rule, "method": self.method,
            "p_value": "" if self.p_value is None else f"{self.p_value:.3g}",
            "grids": ",".join(self.grids),
        }  # fmt: skip
        return {k: v for k, v in values.items() if v != ""}


def statistical_text(
    place_name: str, category: str, window_s: int, observed: int, expected: float, lang: str
) -> str:
    """福城社区第4网格 噪音扰民 2小时内 9 起，常态 1.2 起 / … Noise: 9 cases in 2 h, usually 1.2"""
    if lang == "zh-CN":
        return (
            f"{place_name} {category_text(category, lang)} {window_text(window_s, lang)}内 "
            f"{observed} 起，常态 {_num(expected)} 起"
        )
    return (
        f"{place_name} {category_text(category, lang)}: {observed} cases in "
        f"{window_text(window_s, lang)}, usually {_num(expected)}"
    )


def level_rank(level: str) -> int:
    return LEVELS.index(level)


def _alert_id(kind: str, key: str, first_ts: float) -> str:
    digest = hashlib.sha1(f"{kind}|{key}|{first_ts:.0f}".encode(), usedforsecurity=False)
    stamp = datetime.fromtimestamp(first_ts, UTC).strftime("%Y%m%d%H%M")
    return f"AL-{stamp}-{digest.hexdigest()[:6]}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    kind: Literal["raised", "escalated", "updated"]
    alert: Alert


@dataclass(frozen=True, slots=True)
class RuleHit:
    """What a rule found at one run (see rules.py)."""

    rule: str
    name: str
    level: str
    place: str
    place_level: str
    place_name: str
    category: str
    window_s: int
    observed: int
    cases: tuple[str, ...]
    ts: float
    message: str
    message_en: str
    key: str = ""  # what makes two hits one alert besides shared cases (a place, a case)


@dataclass
class _Episode:
    alert: Alert
    last_seen: float
    places: set[str] = field(default_factory=set)


class AlertBook:
    """Ongoing episodes → alert events. State is this object's own (one per detector)."""

    def __init__(self, places: PlaceIndex, *, quiet_s: float = 3600) -> None:
        self.places = places
        self.quiet_s = quiet_s
        self._ongoing: list[_Episode] = []

    @property
    def ongoing(self) -> list[Alert]:
        return [e.alert for e in self._ongoing]

    def _expire(self, now: float) -> None:
        # An episode outlives its last signal by quiet_s, or by its window when longer: a
        # 24-hour count stays high all day after a busy morning, and flickers around its
        # threshold meanwhile; that is still the same episode.
        self._ongoing = [
            e for e in self._ongoing if now - e.last_seen < max(self.quiet_s, e.alert.window_s)
        ]

    def _find_stat(self, signal: Signal) -> _Episode | None:
        for ep in self._ongoing:
            a = ep.alert
            if a.kind != "statistical" or not related_categories(a.category, signal.category):
                continue
            if any(self.places.related(p, signal.place.code) for p in ep.places):
                return ep
        return None

    def update(
        self, now: float, signals: Sequence[Signal] = (), hits: Iterable[RuleHit] = ()
    ) -> list[AlertEvent]:
        """Fold one run's signals and rule hits into the ongoing alerts; return the events."""
        self._expire(now)
        events: dict[str, AlertEvent] = {}
        # The most specific place and category first: the alert names where it happens,
        # the wider places' signals only raise its level.
        rank = {"grid": 0, "zone": 1, "district": 2}
        ordered = sorted(
            signals, key=lambda s: (rank.get(s.place.level, 3), s.category == ALL, -s.margin)
        )
        for signal in ordered:
            ep = self._find_stat(signal)
            if ep is None:
                alert = self._from_signal(signal, first_ts=now, alert_id=None)
                self._ongoing.append(_Episode(alert, now, {signal.place.code}))
                events[alert.id] = AlertEvent("raised", alert)
                continue
            ep.last_seen = now
            ep.places.add(signal.place.code)
            old = ep.alert
            new = old
            same_key = signal.place.code == old.place and signal.category == old.category
            if level_rank(signal.level) > level_rank(old.level):
                new = replace(new, level=signal.level)
            if same_key and (signal.observed, signal.window_s) != (old.observed, old.window_s):
                fresh = self._from_signal(signal, first_ts=old.first_ts, alert_id=old.id)
                new = replace(fresh, level=new.level, cases=_union(old.cases, signal.cases))
            if new is not old:
                new = replace(new, ts=now)
                ep.alert = new
                kind: Literal["raised", "escalated", "updated"] = (
                    "escalated" if level_rank(new.level) > level_rank(old.level) else "updated"
                )
                prior = events.get(new.id)
                if prior is not None and prior.kind in ("raised", "escalated"):
                    kind = prior.kind
                events[new.id] = AlertEvent(kind, new)
        for hit in hits:
            self._fold_hit(now, hit, events)
        return list(events.values())

    def _fold_hit(self, now: float, hit: RuleHit, events: dict[str, AlertEvent]) -> None:
        for ep in self._ongoing:
            a = ep.alert
            if (
                a.kind == "rule"
                and a.rule == hit.rule
                and ((hit.key and hit.key in ep.places) or set(a.cases) & set(hit.cases))
            ):
                ep.last_seen = now
                cases = _union(a.cases, hit.cases)
                if cases != a.cases or hit.observed > a.observed:
                    new = replace(
                        a, cases=cases, observed=max(a.observed, hit.observed), ts=now,
                        message=hit.message, message_en=hit.message_en,
                    )  # fmt: skip
                    ep.alert = new
                    prior = events.get(new.id)
                    events[new.id] = AlertEvent(prior.kind if prior else "updated", new)
                return
        alert = Alert(
            id=_alert_id("rule", f"{hit.rule}|{hit.place}", now), level=hit.level, kind="rule",
            place=hit.place, place_level=hit.place_level, place_name=hit.place_name,
            category=hit.category, window_s=hit.window_s, observed=hit.observed, expected=None,
            ts=now, first_ts=now, cases=hit.cases, rule=hit.rule, method="rule",
            message=hit.message, message_en=hit.message_en,
        )  # fmt: skip
        self._ongoing.append(_Episode(alert, now, {hit.key} if hit.key else set()))
        events[alert.id] = AlertEvent("raised", alert)

    def _from_signal(self, s: Signal, *, first_ts: float, alert_id: str | None) -> Alert:
        key = f"{s.place.code}|{s.category}"
        name = s.place.name
        if len(s.grids) > 1:  # a scan cluster: its centre and the neighbours around it
            name_zh = f"{name}及周边{len(s.grids) - 1}个网格"
            name_en = f"{name} and {len(s.grids) - 1} grids around"
        else:
            name_zh = name_en = name
        return Alert(
            id=alert_id or _alert_id("statistical", key, first_ts), level=s.level,
            kind="statistical", place=s.place.code,
            place_level="cluster" if len(s.grids) > 1 else s.place.level,
            place_name=name, category=s.category, window_s=s.window_s,
            observed=s.observed, expected=s.expected, ts=s.ts, first_ts=first_ts,
            cases=s.cases, method=s.method, p_value=s.p_value, grids=s.grids,
            message=statistical_text(
                name_zh, s.category, s.window_s, s.observed, s.expected, "zh-CN"
            ),
            message_en=statistical_text(
                name_en, s.category, s.window_s, s.observed, s.expected, "en"
            ),
        )  # fmt: skip


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    seen = dict.fromkeys(a)
    seen.update(dict.fromkeys(b))
    return tuple(seen)
