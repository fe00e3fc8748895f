"""A live simulator of the demo district that writes only through the streams.

It behaves like the real producers of the stream contract (README, docs/contract.md):
cases arrive from the hotline, the grid workers' app, video analytics and IoT sensors,
then move through the lifecycle (registered → dispatched → on scene → resolved → closed,
with the odd cancellation and rework), while every unit on duty sends a GPS ping every
few seconds as it patrols or drives to its case.

Time: the simulation runs ``speed`` times faster than the wall clock, but every
``ts`` written is the real current time, so nothing is ever in the future (the
warm start writes a few hours of history, with past times).
Durations are drawn in simulated minutes and divided by ``speed`` to get wall
seconds; a unit covers ``speed × its speed × elapsed wall time`` metres. Pings
go out every ~3 s of wall time whatever the speed.

All state lives in the instance; `step()` is deterministic for a seed and an
injected clock, which is how the tests drive it.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import redis

from dashboard.config import Settings
from dashboard.demo.district import District, FacilitySpec, GridSpec, UnitSpec, random_point_in_grid
from dashboard.geo import EARTH_RADIUS_M, haversine_m, wgs84_to_gcj02
from dashboard.vocabulary import TERMINAL

log = logging.getLogger(__name__)

DEFAULT_CATEGORIES: tuple[str, ...] = tuple(Settings.model_fields["categories"].default)
STEP_INTERVAL_S = 0.5
PING_INTERVAL_S = (2.5, 3.5)  # wall seconds between two pings of a unit
MAX_ARRIVALS_PER_STEP = 25
MAX_OUTBOX = 50_000
ARRIVE_RADIUS_M = 10.0

# Channels: the grid workers' app and the 12345 hotline bring most cases.
SOURCE_WEIGHTS: dict[str, float] = {
    "grid_app": 0.36,
    "hotline_12345": 0.30,
    "video_ai": 0.09,
    "police_110": 0.08,
    "patrol": 0.07,
    "iot": 0.04,
    "walk_in": 0.05,
    "other": 0.01,
}
# How busy each kind of grid is, relative to a residential one.
KIND_WEIGHTS: dict[str, float] = {
    "commercial": 5.0,
    "market": 4.0,
    "campus": 1.3,
    "residential": 1.0,
    "rural": 0.4,
}
CATEGORY_WEIGHTS: dict[str, dict[str, float]] = {
    "residential": {
        "dispute": 0.20, "noise": 0.17, "environment": 0.15, "municipal_facility": 0.10,
        "public_service": 0.10, "illegal_construction": 0.07, "fire_hazard": 0.06,
        "population": 0.05, "public_security": 0.05, "traffic": 0.03, "other": 0.02,
    },
    "market": {
        "market_order": 0.45, "environment": 0.15, "dispute": 0.12, "fire_hazard": 0.08,
        "traffic": 0.08, "public_security": 0.07, "other": 0.05,
    },
    "commercial": {
        "traffic": 0.20, "market_order": 0.15, "public_security": 0.15, "environment": 0.12,
        "noise": 0.10, "dispute": 0.10, "municipal_facility": 0.08, "illegal_construction": 0.05,
        "public_service": 0.05,
    },
    "campus": {
        "traffic": 0.25, "public_security": 0.20, "environment": 0.15, "noise": 0.10,
        "dispute": 0.10, "public_service": 0.10, "population": 0.05, "other": 0.05,
    },
    "rural": {
        "environment": 0.28, "illegal_construction": 0.20, "dispute": 0.20,
        "municipal_facility": 0.10, "fire_hazard": 0.10, "public_service": 0.12,
    },
    "video_ai": {
        "traffic": 0.35, "market_order": 0.25, "environment": 0.20, "public_security": 0.15,
        "illegal_construction": 0.05,
    },
}  # fmt: skip
# The department responsible for each category.
DEPARTMENT_FOR: dict[str, str] = {
    "dispute": "justice",
    "public_security": "police",
    "traffic": "traffic_police",
    "fire_hazard": "fire_rescue",
    "environment": "environment",
    "noise": "city_mgmt",
    "illegal_construction": "city_mgmt",
    "municipal_facility": "city_mgmt",
    "market_order": "market_supervision",
    "population": "police",
    "public_service": "civil_affairs",
    "other": "grid_office",
}
# On-scene handling time in simulated minutes.
HANDLING_MIN: dict[str, tuple[float, float]] = {
    "dispute": (15, 40),
    "public_security": (8, 30),
    "traffic": (5, 20),
    "fire_hazard": (10, 30),
    "environment": (10, 30),
    "noise": (5, 20),
    "illegal_construction": (15, 40),
    "municipal_facility": (10, 35),
    "market_order": (10, 25),
    "population": (5, 15),
    "public_service": (5, 20),
    "other": (5, 25),
}
URGENT_CATEGORIES = frozenset({"fire_hazard", "public_security", "traffic"})
# 联勤联动联处 (issue 13): the co-handlers (协办) that join the lead department, per category,
# each with its chance — disputes by 司法所 with the police and the grid office, fire hazards
# by 消防 with 市场监管, … (the seeds' "政法委牵头、街道主导、公安主推、部门协同").
CO_HANDLERS: dict[str, tuple[tuple[str, float], ...]] = {
    "dispute": (("police", 0.55), ("grid_office", 0.35)),
    "fire_hazard": (("market_supervision", 0.5),),
    "illegal_construction": (("environment", 0.3), ("police", 0.15)),
    "market_order": (("police", 0.3),),
    "noise": (("police", 0.35),),
    "environment": (("city_mgmt", 0.3),),
    "public_security": (("grid_office", 0.2),),
}
# Minutes a department takes to accept (签收): triangular (low, mode, high), its own spread.
ACCEPT_MIN: dict[str, tuple[float, float, float]] = {
    "police": (0.2, 0.8, 3.0),
    "fire_rescue": (0.1, 0.4, 1.5),
    "traffic_police": (0.2, 1.0, 4.0),
    "justice": (0.5, 2.5, 8.0),
    "grid_office": (0.5, 2.0, 6.0),
    "city_mgmt": (1.0, 3.5, 10.0),
    "market_supervision": (1.0, 3.0, 9.0),
    "environment": (1.5, 4.5, 12.0),
    "civil_affairs": (1.5, 5.0, 14.0),
}
RETURN_P = 0.05  # a co-handler returns it: not its remit (退回)
TRANSFER_P = 0.03  # the lead transfers it to another department (转办)
# Cases per minute through the day (local hour), relative to ``rate_per_min``.
HOURLY_FACTOR = (
    0.25, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.3, 1.5, 1.5, 1.3,
    1.0, 1.1, 1.4, 1.5, 1.4, 1.3, 1.2, 1.2, 1.1, 0.9, 0.6, 0.4,
)  # fmt: skip


def wall_rate(rate_per_min: float, speed: float) -> float:
    """New cases per wall-clock minute at an hourly factor of 1: the simulator draws its
    inter-arrival times in simulated minutes and divides them by ``speed``."""
    return rate_per_min * speed


def expected_arrivals(start: datetime, end: datetime, tz: tzinfo, per_minute: float) -> float:
    """How many new cases the simulator brings between ``start`` and ``end`` (wall time) on
    average, at ``per_minute`` (wall_rate) times the local hour's HOURLY_FACTOR."""
    total, t = 0.0, start
    while t < end:
        step = min(end, t + timedelta(minutes=1))
        total += per_minute * HOURLY_FACTOR[t.astimezone(tz).hour] * (step - t).total_seconds() / 60
        t = step
    return total


