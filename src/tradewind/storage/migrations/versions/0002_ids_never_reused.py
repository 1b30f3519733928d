"""ids are never reused: AUTOINCREMENT on every SQLite table with a surrogate id

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Without AUTOINCREMENT, SQLite gives a new row the highest id in use plus one, so the id of the newest row,
once it is deleted, is handed out again. Something that still held the old id (core's cached assignment,
an order in flight) then acted on another user's object: an attack spent one user's paper money through
an assignment of another's (see SECURITY.md). SQLite cannot add AUTOINCREMENT to an existing table: each
table is rebuilt (Alembic's batch mode: create, copy every row, drop, rename) with foreign keys off, which
env.py sees to, so that dropping a table deletes nothing that refers to it. Copying the rows with their
ids sets each table's counter past the highest id now in use. PostgreSQL's sequences never go back: there
is nothing to do there.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Parents before children; every table with an integer surrogate key.
TABLES = (
    "users",
    "markets",
    "sessions",
    "strategies",
    "strategy_versions",
    "traders",
    "assignments",
    "evaluations",
    "orders",
    "backtests",
    "audit_log",
    "paper_fills",
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
