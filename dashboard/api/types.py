"""The constrained types the HTTP API is built from (dashboard/api/schemas.py), each stated
once: what it accepts, the reason it gives when it refuses (for the ``fields`` of an error),
and what the OpenAPI document says of it. Their limits come from the stream contract
(dashboard/contract/: the id rule, the control characters, the text lengths), so the API, the
console's inputs (layouts/dispatch.py) and the grid importer cannot drift apart.

Pure pydantic: no Flask (the dispatch service validates the console's bodies with them too).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from dashboard.contract.changes import CANCEL_REASON_MAX, NOTE_MAX
from dashboard.contract.entries import CONTROL_CHARS, ID_PATTERN, ID_RE, ID_RULE

__all__ = [
    "CANCEL_REASON_MAX",
    "ID_SCHEMA_PATTERN",
    "NON_BLANK_PATTERN",
    "NOTE_MAX",
    "TEXT_PATTERN",
    "Ident",
    "OptionalIdent",
    "Priority",
    "Version",
    "optional_text",
    "required_text",
]

# The same rules as patterns, for the OpenAPI document (and pydantic's second check).
ID_SCHEMA_PATTERN = f"^{ID_PATTERN}$"
TEXT_PATTERN = f"^[^{CONTROL_CHARS}]*$"
# Something left after trimming: at least one character that is neither space nor control.
NON_BLANK_PATTERN = f"^[^{CONTROL_CHARS}]*[^\\s{CONTROL_CHARS}][^{CONTROL_CHARS}]*$"
_CONTROL_RE = re.compile(f"[{CONTROL_CHARS}]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _refuse(kind: str, reason: str) -> PydanticCustomError:
    # The reason is the message as it is ({} would be a template placeholder).
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


# -- ids ------------------------------------------------------------------------------------
def _ident(value: Any) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise _refuse("lq_ident", f"must be an id of {ID_RULE}")
    return value


def _empty_is_none(value: Any) -> Any:
    return None if value is None or value == "" else value


Ident = Annotated[str, Field(pattern=ID_SCHEMA_PATTERN), BeforeValidator(_ident)]
"""A case, unit, department or grid id (the stream contract's id rule)."""

OptionalIdent = Annotated[Ident | None, BeforeValidator(_empty_is_none)]
"""An id, or nothing (absent, null or empty)."""


# -- whole numbers ----------------------------------------------------------------------------
def _whole(low: int, high: int | None, reason: str) -> Callable[[Any], int]:
    """JSON numbers only (``true`` is not 1, ``"2"`` is not 2); a whole float such as 3.0 is
    accepted as 3."""

    def check(value: Any) -> int:
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        if number is None or number < low or (high is not None and number > high):
            raise _refuse("lq_integer", reason)
        return number

    return check


Version = Annotated[
    int,
    Field(ge=1, description="the case's version as you saw it"),
    BeforeValidator(_whole(1, None, "must be a positive integer")),
]
"""The case's version a change is based on (optimistic concurrency: 409 when stale)."""

Priority = Annotated[
    int,
    Field(ge=1, le=4, description="1 (urgent) … 4 (low)"),
    BeforeValidator(_whole(1, 4, "must be 1 (urgent) … 4 (low)")),
]


# -- text -------------------------------------------------------------------------------------
def _text(limit: int, required: str | None) -> Callable[[Any], str | None]:
    """Trimmed text of at most ``limit`` characters without control characters (tab and
    newlines allowed) or lone surrogates; blank is None (refused when ``required``)."""

    def check(value: Any) -> str | None:
        if value is None:
            text = ""
        elif not isinstance(value, str):
            raise _refuse("lq_text", "must be a string")
        else:
            text = value.strip()
        if len(text) > limit:
            raise _refuse("lq_text", f"at most {limit} characters (got {len(text)})")
        if _CONTROL_RE.search(text):
            raise _refuse("lq_text", "contains a control character")
        if _SURROGATE_RE.search(text):
            raise _refuse(
                "lq_text", "contains text that cannot be encoded (a lone UTF-16 surrogate)"
            )
        if not text and required is not None:
            raise _refuse("lq_required", f"required: {required}")
        return text or None

    return check


def optional_text(limit: int) -> Any:
    """Optional free text (a note): trimmed, at most ``limit`` characters; blank is None."""
    return Annotated[
        Annotated[str, Field(max_length=limit, pattern=TEXT_PATTERN)] | None,
        BeforeValidator(_text(limit, None)),
    ]


def required_text(limit: int, what: str) -> Any:
    """Required free text: as :func:`optional_text`, and something must be left after
    trimming (the reason when not: ``required: <what>``)."""
    return Annotated[
        str,
        Field(max_length=limit, pattern=NON_BLANK_PATTERN, description=what),
        BeforeValidator(_text(limit, what)),
    ]
