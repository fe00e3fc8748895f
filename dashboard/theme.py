"""Colors of the wall: the lifecycle stages on a dark background, safe for color-blind viewers.

The stage colors follow the Okabe-Ito palette (distinguishable with the common
color-vision deficiencies) and progress from warm (needs action) to cool (being
handled) to green and grey (done); stage never relies on hue alone: finished
cases are drawn hollow, overdue cases get a thick vermilion ring that pulses.
"""

from __future__ import annotations

STATUS_COLORS: dict[str, str] = {
    "reported": "#F0E442",  # yellow: new, unverified
    "registered": "#E69F00",  # orange: waiting for dispatch
    "dispatched": "#56B4E9",  # sky blue: a unit is on its way
    "on_scene": "#3A7BFF",  # blue: being handled
    "resolved": "#009E73",  # bluish green: done, awaiting verification
    "closed": "#A0A7B4",  # grey: closed
    "cancelled": "#5C6370",  # dark grey: not a case
}
OVERDUE_COLOR = "#FF5A36"  # vermilion ring
# Units are squares (cases are dots) in colors outside the stage palette.
UNIT_COLORS: dict[str, str] = {
    "available": "#FFFFFF",
    "busy": "#CC79A7",  # Okabe-Ito reddish purple
    "off_duty": "#6B7280",
}
BACKGROUND = "#070D1A"
# Trend arrows: better / worse than yesterday at the same time (the arrow's direction and
# a sign carry the meaning too, so hue is never the only cue).
TREND_COLORS: dict[str, str] = {"better": "#56B4E9", "worse": "#E69F00", "flat": "#9FB0CC"}
# Fixed points drawn as distinct shapes (station square, camera triangle, sensor diamond).
FACILITY_COLORS: dict[str, str] = {"station": "#FFFFFF", "camera": "#8EC9F0", "sensor": "#C9A6FF"}
# Open cases per grid: viridis steps (perceptually ordered, safe for color-blind viewers).
DENSITY_COLORS: tuple[str, ...] = ("#2D1E4F", "#3B528B", "#21918C", "#5EC962", "#FDE725")
# One fixed color per case category and per source, everywhere (the wall's bars, /trends, its
# print and the charts of the exports): a category keeps its color whatever the filter shows
# (issue 15). Okabe-Ito first, then distinguishable extras; a category a deployment adds gets
# a stable color from CATEGORY_EXTRA_COLORS by its name (never by its place in a list).
CATEGORY_COLORS: dict[str, str] = {
    "dispute": "#CC79A7",
    "public_security": "#0072B2",
    "traffic": "#E69F00",
    "fire_hazard": "#D55E00",
    "environment": "#009E73",
    "noise": "#F0E442",
    "illegal_construction": "#8C6D4F",
    "municipal_facility": "#56B4E9",
    "market_order": "#FB8072",
    "population": "#BEBADA",
    "public_service": "#8DD3C7",
    "other": "#A0A7B4",
}
SOURCE_COLORS: dict[str, str] = {
    "hotline_12345": "#56B4E9",
    "police_110": "#0072B2",
    "grid_app": "#009E73",
    "video_ai": "#E69F00",
    "iot": "#D55E00",
    "patrol": "#CC79A7",
    "walk_in": "#F0E442",
    "other": "#A0A7B4",
}
CATEGORY_EXTRA_COLORS: tuple[str, ...] = (
    "#B3DE69", "#FCCDE5", "#80B1D3", "#FDB462", "#BC80BD", "#CCEBC5", "#FFED6F", "#E5C494",
)  # fmt: skip


def _stable_color(key: str, table: dict[str, str]) -> str:
    if key in table:
        return table[key]
    import zlib

    return CATEGORY_EXTRA_COLORS[zlib.crc32(key.encode("utf-8")) % len(CATEGORY_EXTRA_COLORS)]


def category_color(category: str) -> str:
    """The one color of a case category (a stable extra color for one we do not know)."""
    return _stable_color(category, CATEGORY_COLORS)


def source_color(source: str) -> str:
    """The one color of a case source."""
    return _stable_color(source, SOURCE_COLORS)
