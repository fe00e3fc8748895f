"""What each role may do: the one table (README: Accounts, roles and tokens).

Pure data and two small functions, no database: the web guard, the write API, the
dispatch service, the console's callbacks and its layout all read this table, so that what a
page shows and what the server allows cannot drift apart.

``PERMISSIONS`` below is the table (the README shows it as role × permission): the desk
roles (operator, lead, admin) open the console, add notes and dispatch a *new, unassigned*
case — one still ``reported`` or ``registered`` with no unit, given its first unit and a
department where it has none; leads (lead, admin) also reassign (change a unit or
department, send a resolved case back), change priorities, cancel, reopen and act in bulk;
leaders, leads and admins open the briefing view and export; admins manage users and
tokens; everyone sees the wall and reads the API.
"""

from __future__ import annotations

from collections.abc import Mapping

from dashboard.vocabulary import ROLES, Role, Status

_ALL = frozenset(ROLES)
_DESK = frozenset({Role.OPERATOR, Role.LEAD, Role.ADMIN})  # who sits at the dispatch console
_LEADS = frozenset({Role.LEAD, Role.ADMIN})
_BRIEFING = frozenset({Role.LEADER, Role.LEAD, Role.ADMIN})

PERMISSIONS: Mapping[str, frozenset[str]] = {
    "view_wall": _ALL,
    "read_api": _ALL,
    "view_dispatch": _DESK,
    "add_note": _DESK,
    "dispatch_new": _DESK,
    "reassign": _LEADS,
    "priority": _LEADS,
    "cancel": _LEADS,
    "reopen": _LEADS,
    "bulk": _LEADS,
    # Responders (issue 13, dashboard/services/assignments.py): a lead dispatches several
    # departments/stations/units, transfers (转办), returns (退回) and urges (督办); the desk
    # records progress on a responder's behalf, the citizen's callback (回访) and closes (核查结案).
    "dispatch_responders": _LEADS,
    "transfer": _LEADS,
    "return": _LEADS,
    "urge": _LEADS,
    "progress": _DESK,
    "callback": _DESK,
    "close": _DESK,
    "view_trends": _BRIEFING,
    "export": _BRIEFING,
    "write_decisions": _BRIEFING,  # the briefing's conclusions (issue 15)
    "manage": frozenset({Role.ADMIN}),
}
# The pages, in the navigation's order, and the permission each needs (the web guard's
# dashboard/web/auth.py PAGE_PERMISSIONS agrees; tests/unit/test_nav.py checks it).
PAGES: tuple[tuple[str, str], ...] = (
    ("/wall", "view_wall"),
    ("/dispatch", "view_dispatch"),
    ("/trends", "view_trends"),
)
# The statuses of a case not yet dispatched: an operator may give it its first unit.
NEW_STATUSES = frozenset({Status.REPORTED, Status.REGISTERED})


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())


def pages_for(role: str) -> list[str]:
    """The pages a role may open, in the navigation's order."""
    return [path for path, permission in PAGES if allowed(role, permission)]


def is_new_unassigned(status: str | None, unit: str | None) -> bool:
    """A case an operator may dispatch: not yet dispatched, and no unit on it."""
    return status in NEW_STATUSES and not unit
