"""The stream contract v1.1: `lq:assignments` entries, a responder's progress on a case.

Department systems, stations and unit apps write here (README "lq:assignments"). Same
style, same reason codes and the same bounds as the v1 parser (dashboard/contract/entries.py):
strict UTF-8 (surrogates refused), ASCII digits in times, times within 2000..2200 and not
in the future beyond the allowed skew, ids of 1-64 characters, texts bounded and free of
control characters. Rules that need the database (an unknown case or assignee, an illegal
move) are the applier's (dashboard/services/assignments.py, dashboard/assignments.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dashboard.assignments import ASSIGNMENT_STATUSES, KINDS
from dashboard.contract.entries import (
    ContractError,
    _check_fields,
    _required,
    decode_fields,
    parse_ident,
    parse_time,
)

CONTRACT_MINOR = "1.1"
ASSIGNMENT_FIELDS = frozenset(
    {"case", "assignee", "kind", "status", "ts", "role", "to", "reason", "note"}
)
ENTRY_ROLES: tuple[str, ...] = ("lead", "assist")  # a department's or a station's
TEXT_LIMITS = {"reason": 300, "note": 1000}
NEEDS_REASON = frozenset({"returned", "transferred"})
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class AssignmentMessage:
    case: str
    assignee: str
    kind: str
    status: str
    ts: datetime
    role: str | None = None  # None: not given (a new assignment defaults to ``assist``)
    to: str | None = None
    reason: str | None = None
    note: str | None = None
    raw: dict[str, str] = field(default_factory=dict, compare=False)


def _one_of(values: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _required(values, name)
    if value not in allowed:
        raise ContractError(
            f"unknown_{name}",
            f"unknown {name} {value[:40]!r} (one of: {', '.join(allowed)})",
            name,
        )
    return value


def _text(values: Mapping[str, str], name: str) -> str | None:
    text = values.get(name)
    if text is None:
        return None
    limit = TEXT_LIMITS[name]
    if len(text) > limit:
        raise ContractError(
            "too_long", f"{name} is {len(text)} characters, the limit is {limit}", name
        )
    if _CONTROL_RE.search(text):
        raise ContractError("control_character", f"{name} contains a control character", name)
    return text


def parse_assignment(
    fields: Mapping[bytes | str, bytes | str],
    *,
    now: datetime | None = None,
    skew_s: int | None = 900,
) -> AssignmentMessage:
    """Validate one `lq:assignments` entry."""
    values = decode_fields(fields)
    _check_fields(values, ASSIGNMENT_FIELDS)
    case_id = parse_ident(_required(values, "case"), "case")
    assignee = parse_ident(_required(values, "assignee"), "assignee")
    kind = _one_of(values, "kind", KINDS)
    status = _one_of(values, "status", ASSIGNMENT_STATUSES)
    ts = parse_time(_required(values, "ts"), "ts", now=now, skew_s=skew_s)
    role = values.get("role")
    if role is not None:
        if kind == "unit":
            raise ContractError(
                "bad_role", "a unit is a responder: role is for departments and stations", "role"
            )
        if role not in ENTRY_ROLES:
            raise ContractError(
                "unknown_role",
                f"unknown role {role[:40]!r} (one of: {', '.join(ENTRY_ROLES)})",
                "role",
            )
    to = values.get("to")
    if status == "transferred":
        if to is None:
            raise ContractError(
                "missing_field", "a transfer names the receiving department in 'to'", "to"
            )
        to = parse_ident(to, "to")
        if to == assignee:
            raise ContractError("bad_value", "a department does not transfer to itself", "to")
    elif to is not None:
        raise ContractError("unexpected_field", "'to' is only for status transferred", "to")
    reason = _text(values, "reason")
    if status in NEEDS_REASON and reason is None:
        raise ContractError(
            "missing_field", f"status {status} needs a reason (why, for the center)", "reason"
        )
    return AssignmentMessage(
        case=case_id,
        assignee=assignee,
        kind=kind,
        status=status,
        ts=ts,
        role=role,
        to=to,
        reason=reason,
        note=_text(values, "note"),
        raw=values,
    )
