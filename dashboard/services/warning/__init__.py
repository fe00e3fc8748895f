"""Early warning (预警): count surveillance, a space-time scan, rule alarms and alerts.

Pure functions over plain data — no database session inside the algorithms — so the
worker, the API and the benchmark run the same code (docs/warning.md):

- :mod:`places`: grids, zones and the district numbered once; series = place × category;
- :mod:`baseline`: counts in sliding windows and the same windows over the last N weeks;
- :mod:`detector`: the negative-binomial upper prediction bound and its levels;
- :mod:`scan`: Kulldorff's space-time permutation scan over neighbouring grids;
- :mod:`rules`: hand-written rule alarms (TOML / JSON), their parser and evaluator;
- :mod:`alerts`: the ``Alert`` record (``lq:alerts`` fields) and one alert per episode;
- :mod:`query`: the one module that reads the database (``load_cases``).
"""

from dashboard.services.warning.alerts import Alert, AlertBook, AlertEvent, RuleHit
from dashboard.services.warning.baseline import CaseTable, baseline_counts
from dashboard.services.warning.detector import Signal, detect
from dashboard.services.warning.places import ALL, DISTRICT, GridInfo, Place, PlaceIndex
from dashboard.services.warning.settings import LEVELS, WarningSettings

__all__ = [
    "ALL", "DISTRICT", "LEVELS", "Alert", "AlertBook", "AlertEvent", "CaseTable", "GridInfo",
    "Place", "PlaceIndex", "RuleHit", "Signal", "WarningSettings", "baseline_counts", "detect",
]  # fmt: skip
