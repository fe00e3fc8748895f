"""One event, many reports (重复上报合并): score a new report against open cases nearby.

A report is a likely duplicate of an open case when it is near (``radius_m``, default
100 m), recent (``window_s``, default 2 h), of the same or a related category and says
the same thing. Each of those is a number in [0, 1] and the score is their weighted
mean, so every suggestion can say why (``Candidate.explain``):

- **place** ``1 − d / radius``: 1 on the spot, 0 at the radius;
- **time** ``1 − Δt / window``;
- **text**: the Dice coefficient of the two texts' character bigrams (title, description
  and address, channel boilerplate such as "12345热线市民来电反映：" removed, NFKC-folded:
  full-width digits are digits) — or, when higher, 0.8 × their overlap coefficient (the
  shorter text's bigrams found in the longer: one report a summary of the other).
  Bigrams of characters work for Chinese without a segmenter (two characters are the
  commonest word length) and are insensitive to word order, which is how paraphrases of
  one call differ. A number attached to a counter word (17栋, 3单元, 201号) that differs
  between the texts means another building or door: the text term is then multiplied by
  ``conflict_factor`` (0.2); the same numbered place in both closes ``agree_bonus`` (40 %)
  of the text term's gap to 1;
- **category**: same 1, related (a small table: a night-time building site is noise and
  illegal construction, a fight is a dispute and public security …) ``related_factor``
  (0.7), anything else is not a candidate.

Weights: text 0.5, place 0.3, time 0.2. When either report comes from a machine (``iot``
or ``video_ai``, whose text is a template), text is left out and place and time carry
the score (weights renormalised): a smoke alarm and a call about smoke in the same
building a minute apart are one event whatever the words.

Scoring is cheap because only the open cases in the 3 × 3 cells of a ``radius``-sized
grid around the report are looked at (:class:`NearbyIndex`), and then only those within
the radius and the window.
"""

from __future__ import annotations

import heapq
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dashboard.geo import EARTH_RADIUS_M, haversine_m

MACHINE_SOURCES = frozenset({"iot", "video_ai"})

# Categories one event is often reported under. Symmetric (closed below).
_RELATED: dict[str, tuple[str, ...]] = {
    "noise": ("dispute", "illegal_construction", "market_order"),
    "dispute": ("public_security",),
    "public_security": ("traffic",),
    "traffic": ("municipal_facility", "market_order"),
    "environment": ("municipal_facility", "market_order"),
    "fire_hazard": ("public_security", "municipal_facility"),
    "population": ("public_security",),
}
RELATED_CATEGORIES: dict[str, frozenset[str]] = {}
for _a, _bs in _RELATED.items():
    for _b in _bs:
        RELATED_CATEGORIES.setdefault(_a, frozenset())
        RELATED_CATEGORIES.setdefault(_b, frozenset())
        RELATED_CATEGORIES[_a] |= {_b}
        RELATED_CATEGORIES[_b] |= {_a}

# Channel boilerplate at the start of a text (the simulator's and the usual ones).
_BOILERPLATE = re.compile(
    r"(?:【[^】]{0,12}】)|(?:12345热线(?:市民来电)?(?:反映)?|网格员(?:一键)?上报|110警情(?:转办)?|"
    r"巡逻(?:中)?发现|群众来访(?:反映)?|市民来电(?:反映)?|物联感知|视频智能分析|来电人?(?:反映|称))[：:，,]?"
)
_NUMBERED = re.compile(r"(\d+)\s*(栋|幢|号楼|号|单元|室|楼|层|盏|路)")
_DROP = re.compile(r"[\s\W_]+", re.UNICODE)


def related(a: str, b: str) -> bool:
    return a == b or b in RELATED_CATEGORIES.get(a, frozenset())


def normalise(text: str) -> str:
    """NFKC, channel boilerplate removed (anywhere), punctuation and spaces dropped."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _BOILERPLATE.sub("", text)
    return _DROP.sub("", text).lower()


def numbered(text: str) -> dict[str, set[str]]:
    """Numbers attached to a counter word: {"栋": {"17"}, "单元": {"3"}}."""
    out: dict[str, set[str]] = {}
    for number, unit in _NUMBERED.findall(unicodedata.normalize("NFKC", text or "")):
        out.setdefault(unit, set()).add(number.lstrip("0") or "0")
    return out


def bigrams(text: str) -> set[str]:
    if len(text) < 2:
        return {text} if text else set()
    return {text[i : i + 2] for i in range(len(text) - 1)}


def dice(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def overlap(a: set[str], b: set[str]) -> float:
    """The share of the shorter text's bigrams the longer one has (one text a summary)."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def numbers_shared(a: dict[str, set[str]], b: dict[str, set[str]]) -> list[str]:
    """The numbered places both texts name: ["17栋"]."""
    return sorted(f"{n}{unit}" for unit, nums in a.items() if unit in b for n in nums & b[unit])


def numbers_conflict(a: dict[str, set[str]], b: dict[str, set[str]]) -> bool:
    """Both name a number for the same counter word and share none: 17栋 vs 5栋."""
    return any(unit in b and not (nums & b[unit]) for unit, nums in a.items())


@dataclass(frozen=True, slots=True)
class Report:
    """A case or a new report, as the scorer sees it."""

    id: str
    ts: float  # epoch seconds
    lat: float
    lon: float
    category: str
    source: str = "other"
    title: str = ""
    description: str = ""
    address: str = ""

    @property
    def text(self) -> str:
        return f"{self.title} {self.description} {self.address}"


