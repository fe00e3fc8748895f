"""assignments: many responders on one case (联勤联动联处), callback and closure verification

Every existing case with a department gets one lead department assignment, every case with
a unit one unit assignment, their status and times taken from the case's own stages, so
that no case loses its responder (README "Responders (assignments)").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The converted assignment's status, from the case's status (a cancelled case's responder
# keeps the last stage the case reached).
_DEPARTMENT_STATUS = """CASE
    WHEN resolved_at IS NOT NULL OR status IN ('resolved', 'closed') THEN 'done'
    WHEN on_scene_at IS NOT NULL OR status = 'on_scene' THEN 'accepted'
    ELSE 'dispatched' END"""
_UNIT_STATUS = """CASE
    WHEN resolved_at IS NOT NULL OR status IN ('resolved', 'closed') THEN 'done'
    WHEN on_scene_at IS NOT NULL OR status = 'on_scene' THEN 'on_scene'
    ELSE 'dispatched' END"""


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("dispatched_at", _TS, nullable=False),
        sa.Column("accepted_at", _TS, nullable=True),
        sa.Column("en_route_at", _TS, nullable=True),
        sa.Column("on_scene_at", _TS, nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.Column("returned_at", _TS, nullable=True),
        sa.Column("transferred_at", _TS, nullable=True),
        sa.Column("accept_due_at", _TS, nullable=True),
        sa.Column("done_due_at", _TS, nullable=True),
        sa.Column("escalation", sa.Integer(), nullable=False),
        sa.Column("last_urged_at", _TS, nullable=True),
        sa.Column("urge_count", sa.Integer(), nullable=False),
        sa.Column("parent_id", _BIGID, nullable=True),
        sa.Column("transferred_to", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("result", sa.String(length=1000), nullable=True),
        sa.Column("entered_by", sa.String(length=100), nullable=True),
        sa.Column("status_ts", _TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_id"], ["assignments.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_assignments_case", "assignments", ["case_id", "dispatched_at"])
    op.create_index("ix_assignments_assignee", "assignments", ["assignee_id", "status"])
    op.create_index("ix_assignments_open", "assignments", ["status", "accept_due_at"])
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("callback_result", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("callback_at", _TS, nullable=True))
        batch.add_column(sa.Column("callback_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("callback_note", sa.String(length=1000), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("close_reason", sa.String(length=300), nullable=True))
    with op.batch_alter_table("change_outbox") as batch:
        batch.add_column(sa.Column("stream", sa.String(length=16), nullable=True))
    # Existing single unit / department cases: one assignment each (the department leads).
    common = """
        dispatched_at, on_scene_at, done_at, escalation, urge_count, status_ts, version,
        created_at, updated_at"""
    start = "COALESCE(dispatched_at, registered_at, reported_at)"
    op.execute(
        f"""INSERT INTO assignments (case_id, assignee_id, kind, role, required, status,
            accepted_at, done_due_at, {common})
        SELECT id, department_id, 'department', 'lead', {sa.true().compile(op.get_bind())},
            {_DEPARTMENT_STATUS}, on_scene_at, due_at,
            {start}, NULL, resolved_at, 0, 0, {start}, 1, updated_at, updated_at
        FROM cases WHERE department_id IS NOT NULL"""  # noqa: S608 (constants only)
    )
    op.execute(
        f"""INSERT INTO assignments (case_id, assignee_id, kind, role, required, status,
            accepted_at, done_due_at, {common})
        SELECT id, unit_id, 'unit', 'responder', {sa.false().compile(op.get_bind())},
            {_UNIT_STATUS}, CASE WHEN on_scene_at IS NOT NULL THEN {start} END, due_at,
            {start}, on_scene_at, resolved_at, 0, 0, {start}, 1, updated_at, updated_at
        FROM cases WHERE unit_id IS NOT NULL"""  # noqa: S608 (constants only)
    )


def downgrade() -> None:
    with op.batch_alter_table("change_outbox") as batch:
        batch.drop_column("stream")
    with op.batch_alter_table("cases") as batch:
        for name in (
            "close_reason", "closed_by", "callback_note", "callback_by", "callback_at",
            "callback_result",
        ):  # fmt: skip
            batch.drop_column(name)
    op.drop_index("ix_assignments_open", table_name="assignments")
    op.drop_index("ix_assignments_assignee", table_name="assignments")
    op.drop_index("ix_assignments_case", table_name="assignments")
    op.drop_table("assignments")
