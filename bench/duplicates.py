"""Duplicate reports, measured: precision and recall of the suggestions on simulated reports.

Simulates a day of events in the demo district (the live simulator's grids, kinds,
categories and texts), each reported once or, for about a third, several times over the
next minutes to hour from several channels — hotline paraphrases of the caller's words,
the grid workers' app, IoT smoke and electrical-fire sensors for fire hazards, the video
AI for what cameras see — with GPS and geocoding scatter; plus *hard negatives*: other
events of the same category a few buildings away in the same estate or street within the
hour. Ground truth is kept (every report's event). Reports arrive in time order; each is
scored against the open cases (every earlier report of the last 2 h within 100 m) and
its best candidate over a threshold is the suggestion. Prints, per threshold, precision
(suggestions that name a report of the same event) and recall (reports with an earlier
report of their event that got a correct suggestion), and the scoring's cost per report.

    .venv/bin/python -m bench.duplicates            # 24 h at 1 event/min
    .venv/bin/python -m bench.duplicates --small    # a smoke test
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass

from dashboard.demo.district import District, GridSpec, generate_district, random_point_in_grid
from dashboard.demo.simulator import CATEGORY_WEIGHTS, KIND_WEIGHTS, TEMPLATES
from dashboard.services.duplicates import (
    DuplicateSettings,
    NearbyIndex,
    Report,
    find_duplicates,
)

M_PER_DEG_LAT = 111_195.0

SYNONYMS: tuple[tuple[str, str], ...] = (
    ("住户", "居民"), ("夜间", "晚上"), ("施工", "装修"), ("扰民", "吵得睡不着"),
    ("堆放", "堆了"), ("大量", "很多"), ("杂物", "东西"), ("垃圾", "生活垃圾"),
    ("占道经营", "占道摆摊"), ("车辆", "汽车"), ("故障", "坏了"), ("存在", "有"),
    ("请尽快", "希望尽快"), ("附近", "旁边"), ("发生争执", "吵起来了"), ("影响", "妨碍"),
    ("不亮", "坏了不亮"), ("缺失", "不见了"), ("外溢", "冒出来"), ("拥堵", "堵车"),
    ("可疑人员", "陌生人"), ("醉酒", "喝醉了"), ("被盗", "被偷了"), ("发生肢体冲突", "打起来了"),
    ("飞线充电", "拉电线充电"), ("火灾隐患", "起火危险"), ("堵塞", "堵住了"), ("老化", "很旧"),
    ("违规搭建", "私自搭建"), ("音量过大", "声音太大"), ("反映强烈", "意见很大"),
    ("请求调解", "希望有人来调解"), ("请求出警", "要求警察过来"), ("有异味", "很臭"),
    ("路面塌陷破损", "路面塌了一块"), ("阻碍通行", "人都过不去"), ("摊贩", "小贩"),
)  # fmt: skip
FILLERS = ("市民来电称，", "来电人反映，", "", "", "据群众反映，")
TAILS = ("希望相关部门尽快处理。", "请尽快派人处理。", "已经持续一个多小时了。", "", "")
HOTLINE_PREFIX = "12345热线市民来电反映："
APP_PREFIX = "网格员一键上报："
VIDEO_SEEN = {"traffic": "车辆违停", "market_order": "占道经营", "environment": "垃圾堆积"}


@dataclass
class Event:
    id: int
    grid: GridSpec
    lat: float
    lon: float
    ts: float
    category: str
    title: str
    text: str  # the filled template


def fill(grid: GridSpec, rng: random.Random) -> dict[str, object]:
    streets = list(grid.streets) or ["双福大道"]
    street = rng.choice(streets)
    others = [s for s in streets if s != street] or [street]
    return {
        "addr": f"{street}{rng.randint(1, 399)}号", "street": street, "street2": rng.choice(others),
        "landmark": grid.landmark or grid.name, "community": grid.community,
        "bld": rng.randint(1, 36), "unit_no": rng.randint(1, 4), "n": rng.randint(2, 12),
        "hour": rng.choice((22, 23)),
    }  # fmt: skip


def paraphrase(text: str, rng: random.Random) -> str:
    """A caller's own words for the same event: synonyms, order, fillers, a dropped clause."""
    out = text.rstrip("。")
    for a, b in SYNONYMS:
        if a in out and rng.random() < 0.6:
            out = out.replace(a, b)
    clauses = [c for c in out.split("，") if c]
    if len(clauses) > 2 and rng.random() < 0.4:
        clauses.pop(rng.randrange(1, len(clauses)))
    if len(clauses) > 1 and rng.random() < 0.3:
        clauses = clauses[1:] + clauses[:1]
    return rng.choice(FILLERS) + "，".join(clauses) + "。" + rng.choice(TAILS)


def scatter(lat: float, lon: float, metres: float, rng: random.Random) -> tuple[float, float]:
    angle, dist = rng.uniform(0, 2 * math.pi), abs(rng.gauss(0, metres))
    return (
        lat + dist * math.sin(angle) / M_PER_DEG_LAT,
        lon + dist * math.cos(angle) / (M_PER_DEG_LAT * math.cos(math.radians(lat))),
    )


def new_event(
    eid: int, district: District, grid: GridSpec, ts: float, rng: random.Random, category=None
) -> Event:
    table = CATEGORY_WEIGHTS.get(grid.kind, CATEGORY_WEIGHTS["residential"])
    if category is None:
        category = rng.choices(list(table), weights=list(table.values()))[0]
    title, template = rng.choice(TEMPLATES[category])
    lat, lon = random_point_in_grid(grid, rng, margin=0.05)
    return Event(eid, grid, lat, lon, ts, category, title, template.format(**fill(grid, rng)))