SOURCE_PREFIX: dict[str, str] = {
    "hotline_12345": "12345热线市民来电反映：",
    "grid_app": "网格员一键上报：",
    "police_110": "110警情转办：",
    "patrol": "巡逻中发现：",
    "walk_in": "群众来访反映：",
    "other": "",
}
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "dispute": (
        ("邻里纠纷", "{addr}{bld}栋{unit_no}单元住户因楼上漏水与楼下邻居发生争执，请求调解。"),
        ("物业纠纷", "{landmark}业主与物业因停车收费问题发生争执，现场情绪激动。"),
        ("劳资纠纷", "{addr}一装修工地{n}名工人反映被拖欠工资，聚集讨薪。"),
        ("家庭纠纷", "{addr}{bld}栋一住户家庭矛盾激化，邻居听到激烈争吵。"),
        ("消费纠纷", "{addr}一商户与顾客因退款问题发生争执。"),
    ),
    "noise": (
        ("邻里噪音纠纷", "{bld}栋住户夜间施工扰民。"),
        ("广场舞噪音扰民", "{landmark}附近广场舞音响音量过大，周边居民反映强烈。"),
        ("商铺喇叭扰民", "{addr}一商铺门口使用高音喇叭循环播放促销广告。"),
        ("夜间施工扰民", "{addr}工地夜间{hour}点后仍在施工，噪音扰民。"),
    ),
    "environment": (
        ("垃圾堆放未清运", "{addr}垃圾收集点垃圾满溢，已有异味，请尽快清运。"),
        ("污水外溢", "{addr}路边窨井污水外溢，影响行人通行。"),
        ("楼道乱堆乱放", "{landmark}{bld}栋楼道内堆放大量杂物。"),
        ("餐饮油烟扰民", "{addr}一餐饮店油烟直排，周边住户反映。"),
    ),
    "market_order": (
        ("占道经营", "{landmark}外围商贩占道经营，影响车辆通行。"),
        ("流动摊贩聚集", "{street}与{street2}路口有流动摊贩聚集，造成拥堵。"),
        ("缺斤短两投诉", "顾客投诉{landmark}一摊位缺斤短两。"),
        ("食品安全隐患", "{landmark}一摊位售卖的熟食无防蝇防尘措施。"),
    ),
    "traffic": (
        ("车辆乱停乱放", "{addr}人行道上车辆乱停放，阻碍通行。"),
        ("交通事故", "{street}与{street2}路口两车轻微剐蹭，双方争执，造成拥堵。"),
        ("信号灯故障", "{street}与{street2}交叉口信号灯故障。"),
        ("道路拥堵", "{addr}路段高峰时段严重拥堵。"),
    ),
    "public_security": (
        ("可疑人员", "{addr}附近有可疑人员徘徊，多次查看停放车辆。"),
        ("醉酒闹事", "{addr}一烧烤店外有人醉酒闹事。"),
        ("电动车被盗", "{landmark}{bld}栋住户报称电动车被盗。"),
        ("打架斗殴", "{addr}有人发生肢体冲突，请求出警。"),
    ),
    "fire_hazard": (
        ("电动车楼道充电", "{landmark}{bld}栋楼道内有电动车飞线充电，存在火灾隐患。"),
        ("消防通道堵塞", "{landmark}消防通道被车辆堵塞。"),
        ("燃气管道老化", "{addr}一餐饮店燃气管道老化，有异味。"),
    ),
    "illegal_construction": (
        ("违章搭建", "{landmark}{bld}栋楼顶违规搭建彩钢棚。"),
        ("私挖地下室", "{addr}一住户私自开挖地下室，影响房屋安全。"),
        ("圈占公共绿地", "{landmark}内有住户圈占公共绿地种菜。"),
    ),
    "municipal_facility": (
        ("路灯不亮", "{street}路段路灯连续{n}盏不亮。"),
        ("井盖缺失", "{addr}人行道井盖缺失，存在安全隐患。"),
        ("道路破损", "{addr}路面塌陷破损，影响车辆通行。"),
        ("护栏损坏", "{street}护栏被撞损坏。"),
    ),
    "population": (
        ("出租屋人员未登记", "{landmark}{bld}栋出租屋新入住人员未登记。"),
        ("流动人口信息采集", "{addr}一工地新进{n}名务工人员，需入户登记。"),
    ),
    "public_service": (
        ("独居老人求助", "{landmark}{bld}栋独居老人行动不便，请求帮助代购药品。"),
        ("办事咨询", "居民咨询社保卡办理事宜，需网格员上门指导。"),
        ("停水咨询", "{addr}一带停水，居民询问恢复时间。"),
    ),
    "other": (
        ("其他事项", "{addr}居民反映的其他事项，待核实。"),
        ("走失人员求助", "{addr}附近有老人走失，家属请求协助寻找。"),
    ),
}  # fmt: skip
GENERIC_TEMPLATE = ("群众反映事项", "{addr}群众反映问题，待核实分类。")

