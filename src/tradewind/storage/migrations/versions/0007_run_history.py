"""run history: walk-forward runs kept (``walkforwards``), and a study's best trial run in full (``studies.result``)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Backtests were kept already (``backtests``: strategy version, range, settings, metrics, trades, equity). A
study keeps its trials in Optuna's storage; ``result`` adds its best trial run again in full once the study
ends (metrics, trades and equity curve), so that it can be compared and exported as a backtest can.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tradewind.storage.types


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "walkforwards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("strategy_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("market_id", sa.Integer(), nullable=False),
        sa.Column("timeframe", sa.String(length=4), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", tradewind.storage.types.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", tradewind.storage.types.UTCDateTime(), nullable=True),
        sa.Column("finished_at", tradewind.storage.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["market_id"], ["markets.id"], name=op.f("fk_walkforwards_market_id_markets")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_walkforwards_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_walkforwards_strategy_id_strategies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_walkforwards")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("walkforwards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_walkforwards_owner_id"), ["owner_id"], unique=False)
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("result")
    with op.batch_alter_table("walkforwards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_walkforwards_owner_id"))
    op.drop_table("walkforwards")
