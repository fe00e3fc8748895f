"""Public 311 records mapped onto the stream contract (CONTRACT.md), for replays and imports.

A row of a city's service-request file becomes one case: a list of contract
entries (flat string fields, exactly what a producer would ``XADD`` to
``lq:incidents``) in time order — ``reported`` at the opening time, then
``closed`` at the closing time when there is one. The same mapping serves
``lianqin replay boston311 FILE`` (the entries go through the streams and the
worker like any producer's) and a bulk import of history into the database.

Boston 311 (``case_enquiry_id, open_dt, target_dt, closed_dt, ontime,
case_status, …, latitude, longitude, source``), with the traps of the real file:

* Times carry no offset: they are Boston's local time (America/New_York), made
  explicit here, so the entries carry ``-05:00``/``-04:00``.
* Intersections are geocoded to a placeholder point (42.3594, -71.0587) shared
  by unrelated rows. Such a case keeps the point (a case needs one, and dropping
  it would change the counts) and says so in its description; ``notes`` lists it.
* ``case_status`` ``Closed`` with no ``closed_dt`` cannot be timed: the case is
  imported as reported, with a note. A ``closed_dt`` before ``open_dt`` is
  clamped to the opening time, with a note.
* ``target_dt`` is the city's own deadline: it becomes ``due`` (the contract's
  explicit resolution deadline, which wins over the SLA default).
* Categories and channels are mapped onto the contract's catalogues below;
  anything unmapped becomes ``other``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

BOSTON_TZ = ZoneInfo("America/New_York")
BOSTON_PLACEHOLDER = (42.3594, -71.0587)
BOSTON_ID_PREFIX = "BOS-"

# Boston's `reason` (the request's family) → the contract's category catalogue.
BOSTON_CATEGORIES: Mapping[str, str] = {
    "Enforcement & Abandoned Vehicles": "traffic",
    "Signs & Signals": "traffic",
    "Street Cleaning": "environment",
    "Sanitation": "environment",
    "Recycling": "environment",
    "Environmental Services": "environment",
    "Park Maintenance & Safety": "environment",
    "Graffiti": "environment",
    "Needle Program": "environment",
    "Animal Issues": "environment",
    "Code Enforcement": "environment",
    "Highway Maintenance": "municipal_facility",
    "Street Lights": "municipal_facility",
    "Sidewalk Cover / Manhole": "municipal_facility",
    "Housing": "public_service",
    "Building": "illegal_construction",
    "Noise Disturbance": "noise",
    "Programs": "public_service",
    "Administrative & General Requests": "other",
    "Employee & General Comments": "other",
}
# Boston's `source` (the channel) → the contract's sources.
BOSTON_SOURCES: Mapping[str, str] = {
    "Constituent Call": "hotline_12345",
    "City Worker App": "grid_app",
    "Employee Generated": "patrol",
    "Citizens Connect App": "other",
    "Self Service": "other",
    "Twitter": "other",
}
_SPACES = re.compile(r"\s+")
_ID_OK = re.compile(r"[^A-Za-z0-9._:-]")


class RowError(ValueError):
    """A row that cannot become a case (no id, no time, no point)."""


@dataclass(frozen=True, slots=True)
class ImportedCase:
    """One source row as contract entries, oldest first."""

    id: str
    entries: tuple[dict[str, str], ...]
    notes: tuple[str, ...] = ()

    @property
    def final_status(self) -> str:
        return self.entries[-1]["status"]


@dataclass
class ImportResult:
    cases: list[ImportedCase] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def entries_by_time(self) -> list[dict[str, str]]:
        """Every case's entries, ordered by time (a case's own order kept on ties)."""
        indexed = [
            (_when(entry), n, i, entry)
            for n, case in enumerate(self.cases)
            for i, entry in enumerate(case.entries)
        ]
        indexed.sort(key=lambda item: (item[0], item[1], item[2]))
        return [entry for *_, entry in indexed]


def _when(entry: Mapping[str, str]) -> datetime:
    return datetime.fromisoformat(entry["ts"])


def _local_time(value: str, zone: ZoneInfo, column: str) -> datetime | None:
    """``2022-01-03 00:11:40`` (the file's local time, no offset) → an aware datetime."""
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"{column} is not a date and time: {text[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


def _clean(value: str | None, limit: int) -> str:
    return _SPACES.sub(" ", value or "").strip()[:limit]


def boston311_case(row: Mapping[str, str], *, zone: ZoneInfo = BOSTON_TZ) -> ImportedCase:
    """One Boston 311 row → a case's contract entries (raises RowError when it cannot)."""
    raw_id = (row.get("case_enquiry_id") or "").strip()
    if not raw_id:
        raise RowError("no case_enquiry_id")
    case_id = (BOSTON_ID_PREFIX + _ID_OK.sub("_", raw_id))[:64]
    opened = _local_time(row.get("open_dt") or "", zone, "open_dt")
    if opened is None:
        raise RowError("no open_dt")
    try:
        lat = float(row.get("latitude") or "")
        lon = float(row.get("longitude") or "")
    except ValueError:
        raise RowError("no coordinates") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise RowError(f"coordinates out of range: {lat}, {lon}")
    notes: list[str] = []
    reason = _clean(row.get("reason"), 100)
    kind = _clean(row.get("type"), 100)
    description = " / ".join(p for p in (_clean(row.get("subject"), 100), reason, kind) if p)
    if (round(lat, 4), round(lon, 4)) == BOSTON_PLACEHOLDER:
        notes.append("placeholder point (an intersection geocoded to the city's default)")
        description += " [位置为占位点 / placeholder location]"
    reported: dict[str, str] = {
        "id": case_id,
        "status": "reported",
        "ts": _iso(opened),
        "lat": repr(lat),
        "lon": repr(lon),
        "category": BOSTON_CATEGORIES.get(reason, "other"),
        "source": BOSTON_SOURCES.get(_clean(row.get("source"), 60), "other"),
        "title": _clean(row.get("case_title"), 200) or kind[:200] or case_id,
        "description": description[:4000],
    }
    address = _clean(row.get("location"), 300)
    if address:
        reported["address"] = address
    department = _ID_OK.sub("_", (row.get("department") or "").strip())[:64]
    if department:
        reported["department"] = department
    target = _local_time(row.get("target_dt") or "", zone, "target_dt")
    if target is not None:
        reported["due"] = _iso(target)
    entries = [reported]
    closed = _local_time(row.get("closed_dt") or "", zone, "closed_dt")
    status = (row.get("case_status") or "").strip().lower()
    if status == "closed" and closed is None:
        notes.append("closed without a closing time: imported as reported")
    elif closed is not None and status != "open":
        if closed < opened:
            notes.append(f"closed_dt {closed.isoformat()} before open_dt: clamped")
            closed = opened
        entries.append({"id": case_id, "status": "closed", "ts": _iso(closed)})
    return ImportedCase(case_id, tuple(entries), tuple(notes))


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file with a header (quoted fields, UTF-8, BOM tolerated)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row


def read_boston311(path: Path, *, limit: int | None = None) -> ImportResult:
    """Every row of a Boston 311 CSV file mapped, and the rows that could not be, with why."""
    result = ImportResult()
    seen: set[str] = set()
    for line, row in read_rows(path):
        if limit is not None and len(result.cases) >= limit:
            break
        try:
            case = boston311_case(row)
        except RowError as exc:
            result.problems.append((line, str(exc)))
            continue
        if case.id in seen:
            result.problems.append((line, f"duplicate case {case.id}"))
            continue
        seen.add(case.id)
        result.cases.append(case)
    return result


IMPORTERS = {"boston311": read_boston311}


def counts(cases: Iterable[ImportedCase]) -> dict[str, int]:
    """Cases by final status (for a summary line)."""
    out: dict[str, int] = {}
    for case in cases:
        out[case.final_status] = out.get(case.final_status, 0) + 1
    return out
