"""optimisation studies: who owns each, what it optimises, and the name of its Optuna study

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Optuna's own tables are not here: it creates them in its storage (``tradewind.backtest.optimize``), in
the schema ``optuna`` on PostgreSQL or the file ``<database>.optuna`` on SQLite, apart from this schema
and its ``alembic_version``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tradewind.storage.types


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("strategy_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("market_id", sa.Integer(), nullable=False),
        sa.Column("timeframe", sa.String(length=4), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("optuna_name", sa.String(length=100), nullable=False),
        sa.Column("space", sa.JSON(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", tradewind.storage.types.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", tradewind.storage.types.UTCDateTime(), nullable=True),
        sa.Column("finished_at", tradewind.storage.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["market_id"], ["markets.id"], name=op.f("fk_studies_market_id_markets")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_studies_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_studies_strategy_id_strategies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("optuna_name", name=op.f("uq_studies_optuna_name")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_studies_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_owner_id"))
    op.drop_table("studies")
