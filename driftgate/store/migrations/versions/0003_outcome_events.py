"""outcome events; alert rules that select a detail

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcome_events",
        sa.Column("prediction_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("prediction_ts", sa.Float(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id", "name"),
    )
    with op.batch_alter_table("outcome_events", schema=None) as batch_op:
        batch_op.create_index("ix_outcome_events_endpoint_prediction_ts", ["endpoint", "prediction_ts"], unique=False)

    # Nullable: rules and alerts from before stay as they were (no selector, no detail).
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("outcome_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outcome_events_endpoint_prediction_ts")
    op.drop_table("outcome_events")
