"""The domain's vocabulary, defined once: case statuses, roles, languages, and the KPI registry.

Everything else imports these names instead of listing them again: the lifecycle rules
(dashboard/lifecycle.py), the stream contract, the services' queries, the layouts (the
wall's legend and tiles, the briefing's cards and exports) and, through the page config
that the layouts hand to the browser, the JS in assets/. Pure data, no imports from the
rest of the package.

**Statuses** (the lifecycle's stages, in order): a status has a *rank* (its place in the
forward order; ``cancelled`` has none: it is a forward move from any open status), is
*open* (``reported`` … ``on_scene``: not yet disposed), *terminal* (``closed``,
``cancelled``: only a shift lead moves a case out of it) or neither (``resolved``: done,
awaiting verification), and has a *stage column*, the column of ``cases`` that stores when
the case reached it.

**KPIs**: every figure the wall, the API, the briefing view and its exports show, by name
(README "KPIs"), with its unit, its display format, which direction is better news and
its label keys (dashboard/data/i18n/*.json). The surfaces choose which figures they show
and in what order; how a figure reads comes from here, not from its name's suffix.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# -- statuses -------------------------------------------------------------------------------------


class Status(enum.StrEnum):
    """A case's stage; a ``str``, so ``Status.CLOSED == "closed"`` and dict keys mix freely."""

    REPORTED = "reported"
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int | None:
        """The place in the forward order (None for ``cancelled``)."""
        return _STATUS_FACTS[self].rank

    @property
    def terminal(self) -> bool:
        """Closed or cancelled: no producer message moves the case any more."""
        return _STATUS_FACTS[self].terminal

    @property
    def open(self) -> bool:
        """Not yet disposed (``reported`` … ``on_scene``): counts in ``open``."""
        return _STATUS_FACTS[self].open

    @property
    def stage_column(self) -> str:
        """The ``cases`` column that stores when the case reached this stage."""
        return _STATUS_FACTS[self].stage_column


@dataclass(frozen=True, slots=True)
class _StatusFacts:
    rank: int | None
    open: bool
    terminal: bool
    stage_column: str


_STATUS_FACTS: Mapping[Status, _StatusFacts] = {
    Status.REPORTED: _StatusFacts(0, open=True, terminal=False, stage_column="reported_at"),
    Status.REGISTERED: _StatusFacts(1, open=True, terminal=False, stage_column="registered_at"),
    Status.DISPATCHED: _StatusFacts(2, open=True, terminal=False, stage_column="dispatched_at"),
    Status.ON_SCENE: _StatusFacts(3, open=True, terminal=False, stage_column="on_scene_at"),
    Status.RESOLVED: _StatusFacts(4, open=False, terminal=False, stage_column="resolved_at"),
    Status.CLOSED: _StatusFacts(5, open=False, terminal=True, stage_column="closed_at"),
    Status.CANCELLED: _StatusFacts(None, open=False, terminal=True, stage_column="cancelled_at"),
}

# The same facts as plain strings, for the hot paths and SQL ``IN`` lists.
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)  # lifecycle order: the legend's
RANK: Mapping[str, int] = {s.value: s.rank for s in Status if s.rank is not None}
TERMINAL: frozenset[str] = frozenset(s.value for s in Status if s.terminal)
OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in Status if s.open)
# Open or awaiting verification: what the dispatch queue lists and the overdue lists scan.
NOT_TERMINAL: tuple[str, ...] = tuple(s.value for s in Status if not s.terminal)
DISPOSED: tuple[str, ...] = tuple(s.value for s in Status if not s.open and s != Status.CANCELLED)
STAGE_COLUMNS: Mapping[str, str] = {s.value: s.stage_column for s in Status}


# A unit's duty status (lq:pings ``status``), in the legend's order.
UNIT_STATUSES: tuple[str, ...] = ("available", "busy", "off_duty")


def status_config() -> dict[str, object]:
    """The status facts the browser needs (the page config's ``statuses``)."""
    return {
        "order": list(STATUSES),
        "terminal": sorted(TERMINAL),
        "open": list(OPEN_STATUSES),
    }


# -- roles ----------------------------------------------------------------------------------------


