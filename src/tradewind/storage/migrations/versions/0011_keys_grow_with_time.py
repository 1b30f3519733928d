"""keys that grow with time: evaluations unique on (candle_time, assignment_id), no per-assignment orders index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Issue 17: every index whose key starts with the assignment took one new entry per assignment per
candle, each in a leaf of its own once the table is large, so a candle's 1,000 rows rewrote 1,000 leaves
per index and the hot path's writes grew with the tables (intents 9 → 21 ms, evaluations 3 → 7 ms from
100,000 to 400,000 rows). Now:

- ``evaluations``' unique key is ``(candle_time, assignment_id)`` (was ``(assignment_id, candle_time)``):
  a candle's rows go to the right-hand end of it. On PostgreSQL it includes the partition key as before.
  An assignment's own rows (the web app's decisions of an assignment) are found hour by hour through a
  new index, ``ix_evaluations_hour ((candle_time / 3600000), assignment_id)``: a candle's rows go to the
  current hour's few hundred leaves, not to a leaf per assignment.
- ``orders`` trades ``ix_orders_assignment (assignment_id, id)`` for ``ix_orders_block ((id / 65536),
  assignment_id)``: an assignment's orders are found block of 65,536 ids by block, and a candle's intents
  go to the current block's leaves. Open orders are found through ``ix_orders_status``. The unique client
  order id stays; core now builds it led by the candle (``tw-<candle s>-<assignment>-…``,
  ``domain.client_order_id``). Ids already stored keep their form: the venues know the orders by them.

Both new indexes are on expressions, which SQLAlchemy does not reflect on SQLite: a later migration that
rebuilds ``orders`` or ``evaluations`` there (batch mode) must create them again after it.

Nothing is copied on PostgreSQL (constraints and an index change in place; on the partitioned
``evaluations`` each month's partition gets its index). SQLite rebuilds ``evaluations`` (its only way to
change a table's constraints), keeping AUTOINCREMENT and every id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD_UNIQUE = ("uq_evaluations_assignment_id", ["assignment_id", "candle_time"])
NEW_UNIQUE = ("uq_evaluations_candle_time", ["candle_time", "assignment_id"])
HOUR = "(candle_time / 3600000)"  # models.EVALUATION_HOUR, the same expression to the letter
BLOCK = "(id / 65536)"  # models.ORDER_BLOCK


def _evaluations_unique(drop: tuple[str, list[str]], add: tuple[str, list[str]]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "evaluations", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch_op:
            batch_op.drop_constraint(drop[0], type_="unique")
            batch_op.create_unique_constraint(add[0], add[1])
    else:
        op.drop_constraint(drop[0], "evaluations", type_="unique")
        op.create_unique_constraint(add[0], "evaluations", add[1])


def upgrade() -> None:
    _evaluations_unique(OLD_UNIQUE, NEW_UNIQUE)
    op.create_index("ix_evaluations_hour", "evaluations", [sa.text(HOUR), "assignment_id"], unique=False)
    op.create_index("ix_orders_block", "orders", [sa.text(BLOCK), "assignment_id"], unique=False)
    op.drop_index("ix_orders_assignment", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_assignment", "orders", ["assignment_id", "id"], unique=False)
    op.drop_index("ix_orders_block", table_name="orders")
    op.drop_index("ix_evaluations_hour", table_name="evaluations")
    _evaluations_unique(NEW_UNIQUE, OLD_UNIQUE)
