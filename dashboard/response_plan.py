"""Response plans: which units the console suggests first for a kind of case.

A plan is, per case category, an ordered list of steps; a step names unit kinds and/or
departments (a unit matches a step when its kind is among the step's ``kinds`` — if the
step names any — and its department among the step's ``departments`` — if it names any).
The nearest-unit suggestions (dashboard/services/dispatch.py ``nearest_units``) rank free
units by the first step they match, then by ETA; units matching no step follow, then busy
units the same way. A category with no plan ranks by ETA alone.

The defaults follow the demo district's departments (dashboard/demo/district.py); a JSON
file (``LIANQIN_RESPONSE_PLAN_FILE``) replaces the plan of each category it names, e.g.::

    {"fire_hazard": [{"departments": ["fire_rescue"]},
                     {"kinds": ["patrol", "vehicle"], "departments": ["police"]}],
     "noise": []}
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

Step = Mapping[str, Sequence[str]]
Plan = Sequence[Step]

_POLICE = {"kinds": ["patrol", "vehicle"], "departments": ["police"]}
_GRID = {"kinds": ["grid_worker"]}
_CITY = {"departments": ["city_mgmt"]}

DEFAULT_PLANS: dict[str, list[dict[str, list[str]]]] = {
    # A fire hazard (an IoT smoke alarm): fire and rescue, then police patrols, before
    # grid workers.
    "fire_hazard": [{"departments": ["fire_rescue"]}, _POLICE, _GRID],
    "public_security": [_POLICE, {"kinds": ["patrol"]}],
    "traffic": [{"departments": ["traffic_police"]}, _POLICE],
    "population": [_GRID, {"departments": ["police"]}],
    "dispute": [{"departments": ["justice"]}, _GRID, _POLICE],
    "noise": [_CITY, _GRID],
    "illegal_construction": [_CITY, _GRID],
    "municipal_facility": [_CITY, _GRID],
    "environment": [{"departments": ["environment"]}, _CITY, _GRID],
    "market_order": [{"departments": ["market_supervision"]}, _CITY, _GRID],
    "public_service": [{"departments": ["civil_affairs"]}, _GRID],
}


def _check(plans: object, source: str) -> dict[str, list[dict[str, list[str]]]]:
    if not isinstance(plans, dict):
        raise ValueError(f"{source}: a response plan file is an object of category → steps")
    out: dict[str, list[dict[str, list[str]]]] = {}
    for category, steps in plans.items():
        if not isinstance(steps, list):
            raise ValueError(f"{source}: {category}: a list of steps")
        checked = []
        for step in steps:
            if not isinstance(step, dict) or not set(step) <= {"kinds", "departments"} or not step:
                raise ValueError(f"{source}: {category}: a step has kinds and/or departments")
            for key, values in step.items():
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise ValueError(f"{source}: {category}.{key}: a list of strings")
            checked.append({k: list(v) for k, v in step.items()})
        out[str(category)] = checked
    return out


@functools.lru_cache(maxsize=8)
def load_plans(path: Path | None) -> Mapping[str, Plan]:
    """The default plans, with the file's categories replacing theirs."""
    plans: dict[str, Plan] = dict(DEFAULT_PLANS)
    if path is not None:
        plans.update(_check(json.loads(Path(path).read_text(encoding="utf-8")), str(path)))
    return plans


def plan_step(plan: Plan, kind: str | None, department: str | None) -> int | None:
    """The first step (1-based) of ``plan`` that a unit of ``kind`` in ``department``
    matches, or None."""
    for number, step in enumerate(plan, start=1):
        kinds = step.get("kinds")
        departments = step.get("departments")
        if kinds and kind not in kinds:
            continue
        if departments and department not in departments:
            continue
        return number
    return None
