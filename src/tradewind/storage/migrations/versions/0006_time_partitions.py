"""time partitions: evaluations and ticks partitioned by month on PostgreSQL (storage.partitions)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

PostgreSQL only; SQLite has no partitions and is left as it is. Each table is renamed, a partitioned
table of the same columns takes its name (its primary key gains the partition key, as PostgreSQL
requires: ``evaluations`` (id, candle_time); ``ticks`` already is (market_id, time)), a partition is made
for every month its rows span and for the months ahead, plus a default one, the rows are copied over
and the old table is dropped. Ids keep coming from the same sequence, so none is reused.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from tradewind.storage import partitions

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# table -> (partition key, primary key columns, other constraints as (name, definition))
TABLES = {
    "evaluations": ("candle_time", "id, candle_time", [
        ("uq_evaluations_assignment_id", "UNIQUE (assignment_id, candle_time)"),
        ("fk_evaluations_assignment_id_assignments",
         "FOREIGN KEY (assignment_id) REFERENCES assignments (id) ON DELETE CASCADE"),
    ]),
    "ticks": ("time", "market_id, time", [
        ("fk_ticks_market_id_markets", "FOREIGN KEY (market_id) REFERENCES markets (id) ON DELETE CASCADE"),
    ]),
}  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    now = dt.datetime.now(dt.UTC)
    for table, (key, pk, constraints) in TABLES.items():
        old = f"{table}_unpartitioned"
        op.execute(f"ALTER TABLE {table} RENAME TO {old}")
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
        for name, _ in constraints:
            op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {name} TO {name}_old")
        op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE ({key})")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({pk})")
        for name, definition in constraints:
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        first = bind.execute(sa.text(f"SELECT min({key}) FROM {old}")).scalar()
        start = dt.datetime.fromtimestamp(first / 1000, dt.UTC) if first is not None else now
        ahead = partitions.next_month(now) + dt.timedelta(days=31 * (partitions.AHEAD_MONTHS - 1))
        for month in partitions.months(min(start, now), ahead):
            op.execute(partitions.create_sql(table, month))
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
        if table == "evaluations":
            op.execute("ALTER SEQUENCE evaluations_id_seq OWNED BY evaluations.id")
        op.execute(f"DROP TABLE {old}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, (_, pk, constraints) in TABLES.items():
        old = f"{table}_partitioned"
        op.execute(f"ALTER TABLE {table} RENAME TO {old}")
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
        for name, _ in constraints:
            op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {name} TO {name}_old")
        op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({'id' if table == 'evaluations' else pk})")
        for name, definition in constraints:
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
        if table == "evaluations":
            op.execute("ALTER SEQUENCE evaluations_id_seq OWNED BY evaluations.id")
        op.execute(f"DROP TABLE {old} CASCADE")
