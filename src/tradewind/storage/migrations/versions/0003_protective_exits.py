"""protective exits and limit orders: order types and prices, exit reasons, a position's protection,
and the sim exchange's resting orders

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Columns are added (existing orders are market orders: ``type`` has a server default), and a table is
created; SQLite adds columns in place, so nothing is rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tradewind.storage.types


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=41), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", tradewind.storage.types.Money(), nullable=False),
        sa.Column("price", tradewind.storage.types.Money(), nullable=True),
        sa.Column("stop_price", tradewind.storage.types.Money(), nullable=True),
        sa.Column("trail", tradewind.storage.types.Money(), nullable=True),
        sa.Column("high", tradewind.storage.types.Money(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("oco_group", sa.String(length=64), nullable=True),
        sa.Column("protect", sa.JSON(), nullable=True),
        sa.Column("locked", tradewind.storage.types.Money(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trader_id"], ["traders.id"], name=op.f("fk_paper_orders_trader_id_traders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_paper_orders_client_order_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("paper_orders", schema=None) as batch_op:
        batch_op.create_index("ix_paper_orders_open", ["status", "symbol"], unique=False)
        batch_op.create_index(batch_op.f("ix_paper_orders_trader_id"), ["trader_id"], unique=False)

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protection", sa.JSON(), nullable=True))

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("type", sa.String(length=16), server_default="market", nullable=False))
        batch_op.add_column(sa.Column("limit_price", tradewind.storage.types.Money(), nullable=True))
        batch_op.add_column(sa.Column("stop_price", tradewind.storage.types.Money(), nullable=True))
        batch_op.add_column(sa.Column("trail", tradewind.storage.types.Money(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("oco_group", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("exit_reason", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("exit_reason")
        batch_op.drop_column("oco_group")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("trail")
        batch_op.drop_column("stop_price")
        batch_op.drop_column("limit_price")
        batch_op.drop_column("type")

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("protection")

    with op.batch_alter_table("paper_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_paper_orders_trader_id"))
        batch_op.drop_index("ix_paper_orders_open")

    op.drop_table("paper_orders")
