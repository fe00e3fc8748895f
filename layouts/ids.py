"""Every Dash component id, in one place."""

URL = "lq-url"
PAGE = "lq-page"

# The wall
WALL = "lq-wall"
WALL_MAP = "lq-wall-map"
LIVE_CONFIG = "lq-live-config"
CASES_LAYER = "lq-cases-layer"
UNITS_LAYER = "lq-units-layer"
BASEMAP_LAYER = "lq-basemap-layer"
GRIDS_LAYER = "lq-grids-layer"
CLOCK = "lq-clock"
CONNECTION = "lq-connection"
LEGEND = "lq-legend"
CASE_COUNT = "lq-case-count"
