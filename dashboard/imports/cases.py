"""Public 311 records mapped onto the stream contract (docs/contract.md), for replays and imports.

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

NYC 311 (``Unique Key, Created Date, Closed Date, Agency, Complaint Type, Descriptor,
Status, Due Date, Resolution Action Updated Date, …, Latitude, Longitude``):

* Times are ``MM/DD/YYYY hh:mm:ss AM`` in New York's local time.
* ``Status`` becomes our stage (NYC_STATUSES): ``Open`` → reported, ``Pending`` →
  registered, ``Assigned`` → dispatched (at ``Resolution Action Updated Date`` when it
  is there and not before the creation, else at the creation), ``Closed`` → closed at
  ``Closed Date``. A closed request without a ``Closed Date`` stays reported, and a
  ``Closed Date`` on a request that is not closed is ignored; both with a note.
* A row without coordinates cannot be put on the map: it is skipped, with the reason.
* ``Complaint Type`` → category (NYC_CATEGORIES, ``Noise…`` → noise); ``Agency`` →
  department; every request came through the 311 hotline (``hotline_12345``).

``lianqin-csv``: our own format, one row per stream-contract entry (the columns are the
contract's fields: ``id,status,ts,lat,lon,category,…``), several rows per case in time
order; an empty cell is an absent field.

``load_cases`` writes mapped cases straight into the database through the same code
the ingest worker uses (contract validation, the lifecycle, timelines), each entry
keyed by ``(import:<format>, <case>:<n>)``: importing a file again adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dashboard.geo import GridIndex
    from dashboard.sla import SlaPolicy

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


class HeaderError(ValueError):
    """The file's header is not the format's: nothing is read (one line says why)."""


# The columns each format cannot do without: a header lacking them is another format.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "boston311": ("case_enquiry_id", "open_dt", "latitude", "longitude"),
    "nyc311": ("Unique Key", "Created Date", "Status", "Latitude", "Longitude"),
    "lianqin-csv": ("id", "status", "ts"),
}


def check_header(path: Path, fmt: str, header: Sequence[str] | None) -> None:
    """Raise HeaderError when ``header`` lacks a column ``fmt`` needs (naming the format the
    header does match, if any)."""
    columns = {c.strip() for c in header or () if c}
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in columns]
    if not missing:
        return
    if not columns:
        raise HeaderError(f"{path}: no header line (an empty file?); expected --format {fmt}")
    others = [f for f, need in REQUIRED_COLUMNS.items() if f != fmt and set(need) <= columns]
    hint = f"; it looks like --format {others[0]}" if others else ""
    raise HeaderError(
        f"{path}: the header is not --format {fmt}'s (no column {', '.join(missing)}){hint}"
    )


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file with a header (quoted fields, UTF-8, BOM tolerated);
    with ``fmt``, a header without that format's columns raises HeaderError first."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if fmt is not None:
            check_header(path, fmt, reader.fieldnames)
        for row in reader:
            yield reader.line_num, row


def read_boston311(
    path: Path, *, limit: int | None = None, source_tz: ZoneInfo | None = None
) -> ImportResult:
    """Every row of a Boston 311 CSV file mapped, and the rows that could not be, with why;
    times without an offset are read in ``source_tz`` (default: Boston's)."""
    zone = source_tz or BOSTON_TZ
    return _read_mapped(path, "boston311", lambda row: boston311_case(row, zone=zone), limit)


# -- NYC 311 --------------------------------------------------------------------------------------
NYC_TZ = ZoneInfo("America/New_York")
NYC_ID_PREFIX = "NYC-"
# NYC's request status → our stage (README "The lifecycle").
NYC_STATUSES: Mapping[str, str] = {
    "Open": "reported",
    "Pending": "registered",
    "Assigned": "dispatched",
    "Started": "on_scene",
    "Closed": "closed",
}
# NYC's complaint type → the contract's category catalogue (``Noise…`` → noise).
NYC_CATEGORIES: Mapping[str, str] = {
    "Blocked Driveway": "traffic",
    "Illegal Parking": "traffic",
    "Derelict Vehicle": "traffic",
    "Derelict Vehicles": "traffic",
    "Traffic Signal Condition": "traffic",
    "Taxi Complaint": "traffic",
    "Broken Muni Meter": "traffic",
    "Rodent": "environment",
    "Sanitation Condition": "environment",
    "Harboring Bees/Wasps": "environment",
    "Indoor Air Quality": "environment",
    "Lead": "environment",
    "Graffiti": "environment",
    "Water System": "municipal_facility",
    "Street Light Condition": "municipal_facility",
    "Root/Sewer/Sidewalk Condition": "municipal_facility",
    "Street Condition": "municipal_facility",
    "Sidewalk Condition": "municipal_facility",
    "HEATING": "public_service",
    "ELECTRIC": "public_service",
    "PLUMBING": "public_service",
    "Benefit Card Replacement": "public_service",
    "DOF Literature Request": "public_service",
    "Homeless Person Assistance": "public_service",
    "Homeless Encampment": "public_service",
    "GENERAL CONSTRUCTION": "illegal_construction",
    "Panhandling": "public_security",
    "Drinking": "public_security",
    "Food Establishment": "market_order",
    "Consumer Complaint": "market_order",
}


def nyc_category(complaint: str) -> str:
    if complaint.lower().startswith("noise"):
        return "noise"
    return NYC_CATEGORIES.get(complaint, "other")


def _nyc_time(value: str, column: str, zone: ZoneInfo = NYC_TZ) -> datetime | None:
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    except ValueError:
        raise RowError(f"{column} is not MM/DD/YYYY hh:mm:ss AM: {text[:40]!r}") from None
    return parsed.replace(tzinfo=zone)


def nyc311_case(row: Mapping[str, str], *, zone: ZoneInfo = NYC_TZ) -> ImportedCase:
    """One NYC 311 row → a case's contract entries (raises RowError when it cannot)."""
    raw_id = (row.get("Unique Key") or "").strip()
    if not raw_id:
        raise RowError("no Unique Key")
    case_id = (NYC_ID_PREFIX + _ID_OK.sub("_", raw_id))[:64]
    opened = _nyc_time(row.get("Created Date") or "", "Created Date", zone)
    if opened is None:
        raise RowError("no Created Date")
    try:
        lat = float(row.get("Latitude") or "")
        lon = float(row.get("Longitude") or "")
    except ValueError:
        raise RowError("no coordinates") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise RowError(f"coordinates out of range: {lat}, {lon}")
    status_raw = (row.get("Status") or "").strip()
    stage = NYC_STATUSES.get(status_raw)
    if stage is None:
        raise RowError(f"unknown Status {status_raw[:40]!r}")
    notes: list[str] = []
    complaint = _clean(row.get("Complaint Type"), 100)
    descriptor = _clean(row.get("Descriptor"), 100)
    reported: dict[str, str] = {
        "id": case_id,
        "status": "reported",
        "ts": _iso(opened),
        "lat": repr(lat),
        "lon": repr(lon),
        "category": nyc_category(complaint),
        "source": "hotline_12345",
        "title": " / ".join(p for p in (complaint, descriptor) if p)[:200] or case_id,
        "description": " / ".join(
            p for p in (complaint, descriptor, _clean(row.get("Location Type"), 100)) if p
        )[:4000],
    }
    address = ", ".join(
        p for p in (_clean(row.get("Incident Address"), 200), _clean(row.get("City"), 60)) if p
    )
    if address:
        reported["address"] = address[:300]
    department = _ID_OK.sub("_", (row.get("Agency") or "").strip())[:64]
    if department:
        reported["department"] = department
    due = _nyc_time(row.get("Due Date") or "", "Due Date", zone)
    if due is not None:
        reported["due"] = _iso(due)
    entries = [reported]
    closed = _nyc_time(row.get("Closed Date") or "", "Closed Date", zone)
    if stage == "closed":
        if closed is None:
            notes.append("closed without a Closed Date: imported as reported")
        else:
            if closed < opened:
                notes.append(f"Closed Date {closed.isoformat()} before Created Date: clamped")
                closed = opened
            entries.append({"id": case_id, "status": "closed", "ts": _iso(closed)})
    elif stage != "reported":
        updated = _nyc_time(row.get("Resolution Action Updated Date") or "", "updated", zone)
        at = updated if updated is not None and updated >= opened else opened
        entries.append({"id": case_id, "status": stage, "ts": _iso(at)})
    if closed is not None and stage != "closed":
        notes.append(f"Closed Date on a request that is {status_raw}: ignored")
    return ImportedCase(case_id, tuple(entries), tuple(notes))


def _read_mapped(
    path: Path, fmt: str, mapper: Callable[[Mapping[str, str]], ImportedCase], limit: int | None
) -> ImportResult:
    result = ImportResult()
    seen: set[str] = set()
    for line, row in read_rows(path, fmt):
        if limit is not None and len(result.cases) >= limit:
            break
        try:
            case = mapper(row)
        except RowError as exc:
            result.problems.append((line, str(exc)))
            continue
        if case.id in seen:
            result.problems.append((line, f"duplicate case {case.id}"))
            continue
        seen.add(case.id)
        result.cases.append(case)
    return result


def read_nyc311(
    path: Path, *, limit: int | None = None, source_tz: ZoneInfo | None = None
) -> ImportResult:
    """Every row of a NYC 311 CSV file mapped, and the rows that could not be, with why;
    its times (local, no offset) are read in ``source_tz`` (default: New York's)."""
    zone = source_tz or NYC_TZ
    return _read_mapped(path, "nyc311", lambda row: nyc311_case(row, zone=zone), limit)


# -- our own CSV: one row per contract entry ------------------------------------------------
def read_lianqin_csv(
    path: Path, *, limit: int | None = None, source_tz: ZoneInfo | None = None
) -> ImportResult:
    """Rows of contract entries grouped into cases (first appearance order, rows kept in order).
    The contract's times carry an offset; with ``source_tz``, a ``ts`` or ``due`` without one
    is read as that zone's local time (else the contract refuses it, with the reason)."""
    result = ImportResult()
    grouped: dict[str, list[dict[str, str]]] = {}
    for line, row in read_rows(path, "lianqin-csv"):
        entry = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
        case_id = entry.get("id", "")
        if not case_id:
            result.problems.append((line, "no id"))
            continue
        if "status" not in entry or "ts" not in entry:
            result.problems.append((line, "an entry needs status and ts"))
            continue
        if case_id not in grouped and limit is not None and len(grouped) >= limit:
            continue
        if source_tz is not None:
            for name in ("ts", "due"):
                if name in entry:
                    entry[name] = _with_offset(entry[name], source_tz)
        grouped.setdefault(case_id, []).append(entry)
    result.cases = [ImportedCase(cid, tuple(entries)) for cid, entries in grouped.items()]
    return result


def _with_offset(value: str, zone: ZoneInfo) -> str:
    """An ISO time without an offset, made explicit in ``zone``; anything else as it is."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # epoch ms, or not a time: the contract says which
    return value if parsed.tzinfo else _iso(parsed.replace(tzinfo=zone))


# The zone each format's offset-less times are in unless the command says otherwise
# (`lianqin import cases --source-tz`); None: the format's times carry their offset.
SOURCE_TZ_DEFAULTS: dict[str, str | None] = {
    "boston311": "America/New_York",
    "nyc311": "America/New_York",
    "lianqin-csv": None,
}

IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "boston311": read_boston311,
    "nyc311": read_nyc311,
    "lianqin-csv": read_lianqin_csv,
}


# -- into the database -----------------------------------------------------------------------
@dataclass
class LoadSummary:
    loaded: int = 0  # new cases
    already: int = 0  # cases whose every entry was imported before
    updated: int = 0  # existing cases that got new entries
    entries: int = 0  # entries applied
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (case or line, why)


def _fields(entry: Mapping[str, str]) -> dict[bytes | str, bytes | str]:
    return dict(entry.items())


def entry_key(case_id: str, index: int) -> str:
    """A stable id for a case's n-th entry (at most 40 characters, like a stream id)."""
    digest = hashlib.blake2b(case_id.encode(), digest_size=12).hexdigest()
    return f"{digest}:{index}"


def load_cases(
    session: Session,
    cases: Iterable[ImportedCase],
    *,
    source: str,
    categories: Iterable[str],
    policy: SlaPolicy,
    grids: GridIndex,
    now: datetime,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> LoadSummary:
    """Apply imported cases' entries with the ingest worker's rules, in the caller's
    transaction; entries are keyed ``(import:<source>, entry_key)`` so a re-import is a no-op."""
    from sqlalchemy import select

    from dashboard.contract.entries import ContractError, parse_incident
    from dashboard.models import Case
    from dashboard.services.assignments import ensure_lead_assignment
    from dashboard.services.ingest import apply_incidents

    stream = f"import:{source}"
    catalogue = tuple(categories)
    summary = LoadSummary()
    pending: list[ImportedCase] = []

    def flush() -> None:
        existing = set(session.scalars(select(Case.id).where(Case.id.in_([c.id for c in pending]))))
        parsed = []
        for case in pending:
            try:
                messages = [
                    (
                        entry_key(case.id, i),
                        parse_incident(_fields(entry), categories=catalogue, now=now),
                    )
                    for i, entry in enumerate(case.entries)
                ]
            except ContractError as exc:
                summary.skipped.append((case.id, f"{exc.code}: {exc.reason}"))
                continue
            parsed.append((case, messages))
        outcome = apply_incidents(
            session,
            [m for _, messages in parsed for m in messages],
            stream=stream,
            policy=policy,
            grids=grids,
            now=now,
        )
        for row in outcome.touched.values():  # the agency: one lead department (issue 13)
            ensure_lead_assignment(session, row, now=now)
        rejected = {entry_id: error for entry_id, error in outcome.rejected}
        for case, messages in parsed:
            effects = [outcome.effects.get(entry_id) for entry_id, _ in messages]
            problems = [rejected[e] for e, _ in messages if e in rejected]
            if problems:
                summary.skipped.append((case.id, f"{problems[0].code}: {problems[0].reason}"))
            applied = sum(1 for e in effects if e not in (None, "duplicate"))
            summary.entries += applied
            if case.id in existing:
                if applied:
                    summary.updated += 1
                elif not problems:
                    summary.already += 1
            elif applied:
                summary.loaded += 1
        if progress:
            progress(len(pending))
        pending.clear()

    for case in cases:
        pending.append(case)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return summary


def counts(cases: Iterable[ImportedCase]) -> dict[str, int]:
    """Cases by final status (for a summary line)."""
    out: dict[str, int] = {}
    for case in cases:
        out[case.final_status] = out.get(case.final_status, 0) + 1
    return out
