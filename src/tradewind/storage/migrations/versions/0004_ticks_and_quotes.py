"""ticks and quoting strategies: sampled ticks, and an assignment's trigger, interval and inventory limit

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

A table is created and columns added (existing assignments run on candles: ``trigger`` has a server
default), so nothing is rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tradewind.storage.types


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticks",
        sa.Column("market_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("bid", sa.Float(), nullable=False),
        sa.Column("ask", sa.Float(), nullable=False),
        sa.Column("bid_size", sa.Float(), nullable=False),
        sa.Column("ask_size", sa.Float(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_ticks_market_id_markets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("market_id", "time", name=op.f("pk_ticks")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trigger", sa.String(length=8), server_default="candle", nullable=False))
        batch_op.add_column(sa.Column("min_interval_ms", sa.Integer(), server_default="1000", nullable=False))
        batch_op.add_column(sa.Column("max_position", tradewind.storage.types.Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("max_position")
        batch_op.drop_column("min_interval_ms")
        batch_op.drop_column("trigger")

    op.drop_table("ticks")
