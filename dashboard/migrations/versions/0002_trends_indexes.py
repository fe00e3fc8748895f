"""the briefing view's indexes: a covering index for trends, unit tracks by time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRENDS_COLUMNS = [
    "reported_at",
    "status",
    "category",
    "source",
    "grid_code",
    "department_id",
    "priority",
    "rework_count",
    "dispatched_at",
    "on_scene_at",
    "resolved_at",
    "closed_at",
    "due_at",
]


def upgrade() -> None:
    op.create_index("ix_cases_trends", "cases", TRENDS_COLUMNS, unique=False)
    op.create_index("ix_unit_pings_ts", "unit_pings", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_unit_pings_ts", table_name="unit_pings")
    op.drop_index("ix_cases_trends", table_name="cases")
