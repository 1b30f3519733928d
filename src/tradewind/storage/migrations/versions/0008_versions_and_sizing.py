"""pinned strategy versions, declared parameters, why an order is smaller, backtests of unsaved code

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Columns are added, nullable, and nothing is rebuilt: existing assignments follow the latest version
(``pinned_version`` null), the declarations of existing versions are read by the web app on first use
(``declared`` null), earlier orders have no size note and earlier backtests ran a saved version.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("backtests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code", sa.Text(), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("size_note", sa.Text(), nullable=True))
    with op.batch_alter_table("strategy_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("declared", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("strategy_versions", schema=None) as batch_op:
        batch_op.drop_column("declared")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("size_note")
    with op.batch_alter_table("backtests", schema=None) as batch_op:
        batch_op.drop_column("code")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("pinned_version")
