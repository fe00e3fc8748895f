"""Times every layer can show: the window the stream contract accepts, and safe rendering.

Python's ``datetime`` spans years 1-9999, but a time near either end cannot always be
shown: ``9999-12-31T23:59:59Z`` rendered in ``+08:00`` is in year 10000 (OverflowError),
and psycopg cannot load it in a session whose time zone is east of UTC. So every time
the contract accepts lies in ``[EARLIEST, LATEST)``, a window that SQLite's text,
PostgreSQL's ``timestamptz``, Python in any zone (offsets up to ±24 h), JSON (ISO text
and epoch milliseconds), JavaScript's ``Date`` (±8.64e15 ms) and Excel's dates all hold
with centuries to spare. ``NO_DEADLINE`` is the stored form of a ``due`` that says "no
deadline" (year 9999): the end of the window, which no real ``due`` reaches.

``in_zone`` and ``iso`` never raise for an aware datetime, whatever it holds (rows written
before the window existed, or by hand): a time that cannot be shown in the zone is shown in
UTC instead (or in its own offset), which is the same instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
NO_DEADLINE = LATEST


def in_zone(moment: datetime, zone: tzinfo | None) -> datetime:
    """``moment`` in ``zone``; in UTC (or as it is) when that would leave years 1-9999."""
    for target in (zone or UTC, UTC):
        try:
            return moment.astimezone(target)
        except (OverflowError, ValueError):
            continue
    return moment


def iso(moment: datetime | None, zone: tzinfo | None = None) -> str | None:
    """ISO 8601 with an offset (milliseconds), in ``zone`` when it can be shown there."""
    if moment is None:
        return None
    return in_zone(moment, zone).isoformat(timespec="milliseconds")