class Role(enum.StrEnum):
    """Who a principal is (README "Accounts, roles and tokens"); least to most trusted."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    LEAD = "lead"
    LEADER = "leader"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)

# -- languages ------------------------------------------------------------------------------------

Lang = Literal["zh-CN", "en"]
LANGUAGES: tuple[Lang, ...] = ("zh-CN", "en")
DEFAULT_LANGUAGE: Lang = "zh-CN"


def pick_language(requested: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """``requested`` when it is a language we speak, else ``default``."""
    return requested if requested in LANGUAGES else default


# -- KPIs -----------------------------------------------------------------------------------------
Unit = Literal["cases", "fraction", "s", "units"]
Format = Literal["count", "rate", "duration", "units"]
Better = Literal["up", "down", ""]
Scope = Literal["period", "live", "figure"]


@dataclass(frozen=True, slots=True)
class Kpi:
    """How one figure reads.

    ``unit``: what the number counts (cases, a fraction 0..1, seconds, or the units-online
    object ``{status: n, total}``). ``format``: how it is shown (``count``, ``rate`` as a
    percentage, ``duration``, ``units``). ``better``: which direction is good news (``up``,
    ``down``, or ``""``: neither, a volume). ``label``: the wall tile's label key;
    ``title``: the briefing view's (longer) label key, when it shows the figure.
    ``scope``: ``period`` (DESIGN's per-period KPIs), ``live`` (computed at now, not per
    period), ``figure`` (not a KPI of the API, but shown and exported by the briefing)."""

    name: str
    unit: Unit
    format: Format
    better: Better
    label: str
    title: str | None = None
    scope: Scope = "period"

    @property
    def change_kind(self) -> str:
        """How a change is told: percentage ``points`` for rates, ``percent`` otherwise."""
        return "points" if self.format == "rate" else "percent"

    def config(self) -> dict[str, str]:
        """What the browser needs of it (the page config's ``kpis``)."""
        return {"unit": self.unit, "format": self.format, "better": self.better}


def _count(name: str, better: Better, *, scope: Scope = "period", title: bool = True) -> Kpi:
    return Kpi(name, "cases", "count", better, f"kpi_{name}",
               f"tr_kpi_{name}" if title else None, scope)  # fmt: skip


def _rate(name: str, better: Better, *, scope: Scope = "period", title: bool = True) -> Kpi:
    return Kpi(name, "fraction", "rate", better, f"kpi_{name}",
               f"tr_kpi_{name}" if title else None, scope)  # fmt: skip


def _seconds(name: str, label: str, title: str, *, scope: Scope = "period") -> Kpi:
    return Kpi(name, "s", "duration", "down", label, title, scope)


# In the API's order (``kpis.KPI_NAMES``: README "KPIs"), then the briefing's other figures.
KPIS: Mapping[str, Kpi] = {
    k.name: k
    for k in (
        _count("reported", ""),
        _count("open", "down", title=False),
        _rate("disposal_rate", "up"),
        _rate("closure_rate", "up"),
        _rate("on_time_rate", "up"),
        _count("overdue", "down", scope="live", title=False),
        _seconds("dispatch_p50_s", "kpi_dispatch", "tr_kpi_dispatch_p50_s"),
        _seconds("dispatch_p90_s", "p90", "tr_kpi_dispatch_p90_s"),
        _seconds("arrival_p50_s", "kpi_arrival", "tr_kpi_arrival_p50_s"),
        _seconds("arrival_p90_s", "p90", "tr_kpi_arrival_p90_s"),
        _rate("dispatch_within_target_rate", "up"),
        _rate("arrival_within_target_rate", "up"),
        _rate("rework_rate", "down"),
        _rate("dispute_resolution_rate", "up"),
        Kpi("units_online", "units", "units", "", "kpi_units_online", None, "live"),
        _rate("coverage_5min", "up", scope="live", title=False),
        # Responders (issue 13: docs/kpis.md "Responders").
        _rate("joint_rate", "", title=False),
        _seconds("acceptance_p50_s", "kpi_acceptance", "tr_kpi_acceptance_p50_s"),
        _seconds("acceptance_p90_s", "p90", "tr_kpi_acceptance_p90_s"),
        _rate("on_time_acceptance_rate", "up", title=False),
        _count("transfer_count", "down", title=False),
        _count("return_count", "down", title=False),
        _rate("callback_rate", "up", title=False),
        _rate("satisfaction_rate", "up", title=False),
        # The briefing's series and league table, not KPIs of the API.
        Kpi("disputes", "cases", "count", "", "tr_disputes", "tr_disputes", "figure"),
        _seconds("resolve_p50_s", "tr_resolve_p50", "tr_resolve_p50", scope="figure"),
    )
}
KPI_NAMES: tuple[str, ...] = tuple(n for n, k in KPIS.items() if k.scope != "figure")


def kpi_config() -> dict[str, dict[str, str]]:
    """Every figure's unit, format and better direction, for the browser."""
    return {name: k.config() for name, k in KPIS.items()}
