"""plot series: the values a strategy names to draw on its chart, kept with each evaluation

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

One nullable column and nothing rebuilt: earlier evaluations plotted nothing (null). On PostgreSQL the
column is added to the partitioned parent and so to every month's partition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plot", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("plot")
