"""The HTTP API's constrained types state the stream contract's rules, not copies of them."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter, ValidationError

from dashboard.api import schemas
from dashboard.api.types import ID_SCHEMA_PATTERN, NON_BLANK_PATTERN, TEXT_PATTERN, Ident
from dashboard.contract.changes import CANCEL_REASON_MAX, NOTE_MAX
from dashboard.contract.entries import CONTROL_CHARS, ID_PATTERN, ID_RE

IDENT = TypeAdapter(Ident)


@pytest.mark.parametrize(
    "value", ["HZ-1", "a" * 64, "a" * 65, "", "bad id", "٢", "x/y", "P-001:2", "é"]
)
def test_an_id_is_the_contracts_id(value: str) -> None:
    accepted = True
    try:
        IDENT.validate_python(value)
    except ValidationError:
        accepted = False
    assert accepted == bool(ID_RE.fullmatch(value))
    assert accepted == bool(re.fullmatch(ID_SCHEMA_PATTERN, value, re.ASCII))


def test_the_patterns_come_from_the_contract() -> None:
    assert ID_PATTERN in ID_SCHEMA_PATTERN
    assert CONTROL_CHARS in TEXT_PATTERN and CONTROL_CHARS in NON_BLANK_PATTERN
    note = schemas.NoteBody.model_json_schema()["properties"]["note"]
    reason = schemas.CancelBody.model_json_schema()["properties"]["reason"]
    assert (note["maxLength"], reason["maxLength"]) == (NOTE_MAX, CANCEL_REASON_MAX)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"note": "x"}, "version", "required: the case's version as you saw it"),
        ({"note": "x", "version": True}, "version", "must be a positive integer"),
        ({"note": "x", "version": "2"}, "version", "must be a positive integer"),
        ({"note": "   ", "version": 2}, "note", "required: the note's text"),
        ({"note": "a\x07", "version": 2}, "note", "contains a control character"),
        ({"note": "x" * 1001, "version": 2}, "note", "at most 1000 characters (got 1001)"),
        ({"note": "x", "version": 2, "lng": 1}, "lng", "unknown field (allowed: note, version)"),
    ],
)
def test_a_refused_body_gives_a_reason_per_field(body: dict, field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        schemas.NoteBody.model_validate(body)
    assert schemas.field_errors(caught.value, schemas.NoteBody)[field] == reason


def test_a_whole_float_version_and_trimmed_text_are_accepted() -> None:
    body = schemas.NoteBody.model_validate({"note": "  电话已联系 \n", "version": 3.0})
    assert (body.version, body.note) == (3, "电话已联系")
