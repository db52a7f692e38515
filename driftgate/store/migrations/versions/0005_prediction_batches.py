"""the prediction log stores one row per request (prediction_batches) instead of one per prediction

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 23:10:00.000000

A row per prediction cost a 100-row request 100 inserts into the table and two B-trees (~7 us each
on SQLite), more than the rest of the request. Stored rows of the old table are carried over, each
as a batch of one (`driftgate.core.rows.from_legacy`); their ids do not change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REVIEW = sa.text("review > 0")
CHUNK = 5000


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("batch_key", sa.String(length=32), nullable=False),
        sa.Column("first_row", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("review", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=True),
        sa.Column("probabilities", sa.Text(), nullable=True),
        sa.Column("parents", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("batch_key"),
    )
    op.create_index("ix_prediction_batches_endpoint_ts", "prediction_batches", ["endpoint", "ts"], unique=False)
    op.create_index(
        "ix_prediction_batches_review",
        "prediction_batches",
        ["ts"],
        unique=False,
        sqlite_where=REVIEW,
        postgresql_where=REVIEW,
    )
    _carry_over()
    op.drop_index("ix_predictions_parent", table_name="predictions")
    op.drop_index("ix_predictions_endpoint_ts", table_name="predictions")
    op.drop_table("predictions")


def _carry_over() -> None:
    from driftgate.core.rows import COLUMNS, PREDICTION_COLUMNS, from_legacy

    conn = op.get_bind()
    # JSON columns are read as text (CAST): PostgreSQL's json type would come back decoded.
    select = "SELECT " + ", ".join(
        f"CAST({c} AS TEXT)" if c in ("inputs", "output", "probabilities") else c for c in PREDICTION_COLUMNS
    )
    insert = sa.text(
        f"INSERT INTO prediction_batches ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
    )
    after = ""
    while True:
        rows = conn.execute(
            sa.text(f"{select} FROM predictions WHERE id > :after ORDER BY id LIMIT {CHUNK}"), {"after": after}
        ).all()
        if not rows:
            return
        stored: dict[str, dict[str, object]] = {}
        for row in rows:
            new = dict(zip(COLUMNS, from_legacy(tuple(row)), strict=True))
            stored.setdefault(str(new["batch_key"]), new)  # two old ids sharing 28 digits: ~2^-64
        conn.execute(insert, list(stored.values()))
        after = rows[-1][0]


def downgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_predictions_endpoint_ts", "predictions", ["endpoint", "ts"], unique=False)
    op.create_index(
        "ix_predictions_parent",
        "predictions",
        ["parent_id"],
        unique=False,
        sqlite_where=sa.text("parent_id IS NOT NULL"),
        postgresql_where=sa.text("parent_id IS NOT NULL"),
    )
    _carry_back()
    op.drop_index("ix_prediction_batches_review", table_name="prediction_batches")
    op.drop_index("ix_prediction_batches_endpoint_ts", table_name="prediction_batches")
    op.drop_table("prediction_batches")


def _carry_back() -> None:
    from driftgate.core.rows import COLUMNS, PREDICTION_COLUMNS, expand

    conn = op.get_bind()
    json_columns = ("inputs", "output", "probabilities")
    table = sa.table(
        "predictions", *(sa.column(c, sa.JSON() if c in json_columns else None) for c in PREDICTION_COLUMNS)
    )
    after = ""
    while True:
        rows = conn.execute(
            sa.text(
                f"SELECT {', '.join(COLUMNS)} FROM prediction_batches WHERE batch_key > :after "
                f"ORDER BY batch_key LIMIT {CHUNK}"
            ),
            {"after": after},
        ).all()
        if not rows:
            return
        conn.execute(table.insert(), [p for row in rows for p in expand(row._asdict())])
        after = rows[-1].batch_key
