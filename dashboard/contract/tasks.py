"""The outbound `lq:tasks` stream (contract v1.1): how a responder's own system — a unit's
app, a department's case system, a station's terminal — learns of its assignments.

Each entry tells one assignee about one assignment; consumers read it with their own
consumer group (``XREADGROUP GROUP <their-group> …``), filter on ``assignee`` (or ``kind``)
and answer on `lq:assignments`. Written through the transactional outbox
(dashboard/live/outbox.py): an entry exists only for a committed change, at least once;
``task`` is the idempotency key (README "lq:tasks").
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from dashboard.contract.entries import ContractError, decode_fields, parse_ident

# What happened to the assignment, from the assignee's point of view.
TASK_ACTIONS: tuple[str, ...] = (
    "dispatched",  # a new assignment: accept it (签收) by accept_due
    "transferred_in",  # another department transferred the case to you (转办)
    "rework",  # the citizen was not satisfied: the case is back with you (返工)
    "urged",  # 督办: a lead urges you (note says why)
    "escalated",  # your assignment is late past its deadline (level 1-3)
    "withdrawn",  # the case was cancelled or closed while you were on it
)
TASK_FIELDS = frozenset(
    {
        "task", "case", "assignment", "assignee", "kind", "role", "action", "ts", "by",
        "accept_due", "done_due", "level", "note", "reason", "category", "priority", "title",
        "address", "lat", "lon", "version",
    }
)  # fmt: skip


def new_task_id() -> str:
    return f"task-{secrets.token_hex(10)}"


def task_fields(values: Mapping[str, Any]) -> dict[str, str]:
    """An entry's fields as strings, without the empty ones."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        if name not in TASK_FIELDS:
            raise ValueError(f"not a lq:tasks field: {name}")
        out[name] = str(value)
    return out


def parse_task(fields: Mapping[bytes | str, bytes | str]) -> str:
    """Check a task entry as the outbox relay publishes it; return its task id."""
    values = decode_fields(fields)
    for name in ("task", "case", "assignee", "kind", "action"):
        if name not in values:
            raise ContractError("missing_field", f"a task entry needs {name!r}", name)
    unknown = sorted(set(values) - TASK_FIELDS)
    if unknown:
        raise ContractError("unknown_field", f"not a lq:tasks field: {unknown[0][:64]!r}")
    parse_ident(values["case"], "case")
    parse_ident(values["assignee"], "assignee")
    if values["action"] not in TASK_ACTIONS:
        raise ContractError("unknown_action", "unknown task action", "action")
    return values["task"]
