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
