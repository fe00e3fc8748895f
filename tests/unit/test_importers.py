"""The Boston 311 → contract mapping: local times made explicit, the file's traps handled."""

from __future__ import annotations

import csv
from datetime import datetime

import pytest
from helpers import dataset

from dashboard.config import Settings
from dashboard.contract.entries import parse_incident
from dashboard.imports.cases import BOSTON_PLACEHOLDER, RowError, boston311_case, read_boston311

DATASET = dataset("boston311-100.csv")
ROW = {
    "case_enquiry_id": "101004120108",
    "open_dt": "2022-01-08 12:54:49",
    "target_dt": "2022-01-11 08:30:00",
    "closed_dt": "2022-01-09 06:43:06",
    "case_status": "Closed",
    "case_title": "CE Collection",
    "subject": "Public Works Department",
    "reason": "Street Cleaning",
    "type": "CE Collection",
    "department": "PWDx",
    "location": "198 W Springfield St  Roxbury  MA  02118",
    "latitude": "42.3401",
    "longitude": "-71.0803",
    "source": "City Worker App",
}


def test_a_closed_row_becomes_reported_then_closed_in_bostons_time() -> None:
    case = boston311_case(ROW)
    reported, closed = case.entries
    assert case.id == "BOS-101004120108"
    assert reported["ts"] == "2022-01-08T12:54:49.000-05:00"  # EST, made explicit
    assert reported["due"] == "2022-01-11T08:30:00.000-05:00"
    assert (reported["category"], reported["source"], reported["department"]) == (
        "environment",
        "grid_app",
        "PWDx",
    )
    assert reported["address"] == "198 W Springfield St Roxbury MA 02118"
    assert closed == {"id": case.id, "status": "closed", "ts": "2022-01-09T06:43:06.000-05:00"}
    assert case.notes == ()


def test_every_entry_passes_the_contract() -> None:
    settings = Settings()
    now = datetime.fromisoformat("2026-11-24T00:00:00+00:00")
    result = read_boston311(DATASET)
    for case in result.cases:
        for entry in case.entries:
            raw = {k.encode(): v.encode() for k, v in entry.items()}
            msg = parse_incident(raw, categories=settings.categories, now=now, skew_s=900)
            assert msg.id == case.id


def test_the_files_traps() -> None:
    result = read_boston311(DATASET)
    assert len(result.cases) == 100 and result.problems == []
    with DATASET.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    placeholder = sum(
        1 for r in rows if (float(r["latitude"]), float(r["longitude"])) == BOSTON_PLACEHOLDER
    )
    noted = [c for c in result.cases if any("placeholder" in n for n in c.notes)]
    assert placeholder > 1 and len(noted) == placeholder
    assert sum(1 for c in result.cases if c.final_status == "closed") == sum(
        1 for r in rows if r["case_status"] == "Closed"
    )
    ordered = result.entries_by_time()
    times = [datetime.fromisoformat(e["ts"]) for e in ordered]
    assert times == sorted(times) and len(ordered) == 185


def test_edge_rows() -> None:
    no_close_time = boston311_case({**ROW, "closed_dt": ""})
    assert no_close_time.final_status == "reported" and no_close_time.notes
    backwards = boston311_case({**ROW, "closed_dt": "2022-01-08 10:00:00"})
    assert backwards.entries[1]["ts"] == backwards.entries[0]["ts"] and backwards.notes
    summer = boston311_case({**ROW, "open_dt": "2022-07-01 09:00:00", "closed_dt": ""})
    assert summer.entries[0]["ts"].endswith("-04:00")  # EDT
    assert boston311_case({**ROW, "reason": "Something new"}).entries[0]["category"] == "other"
    for bad in ({"latitude": ""}, {"open_dt": ""}, {"open_dt": "01/08/2022"}, {"latitude": "99"}):
        with pytest.raises(RowError):
            boston311_case({**ROW, **bad})