@dataclass(frozen=True, slots=True)
class DuplicateSettings:
    radius_m: float = 100.0
    window_s: float = 7200.0
    min_score: float = 0.55  # suggested from this score on
    auto_merge_score: float | None = None  # off by default
    w_text: float = 0.5
    w_place: float = 0.3
    w_time: float = 0.2
    related_factor: float = 0.7
    conflict_factor: float = 0.2
    agree_bonus: float = 0.4  # the same numbered place (17栋) closes 40 % of the gap to 1
    overlap_weight: float = 0.8  # the overlap coefficient, discounted against Dice


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str  # the open case
    score: float
    distance_m: float
    dt_s: float
    explain: dict[str, float | str] = field(default_factory=dict)


@dataclass(slots=True)
class _Prepared:
    report: Report
    grams: set[str]
    numbers: dict[str, set[str]]


def _prepare(report: Report) -> _Prepared:
    return _Prepared(report, bigrams(normalise(report.text)), numbered(report.text))


def score_pair(
    new: Report, old: Report, settings: DuplicateSettings | None = None, *, _pn=None, _po=None
) -> Candidate | None:
    """The duplicate score of ``new`` against the open case ``old`` (None: not a candidate)."""
    s = settings or DuplicateSettings()
    if not related(new.category, old.category):
        return None
    dist = haversine_m(new.lat, new.lon, old.lat, old.lon)
    dt = abs(new.ts - old.ts)
    if dist > s.radius_m or dt > s.window_s:
        return None
    pn = _pn or _prepare(new)
    po = _po or _prepare(old)
    place = 1.0 - dist / s.radius_m
    time_f = 1.0 - dt / s.window_s
    category = 1.0 if new.category == old.category else s.related_factor
    explain: dict[str, float | str] = {
        "place": round(place, 3), "time": round(time_f, 3), "category": category,
    }  # fmt: skip
    if new.source in MACHINE_SOURCES or old.source in MACHINE_SOURCES:
        total = s.w_place + s.w_time
        base = (s.w_place * place + s.w_time * time_f) / total
        explain["text"] = "not compared (machine report)"
    else:
        text = max(dice(pn.grams, po.grams), overlap(pn.grams, po.grams) * s.overlap_weight)
        if numbers_conflict(pn.numbers, po.numbers) or numbers_conflict(po.numbers, pn.numbers):
            text *= s.conflict_factor
            explain["numbers"] = "conflict"
        elif shared := numbers_shared(pn.numbers, po.numbers):
            text += (1.0 - text) * s.agree_bonus
            explain["numbers"] = "agree " + ",".join(shared)
        explain["text"] = round(text, 3)
        base = s.w_text * text + s.w_place * place + s.w_time * time_f
    score = round(base * category, 4)
    return Candidate(old.id, score, round(dist, 1), dt, explain)


class NearbyIndex:
    """Open cases in cells of ``cell_m`` metres: the candidates of a report in 9 cells."""

    def __init__(self, cell_m: float = 100.0, lat0: float = 30.0) -> None:
        self.cell_m = cell_m
        self._m_lat = math.pi / 180.0 * EARTH_RADIUS_M
        self._m_lon = self._m_lat * math.cos(math.radians(lat0))
        self._cells: dict[tuple[int, int], dict[str, _Prepared]] = {}
        self._where: dict[str, tuple[int, int]] = {}
        self._by_time: list[tuple[float, str]] = []  # a heap, for prune()

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return (
            math.floor(lat * self._m_lat / self.cell_m),
            math.floor(lon * self._m_lon / self.cell_m),
        )

    def __len__(self) -> int:
        return len(self._where)

    def add(self, report: Report) -> None:
        self.remove(report.id)
        cell = self._cell(report.lat, report.lon)
        self._cells.setdefault(cell, {})[report.id] = _prepare(report)
        self._where[report.id] = cell
        heapq.heappush(self._by_time, (report.ts, report.id))

    def remove(self, case_id: str) -> None:
        cell = self._where.pop(case_id, None)
        if cell is not None:
            self._cells[cell].pop(case_id, None)
            if not self._cells[cell]:
                del self._cells[cell]

    def prune(self, before: float) -> int:
        """Forget cases reported before ``before`` (out of every window); how many."""
        old = [
            p.report.id for c in self._cells.values() for p in c.values() if p.report.ts < before
        ]
        for case_id in old:
            self.remove(case_id)
        return len(old)

    def near(self, lat: float, lon: float, radius_m: float) -> Iterable[_Prepared]:
        ci, cj = self._cell(lat, lon)
        reach = max(1, math.ceil(radius_m / self.cell_m))
        for di in range(-reach, reach + 1):
            for dj in range(-reach, reach + 1):
                yield from self._cells.get((ci + di, cj + dj), {}).values()


def find_duplicates(
    report: Report, index: NearbyIndex, settings: DuplicateSettings | None = None
) -> list[Candidate]:
    """Open cases the report likely repeats, best first (score ≥ ``min_score``)."""
    s = settings or DuplicateSettings()
    prepared = _prepare(report)
    out = []
    for other in index.near(report.lat, report.lon, s.radius_m):
        if other.report.id == report.id:
            continue
        cand = score_pair(report, other.report, s, _pn=prepared, _po=other)
        if cand is not None and cand.score >= s.min_score:
            out.append(cand)
    out.sort(key=lambda c: (-c.score, c.distance_m))
    return out


def rank_all(
    report: Report, cases: Sequence[Report], settings: DuplicateSettings | None = None
) -> list[Candidate]:
    """Without an index (a handful of cases, tests): every case scored, best first."""
    index = NearbyIndex((settings or DuplicateSettings()).radius_m, report.lat)
    for case in cases:
        index.add(case)
    return find_duplicates(report, index, settings)
