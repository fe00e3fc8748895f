"""A briefing's conclusions and follow-up actions (issue 15): a 周研判 ends with decisions.

A leader types them on /trends; they are kept per period and filters (the same week with the
same filters finds them again, a different filter is a different meeting) and printed on
/trends/print after the figures. The key is the period's UTC bounds and the canonical filters:
"this week" resolved today and "custom 11-23..11-29" are the same meeting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.models import BriefingDecision, utcnow
from dashboard.services.kpis import Period
from dashboard.services.trends.periods import Filters

MAX_TEXT = 20_000  # characters: a page or two of conclusions, not a document store


@dataclass(frozen=True, slots=True)
class Decisions:
    text: str
    updated_at: datetime | None
    updated_by: str


def filters_key(filters: Filters) -> str:
    """The filters as one canonical line (sorted lists; empty means everything)."""
    parts = [
        f"category={','.join(sorted(filters.categories))}",
        f"source={','.join(sorted(filters.sources))}",
        f"grid_kind={filters.grid_kind or ''}",
        f"grid={','.join(sorted(filters.grids))}",
        f"zone={filters.zone or ''}",
        f"department={filters.department or ''}",
    ]
    return "&".join(parts)


def scope_of(period: Period, filters: Filters) -> str:
    key = f"{period.start.isoformat()}|{period.end.isoformat()}|{filters_key(filters)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load(session: Session, *, period: Period, filters: Filters) -> Decisions:
    row = session.scalar(
        select(BriefingDecision).where(BriefingDecision.scope == scope_of(period, filters))
    )
    if row is None:
        return Decisions(text="", updated_at=None, updated_by="")
    return Decisions(text=row.text, updated_at=row.updated_at, updated_by=row.updated_by)


def save(
    session: Session, *, period: Period, filters: Filters, text: str, by: str,
    now: datetime | None = None,
) -> Decisions:  # fmt: skip
    """Keep the text for this period and filters (the last save wins; empty text clears it)."""
    text = text.replace("\r\n", "\n").strip()[:MAX_TEXT]
    scope = scope_of(period, filters)
    row = session.scalar(select(BriefingDecision).where(BriefingDecision.scope == scope))
    when = now or utcnow()
    if row is None:
        row = BriefingDecision(
            scope=scope, period_start=period.start, period_end=period.end,
            filters=filters_key(filters), text=text, updated_at=when, updated_by=by[:64],
        )  # fmt: skip
        session.add(row)
    else:
        row.text, row.updated_at, row.updated_by = text, when, by[:64]
    session.flush()
    return Decisions(text=text, updated_at=when, updated_by=by[:64])