def reports_of(event: Event, rng: random.Random, district: District) -> list[tuple[Report, int]]:
    """The event's first report and, for about a third of events, more from other channels."""
    out: list[Report] = []
    first = rng.choice(("hotline_12345", "grid_app", "hotline_12345", "patrol"))
    prefix = HOTLINE_PREFIX if first == "hotline_12345" else APP_PREFIX
    lat, lon = scatter(event.lat, event.lon, 10, rng)
    out.append(Report(f"E{event.id}-0", event.ts, lat, lon, event.category, first, event.title,
                      prefix + event.text))  # fmt: skip
    extra = 0
    if rng.random() < 0.33:
        extra = rng.choice((1, 1, 1, 2, 2, 3, 4))
    t = event.ts
    for k in range(1, extra + 1):
        t += rng.expovariate(1 / 600)  # minutes apart
        if t - event.ts > 5400:
            break
        channel = rng.choices(
            ("hotline_12345", "grid_app", "iot", "video_ai"), weights=(0.6, 0.25, 0.08, 0.07)
        )[0]
        if channel == "iot" and event.category != "fire_hazard":
            channel = "hotline_12345"
        if channel == "video_ai" and event.category not in VIDEO_SEEN:
            channel = "grid_app"
        if channel == "iot":
            lat, lon = scatter(event.lat, event.lon, 8, rng)
            title, text = "烟感报警", "物联感知：烟感探测器触发报警，请立即核实现场情况。"
        elif channel == "video_ai":
            lat, lon = scatter(event.lat, event.lon, 25, rng)
            seen = VIDEO_SEEN[event.category]
            title, text = f"【视频识别】{seen}", f"视频智能分析：识别到{seen}，请核查处置。"
        elif channel == "grid_app":
            lat, lon = scatter(event.lat, event.lon, 12, rng)
            title, text = event.title, APP_PREFIX + paraphrase(event.text, rng)
        else:  # a caller: an address geocoded to within a few tens of metres
            lat, lon = scatter(event.lat, event.lon, 25, rng)
            title = rng.choice((event.title, "", event.title))
            text = HOTLINE_PREFIX + paraphrase(event.text, rng)
        out.append(Report(f"E{event.id}-{k}", t, lat, lon, event.category, channel, title, text))
    return [(r, event.id) for r in out]


def simulate(
    district: District, *, hours: float, rate_per_min: float, siblings: float, seed: int
) -> list[tuple[Report, int]]:
    rng = random.Random(seed)
    grids = list(district.grids)
    weights = [KIND_WEIGHTS.get(g.kind, 1.0) for g in grids]
    t, eid, out = 0.0, 0, []
    while t < hours * 3600:
        t += rng.expovariate(rate_per_min / 60)
        grid = rng.choices(grids, weights=weights)[0]
        event = new_event(eid, district, grid, t, rng)
        out += reports_of(event, rng, district)
        eid += 1
        if rng.random() < siblings:  # another event of the kind, close by and soon after
            sib = new_event(eid, district, grid, t + rng.uniform(60, 3600), rng, event.category)
            sib_lat, sib_lon = scatter(event.lat, event.lon, 40, rng)
            sib.lat, sib.lon = sib_lat, sib_lon
            out += reports_of(sib, rng, district)
            eid += 1
    out.sort(key=lambda x: x[0].ts)
    return out


def evaluate(
    reports: list[tuple[Report, int]], settings: DuplicateSettings
) -> tuple[list[tuple[float, bool]], int, float]:
    """Each report's best suggestion (score, correct), the findable duplicates, s/report."""
    index = NearbyIndex(settings.radius_m, 29.37)
    event_of: dict[str, int] = {}
    seen_events: dict[int, list[Report]] = {}
    suggestions: list[tuple[float, bool]] = []
    findable = 0
    began = time.perf_counter()
    for report, event in reports:
        index.prune(report.ts - settings.window_s)
        cands = find_duplicates(report, index, settings)
        if cands:
            top = cands[0]
            suggestions.append((top.score, event_of[top.id] == event))
        if seen_events.get(event):
            findable += 1
        seen_events.setdefault(event, []).append(report)
        event_of[report.id] = event
        index.add(report)
    return suggestions, findable, (time.perf_counter() - began) / max(1, len(reports))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--rate", type=float, default=1.0, help="events per minute")
    parser.add_argument("--siblings", type=float, default=0.15, help="share of hard negatives")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args(argv)
    if args.small:
        args.hours = 1.0
    district = generate_district()
    reports = simulate(
        district, hours=args.hours, rate_per_min=args.rate, siblings=args.siblings, seed=args.seed
    )
    events = len({e for _, e in reports})
    settings = DuplicateSettings(min_score=0.0)
    suggestions, findable, per_report = evaluate(reports, settings)
    default = DuplicateSettings().min_score
    print(
        f"-- {len(reports):,} reports of {events:,} events over {args.hours:g} h "
        f"({len(reports) - events:,} repeats, {findable:,} with an earlier report of their event); "
        f"scoring {per_report * 1e6:.0f} µs per report"
    )
    for threshold in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8):
        made = [ok for score, ok in suggestions if score >= threshold]
        right = sum(made)
        precision = right / len(made) if made else float("nan")
        recall = right / findable if findable else float("nan")
        mark = "  <- default" if math.isclose(threshold, default) else ""
        print(
            f"   score ≥ {threshold:.2f}: {len(made):5} suggestions, precision {precision:.3f}, "
            f"recall {recall:.3f}{mark}"
        )
    print("-- target: precision ≥ 0.9 at recall ≥ 0.8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
