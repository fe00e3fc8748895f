"""The `lq:changes` contract: what a change entry may say (``ACTIONS``, ``FIELDS``), how the
dashboard writes one (``entry_fields``, ``new_change_id``) and how a worker checks one it reads
(``parse_change``). Publishing through the outbox: dashboard/live/outbox.py."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from dashboard.contract.entries import ContractError, decode_fields, parse_ident

# What a change entry may say it did.
ACTIONS: tuple[str, ...] = (
    "assign", "priority", "note", "cancel", "reopen",
    # v1.1, responders (dashboard/services/assignments.py)
    "dispatch", "progress", "transfer", "return", "urge", "callback", "close",
)  # fmt: skip
# Every field an entry may carry (README "lq:changes"); values are strings.
FIELDS = frozenset(
    {
        "change", "case", "action", "actor", "ts", "version", "base_version", "status",
        "prev_status", "unit", "prev_unit", "department", "prev_department", "priority",
        "prev_priority", "note", "reason", "flags", "batch",
        # v1.1, responders
        "assignees", "assignment", "assignee", "kind", "to", "result", "entered_by",
    }
)  # fmt: skip
_VERSION_RE = re.compile(r"[0-9]{1,18}", re.ASCII)
# The longest text a change carries, after trimming: a lead's note and a cancellation's
# reason (the console's inputs and the write API's bodies take their limits from here).
NOTE_MAX = 1000
CANCEL_REASON_MAX = 300


def new_change_id() -> str:
    """A unique, roughly time-ordered change id (the entry's idempotency key)."""
    return f"chg-{secrets.token_hex(10)}"


def entry_fields(values: Mapping[str, Any]) -> dict[str, str]:
    """An entry's fields as strings, without the empty ones."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        if name not in FIELDS:
            raise ValueError(f"not a lq:changes field: {name}")
        out[name] = str(value)
    return out


def parse_change(fields: Mapping[bytes | str, bytes | str]) -> str:
    """Validate a `lq:changes` entry as the worker reads it; return the case it names.

    Only ``case`` is required (any tool may ask the workers to re-push a case's state);
    an entry that says what it did must name a known action and its actor.
    """
    values = decode_fields(fields)
    case_id = values.get("case")
    if not case_id:
        raise ContractError(
            "missing_field", "a change entry names its case in field 'case'", "case"
        )
    parse_ident(case_id, "case")
    action = values.get("action")
    if action is not None:
        if action not in ACTIONS:
            raise ContractError(
                "unknown_action",
                f"unknown action {action[:40]!r} (one of: {', '.join(ACTIONS)})",
                "action",
            )
        if not values.get("actor"):
            raise ContractError("missing_field", "a change entry names its actor", "actor")
    version = values.get("version")
    if version is not None and not _VERSION_RE.fullmatch(version):
        raise ContractError("bad_version", "version must be a positive integer", "version")
    return case_id