# Speeds in m/s: (wandering, responding range). Volunteers patrol but take no cases.
SPEEDS: dict[str, tuple[float, tuple[float, float]]] = {
    "patrol": (1.4, (4.0, 6.0)),  # on foot / e-bike
    "grid_worker": (1.2, (3.5, 5.0)),  # e-bike when called
    "vehicle": (6.0, (9.0, 11.0)),
    "volunteer": (1.1, (1.1, 1.4)),
}
OFF_DUTY_SHARE = 0.07  # at start
OFF_DUTY_RATE_PER_H = 0.04  # an available unit going off duty, per simulated hour
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class StreamWriter(Protocol):
    """What the simulator needs of `dashboard.streams.Producer` (tests pass a recorder)."""

    def incident(self, **values: Any) -> str: ...

    def ping(self, **values: Any) -> str: ...

    def pipeline_pings(self, pings: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass
class _UnitState:
    spec: UnitSpec
    lat: float
    lon: float
    respond_speed: float
    status: str = "available"  # available | busy | off_duty
    target: tuple[float, float] | None = None
    moving_speed: float = 0.0  # m/s while moving toward the target (simulated)
    pause_until: datetime | None = None
    off_until: datetime | None = None
    case_id: str | None = None
    on_scene: bool = False
    next_ping: datetime | None = None
    announce: bool = True  # ping at the next step (start, or a status change)
    heading: float = 0.0
    sent_at: tuple[float, float] | None = None  # the true position at the last ping
    last_ping_ms: int = 0


@dataclass
class _CaseState:
    id: str
    grid: str | None
    category: str
    priority: int
    lat: float
    lon: float
    status: str
    last_ts: datetime
    department: str
    next_action: str | None = None  # register | cancel | dispatch | rework | resolve | close
    due: datetime | None = None  # wall time of the next action
    unit: str | None = None
    reworked: bool = False
    offices: list[str] = field(default_factory=list)  # departments on it (lead first)


def _base36(value: int, width: int) -> str:
    out = ""
    for _ in range(width):
        value, digit = divmod(value, 36)
        out = _ID_ALPHABET[digit] + out
    return out


class Simulator:
    """Cases and unit movements for a district, written through a stream producer."""

    def __init__(
        self,
        producer: StreamWriter,
        district: District,
        *,
        speed: float = 1.0,
        seed: int | None = None,
        now: Callable[[], datetime] | None = None,
        rate_per_min: float = 1.0,
        categories: Sequence[str] | None = None,
        tz: tzinfo | None = None,
        gcj02_share: float = 0.05,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if rate_per_min < 0:
            raise ValueError("rate_per_min must be ≥ 0")
        self.producer = producer
        self.district = district
        self.speed = float(speed)
        self.rate_per_min = float(rate_per_min)
        self.gcj02_share = gcj02_share
        settings = getattr(producer, "settings", None)
        self.categories: tuple[str, ...] = tuple(
            categories or getattr(settings, "categories", None) or DEFAULT_CATEGORIES
        )
        self.tz: tzinfo = tz or getattr(settings, "zone", None) or ZoneInfo("Asia/Shanghai")
        self._clock = now or (lambda: datetime.now(UTC))
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not security
        self._m_per_deg_lat = math.pi / 180.0 * EARTH_RADIUS_M
        self._m_per_deg_lon = self._m_per_deg_lat * math.cos(math.radians(district.center[0]))

        self._grids: dict[str, GridSpec] = {g.code: g for g in district.grids}
        self._grid_codes = [g.code for g in district.grids]
        self._zone_grids = {z.code: z.grid_codes for z in district.zones}
        self._cameras: tuple[FacilitySpec, ...] = district.facilities_of("camera")
        self._sensors: tuple[FacilitySpec, ...] = district.facilities_of("sensor")
        self.units: dict[str, _UnitState] = {}
        for spec in district.units:
            _, (lo, hi) = SPEEDS.get(spec.kind, SPEEDS["patrol"])
            state = _UnitState(spec, spec.home_lat, spec.home_lon, self.rng.uniform(lo, hi))
            if self.rng.random() < OFF_DUTY_SHARE:
                state.status = "off_duty"
                state.off_until = None  # set at the first step, once the clock is known
            self.units[spec.id] = state
        self.cases: dict[str, _CaseState] = {}
        self._outbox: list[dict[str, Any]] = []
        # lq:assignments entries: (wall time due, sequence, case id, fields), sent when due.
        self._assign_due: list[tuple[datetime, int, str, dict[str, Any]]] = []
        self._assign_seq = itertools.count()
        self._last_step: datetime | None = None
        self._next_arrival: datetime | None = None
        self._counter = itertools.count(1)
        self._tag: str | None = None
        self.stats: dict[str, int] = {"cases": 0, "incidents": 0, "pings": 0, "closed": 0}

    # -- public ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Step every ~0.5 s of wall time until ``stop`` is set; ride out Redis outages."""
        log.info(
            "simulator running: %d units, speed %.3gx, %.3g cases/min",
            len(self.units),
            self.speed,
            self.rate_per_min,
        )
        backoff = STEP_INTERVAL_S
        while not stop.is_set():
            try:
                self.step()
                backoff = STEP_INTERVAL_S
            except redis.RedisError as exc:
                log.warning("simulator: Redis unavailable (%s); retrying in %.1f s", exc, backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:
                # A demo that runs for weeks should not die of one bad step; say so loudly.
                log.exception("simulator step failed; retrying in %.1f s", backoff)
                backoff = min(backoff * 2, 30.0)
            stop.wait(backoff)
        log.info("simulator stopped: %s", self.stats)

    def step(self, now: datetime | None = None) -> dict[str, int]:
        """Advance to ``now`` (wall time, default the clock) and write what happened."""
        now = now or self._clock()
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self._last_step is None:
            self._start(now)
            sim_dt = 0.0
        else:
            sim_dt = max(0.0, (now - self._last_step).total_seconds()) * self.speed
        self._last_step = max(now, self._last_step or now)
        before = len(self._outbox)
        self._shifts(now, sim_dt)
        self._move(now, sim_dt)
        self._due_actions(now)
        self._arrivals(now)
        written = len(self._outbox) - before
        self._flush()  # case messages first: a failure here leaves them queued for the next step
        self._flush_assignments(now)
        pings = self._pings(now)
        return {"incidents": written, "pings": pings}

    def warm_start(self, n_cases: int, *, now: datetime | None = None, hours: float = 6.0) -> int:
        """Create ``n_cases`` cases over the last few hours of today, in every stage.

        Their lifecycle messages carry past times (never future ones); the cases still
        open are then carried on by `step()`, and the units on them are marked busy.
        Returns the number of messages written.
        """
        now = now or self._clock()
        if self._last_step is None:
            self._start(now)
            self._last_step = now
        local = now.astimezone(self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        end = now - timedelta(seconds=20)
        start = max(midnight, now - timedelta(hours=hours))
        if end - start < timedelta(minutes=10):
            start = end - timedelta(minutes=10)
        span = (end - start).total_seconds()
        times = sorted(start + timedelta(seconds=self.rng.uniform(0, span)) for _ in range(n_cases))
        reserved: set[str] = set()
        messages: list[tuple[datetime, int, dict[str, Any]]] = []
        order = itertools.count()
        for t0 in times:
            for values in self._warm_case(t0, now, reserved):
                messages.append((values["ts"], next(order), values))
        messages.sort(key=lambda m: (m[0], m[1]))
        self._outbox.extend(values for _, _, values in messages)
        self._flush()
        log.info(
            "warm start: %d cases, %d messages, %d still open",
            n_cases,
            len(messages),
            len(self.cases),
        )
        return len(messages)

    # -- set-up and time ------------------------------------------------------------------

    def _start(self, now: datetime) -> None:
        # The run tag keeps case ids unique across restarts: the start's 2-second slot in a
        # ~39-day cycle (the id's date covers the rest), the same whatever the seed.
        self._tag = _base36(int(now.timestamp()) // 2, 4)
        self._next_arrival = now + self._interarrival(now)
        for unit in self.units.values():
            unit.next_ping = now + timedelta(seconds=self.rng.uniform(0, PING_INTERVAL_S[1]))
            if unit.status == "off_duty":
                unit.off_until = now + self._wall(self.rng.uniform(20, 120))

    def _wall(self, sim_minutes: float) -> timedelta:
        """A duration in simulated minutes as wall time."""
        return timedelta(seconds=sim_minutes * 60.0 / self.speed)

    def _interarrival(self, now: datetime) -> timedelta:
        rate = self.rate_per_min * HOURLY_FACTOR[now.astimezone(self.tz).hour]
        if rate <= 0:
            return timedelta(minutes=1)  # look again later
        return self._wall(self.rng.expovariate(rate))

    # -- new cases ------------------------------------------------------------------------

    def _arrivals(self, now: datetime) -> None:
        assert self._next_arrival is not None
        created = 0
        while self._next_arrival <= now:
            if created >= MAX_ARRIVALS_PER_STEP:
                log.warning("simulator: more than %d arrivals in one step; skipping ahead", created)
                self._next_arrival = now
            else:
                self._new_case(now)
                created += 1
            self._next_arrival += self._interarrival(now)

    def _new_id(self, ts: datetime) -> str:
        day = ts.astimezone(self.tz).strftime("%Y%m%d")
        return f"HZ-{day}-{self._tag}{next(self._counter):06d}"

    def _weighted(self, weights: Mapping[str, float]) -> str:
        keys = list(weights)
        return self.rng.choices(keys, weights=[weights[k] for k in keys])[0]

    def _pick_grid(self, now: datetime) -> GridSpec:
        hour = now.astimezone(self.tz).hour
        weights = []
        for code in self._grid_codes:
            kind = self._grids[code].kind
            w = KIND_WEIGHTS.get(kind, 1.0)
            if kind == "market" and 6 <= hour < 11:
                w *= 1.8  # morning market rush
            if kind == "campus" and not 7 <= hour < 22:
                w *= 0.3
            weights.append(w)
        code = self.rng.choices(self._grid_codes, weights=weights)[0]
        return self._grids[code]

    def _pick_category(self, table: str) -> str:
        weights = {c: w for c, w in CATEGORY_WEIGHTS.get(table, {}).items() if c in self.categories}
        if not weights:
            return self.rng.choice(self.categories)
        return self._weighted(weights)

    def _offset(self, lat: float, lon: float, max_m: float) -> tuple[float, float]:
        angle = self.rng.uniform(0, 2 * math.pi)
        dist = self.rng.uniform(0, max_m)
        return (
            lat + dist * math.sin(angle) / self._m_per_deg_lat,
            lon + dist * math.cos(angle) / self._m_per_deg_lon,
        )

    def _new_case(self, ts: datetime) -> dict[str, Any]:
        """Create a case (state and its `reported` message, queued); return the message."""
        rng = self.rng
        source = self._weighted(SOURCE_WEIGHTS)
        address: str | None = None
        facility_text: str | None = None
        if source == "iot" and self._sensors and "fire_hazard" in self.categories:
            sensor = rng.choice(self._sensors)
            lat, lon = self._offset(sensor.lat, sensor.lon, 5)
            grid = self._grids.get(sensor.grid_code) or self._pick_grid(ts)
            category = "fire_hazard"
            priority = 1 if rng.random() < 0.6 else 2
            title = "电气火灾监测报警" if "电气" in sensor.name else "烟感报警"
            facility_text = f"物联感知：{sensor.name}（{sensor.id}）触发报警，请立即核实现场情况。"
        elif source == "video_ai" and self._cameras:
            camera = rng.choice(self._cameras)
            lat, lon = self._offset(camera.lat, camera.lon, 40)
            grid = self._grids.get(camera.grid_code) or self._pick_grid(ts)
            category = self._pick_category("video_ai")
            priority = self._priority(category)
            seen = self._template(category)[0]
            title = f"【视频识别】{seen}"
            facility_text = f"视频智能分析：{camera.name}（{camera.id}）识别到{seen}，请核查处置。"
            address = camera.name
        else:
            if source == "iot":
                source = "grid_app"
            grid = self._pick_grid(ts)
            lat, lon = random_point_in_grid(grid, rng, margin=0.05)
            category = self._pick_category(grid.kind)
            priority = self._priority(category)
            title = ""
        located = self.district.grid_index.locate(lat, lon) or grid.code
        grid = self._grids.get(located, grid)
        template_title, template_text = self._template(category)
        title = title or template_title
        fill = self._fill(grid)
        address = address or fill["addr"]
        if facility_text is not None:
            description = facility_text
        else:
            description = SOURCE_PREFIX.get(source, "") + template_text.format(**fill)
        lat, lon = round(lat, 6), round(lon, 6)
        case = _CaseState(
            id=self._new_id(ts),
            grid=grid.code,
            category=category,
            priority=priority,
            lat=lat,
            lon=lon,
            status="reported",
            last_ts=ts,
            department=self._department(category),
        )
        values: dict[str, Any] = {
            "id": case.id,
            "status": "reported",
            "ts": self._local(ts),
            "lat": lat,
            "lon": lon,
            "category": category,
            "priority": priority,
            "source": source,
            "title": title[:200],
            "description": description[:4000],
            "address": address[:300],
        }
        if rng.random() < self.gcj02_share:
            # Some channels (app SDKs on Amap/Tencent maps) report GCJ-02.
            g_lat, g_lon = wgs84_to_gcj02(lat, lon)
            values.update(lat=round(g_lat, 7), lon=round(g_lon, 7), crs="gcj02")
        self.cases[case.id] = case
        self.stats["cases"] += 1
        self._outbox.append(values)
        if rng.random() < 0.03:
            case.next_action, case.due = "cancel", ts + self._wall(rng.uniform(0.5, 2.0))
        else:
            case.next_action, case.due = "register", ts + self._wall(rng.uniform(0.5, 2.0))
        return values

    def _priority(self, category: str) -> int:
        weights = (
            (0.15, 0.35, 0.45, 0.05) if category in URGENT_CATEGORIES else (0.03, 0.17, 0.70, 0.10)
        )
        return self.rng.choices((1, 2, 3, 4), weights=weights)[0]

    def _template(self, category: str) -> tuple[str, str]:
        return self.rng.choice(TEMPLATES.get(category, (GENERIC_TEMPLATE,)))

    def _department(self, category: str) -> str:
        return DEPARTMENT_FOR.get(category, "grid_office")

    def _fill(self, grid: GridSpec) -> dict[str, Any]:
        rng = self.rng
        streets = list(grid.streets) or ["双福大道"]
        street = rng.choice(streets)
        others = [s for s in streets if s != street] or [street]
        return {
            "addr": f"{street}{rng.randint(1, 399)}号",
            "street": street,
            "street2": rng.choice(others),
            "landmark": grid.landmark or grid.name,
            "community": grid.community,
            "bld": rng.randint(1, 36),
            "unit_no": rng.randint(1, 4),
            "n": rng.randint(2, 12),
            "hour": rng.choice((22, 23)),
        }

    def _local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.tz)

    # -- the lifecycle --------------------------------------------------------------------

    def _emit(self, case: _CaseState, status: str, now: datetime, **extra: Any) -> None:
        # Strictly after the case's previous message: equal times could read as late.
        ts = max(now, case.last_ts + timedelta(milliseconds=1))
        case.last_ts = ts
        case.status = status
        values: dict[str, Any] = {"id": case.id, "status": status, "ts": self._local(ts)}
        values.update({k: v for k, v in extra.items() if v is not None})
        self._outbox.append(values)

    def _due_actions(self, now: datetime) -> None:
        due = sorted(
            (c for c in self.cases.values() if c.due is not None and c.due <= now),
            key=lambda c: (c.due, c.id),
        )
        for case in due:
            action, case.next_action, case.due = case.next_action, None, None
            if action == "cancel":
                self._emit(case, "cancelled", now)
                del self.cases[case.id]
            elif action == "register":
                self._emit(case, "registered", now)
                minutes = self.rng.triangular(0.3, 1.5, 0.5)
                if case.priority == 1:
                    minutes *= 0.6
                case.next_action, case.due = "dispatch", now + self._wall(minutes)
            elif action in ("dispatch", "rework"):
                self._dispatch(case, now, rework=action == "rework")
            elif action == "resolve":
                self._resolve(case, now)
            elif action == "close":
                self._emit(case, "closed", now)
                self.stats["closed"] += 1
                del self.cases[case.id]

    @staticmethod
    def _eligible(unit: _UnitState, case: _CaseState) -> bool:
        """Patrols take anything; a grid worker their own grid; a vehicle its department's."""
        kind = unit.spec.kind
        return (
            kind == "patrol"
            or (kind == "grid_worker" and unit.spec.grid_code == case.grid)
            or (kind == "vehicle" and unit.spec.department_id == case.department)
        )

    def _candidates(self, case: _CaseState) -> list[_UnitState]:
        return [
            u for u in self.units.values() if u.status == "available" and self._eligible(u, case)
        ]

    def _dispatch(self, case: _CaseState, now: datetime, *, rework: bool) -> None:
        candidates = self._candidates(case)
        if not candidates:
            # Nobody free: the case waits (and goes overdue) until someone is.
            case.next_action, case.due = ("rework" if rework else "dispatch"), now + self._wall(0.5)
            return
        # Nearest by travel time (a car two streets away beats a walker next door).
        unit = min(
            candidates,
            key=lambda u: (
                haversine_m(u.lat, u.lon, case.lat, case.lon) / u.respond_speed,
                u.spec.id,
            ),
        )
        unit.status, unit.case_id, unit.on_scene = "busy", case.id, False
        unit.target, unit.moving_speed = (case.lat, case.lon), unit.respond_speed
        unit.pause_until = now + self._wall(self._departure_delay())
        unit.announce = True
        case.unit = unit.spec.id
        if rework:
            case.reworked = True
        self._emit(case, "dispatched", now, unit=unit.spec.id, department=case.department)
        self._assign(case, now, unit.spec.id, departments=not rework)

    # -- responders (lq:assignments) --------------------------------------------------------

    def _report(
        self, case: _CaseState, at: datetime, assignee: str, kind: str, status: str, **extra: Any
    ) -> None:
        """Queue a responder's progress entry, sent once ``at`` has come."""
        values: dict[str, Any] = {
            "case": case.id, "assignee": assignee, "kind": kind, "status": status,
        }  # fmt: skip
        values.update({k: v for k, v in extra.items() if v is not None})
        self._assign_due.append((at, next(self._assign_seq), case.id, values))

    def _accept_delay(self, dept: str) -> timedelta:
        low, mode, high = ACCEPT_MIN.get(dept, (0.5, 2.5, 8.0))
        return self._wall(self.rng.triangular(low, high, mode))

    def _assign(self, case: _CaseState, now: datetime, unit: str, *, departments: bool) -> None:
        """The dispatch as responders see it: the unit, and on a first dispatch the lead
        department with its co-handlers, each accepting after its own delay; now and then
        a co-handler returns it or the lead transfers it."""
        self._report(case, now, unit, "unit", "dispatched")
        self._report(case, now + self._wall(self._departure_delay()), unit, "unit", "en_route")
        if not departments:
            return
        lead = case.department
        co = [
            d for d, p in CO_HANDLERS.get(case.category, ()) if d != lead and self.rng.random() < p
        ]
        case.offices = [lead]
        self._report(case, now, lead, "department", "dispatched", role="lead")
        accepted = now + self._accept_delay(lead)
        if self.rng.random() < TRANSFER_P:
            others = sorted({d for d in DEPARTMENT_FOR.values() if d not in (lead, *co)})
            to = self.rng.choice(others)
            self._report(case, accepted, lead, "department", "transferred", to=to,
                         reason="经核实属其他部门职责, 转办")  # fmt: skip
            self._report(case, accepted + self._accept_delay(to), to, "department", "accepted",
                         role="lead")  # fmt: skip
            case.offices = [to]
        else:
            self._report(case, accepted, lead, "department", "accepted", role="lead")
        for dept in co:
            self._report(case, now, dept, "department", "dispatched", role="assist")
            at = now + self._accept_delay(dept)
            if self.rng.random() < RETURN_P:
                self._report(case, at, dept, "department", "returned", reason="非本部门职责")
            else:
                self._report(case, at, dept, "department", "accepted")
                case.offices.append(dept)

    def _flush_assignments(self, now: datetime) -> None:
        """Send the responders' entries that are due, in time order (a producer without
        ``assignment``, such as a test's recorder, gets none)."""
        send = getattr(self.producer, "assignment", None)
        due = sorted(e for e in self._assign_due if e[0] <= now)
        if not due:
            return
        if send is None:
            self._assign_due = []
            return
        sent: set[int] = set()
        try:
            for at, seq, _, values in due:
                send(ts=self._local(min(at, now)), **values)
                sent.add(seq)
        finally:
            self._assign_due = [e for e in self._assign_due if e[1] not in sent]
            self.stats["assignments"] = self.stats.get("assignments", 0) + len(sent)
            if len(self._assign_due) > MAX_OUTBOX:
                del self._assign_due[: len(self._assign_due) - MAX_OUTBOX]

    def _departure_delay(self) -> float:
        """Simulated minutes between the dispatch and setting off; now and then a long one."""
        if self.rng.random() < 0.04:
            return self.rng.uniform(3.0, 8.0)  # finishing something, stuck in traffic
        return self.rng.uniform(0.1, 1.0)

    def _arrive(self, unit: _UnitState, now: datetime) -> None:
        case = self.cases.get(unit.case_id or "")
        unit.on_scene, unit.target, unit.moving_speed = True, None, 0.0
        if case is None:  # pragma: no cover - cases end only after their unit is released
            self._release(unit, now)
            return
        self._emit(case, "on_scene", now, unit=unit.spec.id)
        self._report(case, now, unit.spec.id, "unit", "on_scene")
        low, high = HANDLING_MIN.get(case.category, (5, 25))
        minutes = self.rng.uniform(low, high) * (0.5 if case.reworked else 1.0)
        case.next_action, case.due = "resolve", now + self._wall(minutes)

    def _resolve(self, case: _CaseState, now: datetime) -> None:
        # Its responders report done first (the lead last); what they had not yet said is moot.
        self._assign_due = [e for e in self._assign_due if e[2] != case.id]
        if case.unit:
            self._report(case, now, case.unit, "unit", "done", note="现场处置完毕")
        for dept in reversed(case.offices):
            self._report(case, now, dept, "department", "done", note="已办结")
        self._emit(case, "resolved", now, unit=case.unit)
        unit = self.units.get(case.unit or "")
        if unit is not None and unit.case_id == case.id:
            self._release(unit, now)
        if not case.reworked and self.rng.random() < 0.05:
            # The check finds it not done (返工): back to a unit.
            case.next_action, case.due = "rework", now + self._wall(self.rng.uniform(2.0, 8.0))
        else:
            case.next_action, case.due = "close", now + self._wall(self.rng.uniform(2.0, 10.0))

    def _release(self, unit: _UnitState, now: datetime) -> None:
        unit.status, unit.case_id, unit.on_scene, unit.target = "available", None, False, None
        unit.pause_until = now + self._wall(self.rng.uniform(0.5, 3.0))
        unit.announce = True

    # -- units ----------------------------------------------------------------------------

    def _shifts(self, now: datetime, sim_dt: float) -> None:
        """Units go off duty now and then, and come back."""
        p_off = 1.0 - math.exp(-OFF_DUTY_RATE_PER_H * sim_dt / 3600.0)
        for unit in self.units.values():
            if unit.status == "off_duty":
                if unit.off_until is not None and now >= unit.off_until:
                    unit.status, unit.off_until, unit.announce = "available", None, True
                    unit.next_ping = now
            elif unit.status == "available" and p_off > 0 and self.rng.random() < p_off:
                unit.status, unit.target, unit.moving_speed = "off_duty", None, 0.0
                unit.off_until = now + self._wall(self.rng.uniform(20, 120))
                unit.announce = True

    def _waypoint(self, unit: _UnitState) -> tuple[float, float]:
        spec = unit.spec
        if spec.kind == "grid_worker":
            code = spec.grid_code
        else:
            codes = self._zone_grids.get(spec.zone_code) or (spec.grid_code,)
            code = spec.grid_code if self.rng.random() < 0.3 else self.rng.choice(codes)
        grid = self._grids.get(code)
        if grid is None:
            return spec.home_lat, spec.home_lon
        return random_point_in_grid(grid, self.rng, margin=0.08)

    def _move(self, now: datetime, sim_dt: float) -> None:
        for unit in self.units.values():
            if unit.status == "off_duty" or unit.on_scene:
                continue
            if unit.pause_until is not None and now < unit.pause_until:
                continue  # resting at a waypoint, or getting ready to set off to a case
            if unit.target is None:
                if unit.status == "busy":
                    continue
                wander, _ = SPEEDS.get(unit.spec.kind, SPEEDS["patrol"])
                unit.target = self._waypoint(unit)
                unit.moving_speed = wander * self.rng.uniform(0.8, 1.2)
                unit.pause_until = None
            if sim_dt <= 0:
                continue
            tlat, tlon = unit.target
            dx = (tlon - unit.lon) * self._m_per_deg_lon
            dy = (tlat - unit.lat) * self._m_per_deg_lat
            remaining = math.hypot(dx, dy)
            travel = unit.moving_speed * sim_dt
            reach = ARRIVE_RADIUS_M if unit.case_id is not None else 0.0
            if travel >= remaining - reach:
                unit.lat, unit.lon = tlat, tlon
                if unit.case_id is not None:
                    self._arrive(unit, now)
                else:
                    unit.target, unit.moving_speed = None, 0.0
                    unit.pause_until = now + self._wall(self.rng.uniform(0.5, 4.0))
            else:
                f = travel / remaining
                unit.lat += dy * f / self._m_per_deg_lat
                unit.lon += dx * f / self._m_per_deg_lon

    def _pings(self, now: datetime) -> int:
        now_ms = int(now.timestamp() * 1000)
        batch: list[Mapping[str, Any]] = []
        for unit in self.units.values():
            due = unit.next_ping is not None and now >= unit.next_ping
            if unit.status == "off_duty" and not unit.announce:
                continue
            if not (due or unit.announce) or now_ms <= unit.last_ping_ms:
                continue
            batch.append(self._ping_values(unit, now_ms))
            unit.announce = False
            unit.last_ping_ms = now_ms
            unit.next_ping = now + timedelta(seconds=self.rng.uniform(*PING_INTERVAL_S))
        if batch:
            self.producer.pipeline_pings(batch)
            self.stats["pings"] += len(batch)
        return len(batch)

    def _ping_values(self, unit: _UnitState, now_ms: int) -> dict[str, Any]:
        if unit.sent_at is not None:
            dy = (unit.lat - unit.sent_at[0]) * self._m_per_deg_lat
            dx = (unit.lon - unit.sent_at[1]) * self._m_per_deg_lon
            if math.hypot(dx, dy) > 1.0:
                unit.heading = math.degrees(math.atan2(dx, dy)) % 360.0
        unit.sent_at = (unit.lat, unit.lon)
        accuracy = round(self.rng.uniform(3.0, 15.0), 1)
        # GPS noise of the order of the reported accuracy.
        lat = unit.lat + self.rng.gauss(0, accuracy / 3) / self._m_per_deg_lat
        lon = unit.lon + self.rng.gauss(0, accuracy / 3) / self._m_per_deg_lon
        moving = unit.target is not None and unit.status != "off_duty" and not unit.on_scene
        return {
            "unit": unit.spec.id,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "ts": now_ms,
            "speed": round(unit.moving_speed if moving else 0.0, 1),
            "heading": round(unit.heading, 1),
            "accuracy": accuracy,
            "status": unit.status,
        }

    # -- output ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write queued incident messages in order; keep the rest if Redis fails."""
        sent = 0
        try:
            for values in self._outbox:
                self.producer.incident(**values)
                sent += 1
        finally:
            del self._outbox[:sent]
            self.stats["incidents"] += sent
            if len(self._outbox) > MAX_OUTBOX:
                dropped = len(self._outbox) - MAX_OUTBOX
                del self._outbox[:dropped]
                log.warning("simulator: dropped %d unsent incident messages", dropped)

    # -- warm start -----------------------------------------------------------------------

    def _warm_case(self, t0: datetime, now: datetime, reserved: set[str]) -> list[dict[str, Any]]:
        """One past case: its messages up to ``now``; if still open, hand it to the live loop."""
        rng = self.rng
        created = self._new_case(t0)
        self._outbox.pop()  # _new_case queued it; warm start sorts and writes everything itself
        case = self.cases[created["id"]]
        case.next_action = case.due = None
        out = [created]
        plan: list[tuple[str, datetime]] = []
        depart: datetime | None = None
        t = t0 + timedelta(minutes=rng.uniform(0.5, 2.0))
        if rng.random() < 0.03:
            plan.append(("cancelled", t))
        else:
            plan.append(("registered", t))
            stuck = rng.random()
            wait = rng.triangular(0.3, 1.5, 0.5) + (rng.uniform(8, 40) if stuck < 0.05 else 0.0)
            t_disp = t + timedelta(minutes=wait)
            long_job = stuck > 0.95 and case.category in URGENT_CATEGORIES | {"noise"}
            low, high = HANDLING_MIN.get(case.category, (5, 25))
            handling = rng.uniform(90, 200) if long_job else rng.uniform(low, high)
            reworked = rng.random() < 0.05
            close_after = rng.uniform(2.0, 10.0)
            for unit in self._by_eta(case):
                travel = (
                    haversine_m(unit.spec.home_lat, unit.spec.home_lon, case.lat, case.lon)
                    / unit.respond_speed
                )
                steps = [("dispatched", t_disp)]
                depart = t_disp + timedelta(minutes=self._departure_delay())
                t_scene = depart + timedelta(seconds=travel)
                steps += [
                    ("on_scene", t_scene),
                    ("resolved", t_scene + timedelta(minutes=handling)),
                ]
                if reworked:
                    t_re = steps[-1][1] + timedelta(minutes=rng.uniform(2.0, 8.0))
                    t_scene2 = t_re + timedelta(seconds=travel)
                    steps += [
                        ("dispatched", t_re),
                        ("on_scene", t_scene2),
                        ("resolved", t_scene2 + timedelta(minutes=handling * 0.5)),
                    ]
                steps.append(("closed", steps[-1][1] + timedelta(minutes=close_after)))
                current = self._stage_at(steps, now)
                if current in ("dispatched", "on_scene") and unit.spec.id in reserved:
                    continue
                plan += [(s, ts) for s, ts in steps]
                case.unit = unit.spec.id
                if current in ("dispatched", "on_scene"):
                    reserved.add(unit.spec.id)
                break
            else:
                plan = plan[:1]  # nobody free: it stays registered (and goes overdue)
        past = [(s, ts) for s, ts in plan if ts <= now]
        future = [(s, ts) for s, ts in plan if ts > now]
        for status, ts in past:
            extra: dict[str, Any] = {}
            if status in ("dispatched", "on_scene", "resolved"):
                extra["unit"] = case.unit
            if status == "dispatched":
                extra["department"] = case.department
            self._emit(case, status, ts, **extra)
            out.append(self._outbox.pop())
        if case.status in TERMINAL:
            del self.cases[case.id]
            if case.status == "closed":
                self.stats["closed"] += 1
            return out
        case.reworked = sum(1 for s, _ in past if s == "dispatched") > 1
        self._hand_over(case, future[0] if future else None, now, depart=depart)
        return out

    @staticmethod
    def _stage_at(steps: list[tuple[str, datetime]], now: datetime) -> str | None:
        times = [ts for _, ts in steps]
        k = bisect.bisect_right(times, now)
        return steps[k - 1][0] if k else None

    def _by_eta(self, case: _CaseState) -> list[_UnitState]:
        units = [u for u in self.units.values() if self._eligible(u, case)]
        return sorted(
            units,
            key=lambda u: (
                haversine_m(u.spec.home_lat, u.spec.home_lon, case.lat, case.lon) / u.respond_speed
            ),
        )

    def _hand_over(
        self,
        case: _CaseState,
        nxt: tuple[str, datetime] | None,
        now: datetime,
        *,
        depart: datetime | None,
    ) -> None:
        """Carry an open warm-start case on in the live loop, from the stage it reached."""
        remaining_min = (nxt[1] - now).total_seconds() / 60.0 if nxt else 0.5
        due = now + self._wall(max(0.0, remaining_min))
        if case.status == "reported":
            cancel = nxt is not None and nxt[0] == "cancelled"
            case.next_action, case.due = ("cancel" if cancel else "register"), due
        elif case.status == "registered":
            case.next_action, case.due = "dispatch", due
        elif case.status == "resolved":
            rework = nxt is not None and nxt[0] == "dispatched"
            case.next_action, case.due = ("rework" if rework else "close"), due
        else:  # dispatched or on scene: its unit is busy with it
            unit = self.units[case.unit or ""]
            unit.status, unit.case_id, unit.announce = "busy", case.id, True
            unit.pause_until = unit.off_until = None
            if case.status == "on_scene":
                unit.lat, unit.lon, unit.on_scene, unit.target = case.lat, case.lon, True, None
                case.next_action, case.due = "resolve", due
                return
            # On the way: still at home getting ready, or part of the way there.
            unit.target, unit.on_scene = (case.lat, case.lon), False
            unit.moving_speed = unit.respond_speed
            start = depart or case.last_ts
            if now < start:
                unit.lat, unit.lon = unit.spec.home_lat, unit.spec.home_lon
                unit.pause_until = now + self._wall((start - now).total_seconds() / 60.0)
                return
            arrive = nxt[1] if nxt else now
            total = (arrive - start).total_seconds() or 1.0
            done = min(1.0, max(0.0, (now - start).total_seconds() / total))
            unit.lat = unit.spec.home_lat + (case.lat - unit.spec.home_lat) * done
            unit.lon = unit.spec.home_lon + (case.lon - unit.spec.home_lon) * done
