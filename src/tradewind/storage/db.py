"""Engine and session factory for SQLite (embedded) and PostgreSQL (distributed)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, event
from sqlalchemy.dialects.postgresql import dml as pg_dml
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dml as sqlite_dml
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SessionFactory = async_sessionmaker[AsyncSession]
# pg_insert or sqlite_insert: both Insert constructs have on_conflict_do_nothing / _do_update and excluded
InsertFor = Callable[[Any], pg_dml.Insert] | Callable[[Any], sqlite_dml.Insert]
log = logging.getLogger(__name__)


def make_engine(url: str, *, background_checkpoints: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite: WAL, a busy timeout and foreign keys, so several tasks can share it.
    A URL SQLAlchemy cannot use is a ConfigError (nothing is connected here).

    ``background_checkpoints``: this engine's commits never checkpoint the WAL themselves; the caller runs
    ``checkpoint_forever`` instead (see there)."""
    try:
        return _make_engine(url, background_checkpoints=background_checkpoints, **kwargs)
    except (ArgumentError, InvalidRequestError, ValueError, ImportError) as exc:
        from tradewind.config import ConfigError

        # (never the URL itself in the message: it may hold a password)
        raise ConfigError(f"database_url (TRADEWIND_DATABASE_URL): SQLAlchemy cannot use it: {exc}") from None
    except OSError as exc:  # the SQLite file cannot be made where the settings put it
        from tradewind.config import ConfigError

        raise ConfigError(
            f"database_url (TRADEWIND_DATABASE_URL) or data_dir (TRADEWIND_DATA_DIR): cannot "
            f"create {exc.filename or 'the SQLite file'}: {exc.strerror or exc}"
        ) from None


def _make_engine(url: str, *, background_checkpoints: bool, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        import os
        import stat

        from sqlalchemy import make_url

        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            # The database holds password hashes, encrypted exchange keys and session tokens: its folder
            # (when made here) and its file are the owner's only, and an existing file is tightened. SQLite
            # gives the -wal and -shm files it creates the database file's mode; older ones are tightened.
            db = Path(path)
            db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # SQLite takes an empty file as a new database
                os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            for file in (db, *(db.with_name(db.name + end) for end in ("-wal", "-shm", "-journal"))):
                try:
                    mode = stat.S_IMODE(file.stat().st_mode)
                    if mode & 0o077:
                        file.chmod(mode & 0o700)
                except FileNotFoundError:
                    continue
                except OSError as exc:  # e.g. another user's file: it still works, but say so
                    log.warning("cannot make %s readable by its owner only: %s", file, exc)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if background_checkpoints:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


async def checkpoint_forever(engine: AsyncEngine, every_s: float = 2.0) -> None:
    """Copy the SQLite WAL back into the database every ``every_s`` seconds, off the hot path.

    By default the commit that takes the WAL past 1,000 pages does the checkpoint itself: at 1,000
    assignments that was a commit of the order intents, now and then, taking 10 ms instead of 1.5 ms
    between the tick and the order call. A PASSIVE checkpoint here waits for no reader or writer; what
    it cannot copy yet, the next one does. Not needed (and a no-op) on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return
    while True:
        await asyncio.sleep(every_s)
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # a locked or vanished file: try again next time
            log.warning("WAL checkpoint failed: %s", exc)


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: list[dict[str, Any]],
    on_conflict_do_nothing: tuple[str, ...] | None = None,
) -> None:
    """INSERT ``rows`` (dicts with the same keys) in as few driver calls as the database allows.

    The same rows through ``session.execute(table.insert(), rows)`` cost twice as much: SQLAlchemy runs
    every column's bind processor on every row. Here the SQL and the processors still come from
    SQLAlchemy (so the stored values are the ones it would store), but a value that is the very same
    object as in the row before (the candle's time, the symbol, one timestamp for the batch) is processed
    once. Used for the order intents, which stand between a tick and its order calls, and a candle's
    evaluations. A duplicate key raises SQLAlchemy's ``IntegrityError`` as ``session.execute`` would, and
    nothing of the batch is stored; ``on_conflict_do_nothing``: the unique columns whose duplicates are
    skipped instead.

    On SQLite the rows go as multi-row statements (``VALUES (...), (...), ...``, ``SQLITE_ROWS_VARS``
    parameters each), not an executemany: sqlite3 releases the GIL around every row's step, and while the
    event loop's thread is busy each row then waits for a switch of threads (1,000 intents took 240 ms
    instead of 47 ms against a busy thread, 21 ms against an idle one; benchmarks/RESULTS.md, issue 17's
    per-order path). PostgreSQL (asyncpg) pipelines an executemany itself."""
    if not rows:
        return
    conn = await session.connection()
    dialect = conn.dialect
    keys = tuple(rows[0])
    cached = _INSERTS.get((table, keys, dialect.name, on_conflict_do_nothing))
    if cached is None:
        if on_conflict_do_nothing is None:
            stmt: Any = table.insert()
        else:
            stmt = insert_for(dialect.name)(table).on_conflict_do_nothing(
                index_elements=on_conflict_do_nothing
            )
        # inline(): no RETURNING of the generated keys (PostgreSQL would add it to a single-row compile)
        compiled = stmt.inline().values({k: bindparam(k) for k in keys}).compile(dialect=dialect)
        order = tuple(compiled.positiontup or ())
        procs = tuple(table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order)
        cached = _INSERTS[(table, keys, dialect.name, on_conflict_do_nothing)] = (
            compiled.string,
            order,
            procs,
        )
    sql, order, procs = cached
    width = len(order)
    params = _bound(rows, order, procs, None, _processed_unless_none)
    if dialect.name != "sqlite" or len(params) == 1 or width == 0:
        await conn.exec_driver_sql(sql, params)
        return
    per = max(1, SQLITE_ROWS_VARS // width)
    for i in range(0, len(params), per):
        part = params[i : i + per]
        await conn.exec_driver_sql(_rows_sql(sql, width, len(part)), tuple(chain.from_iterable(part)))


async def execute_rows(session: AsyncSession, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """``session.execute(stmt, rows)`` for a statement of bound parameters (an UPDATE ... WHERE id =
    bindparam(...)), as one driver executemany: the SQL and each parameter's bind processor come from
    SQLAlchemy (so what is stored is what it would store), but SQLAlchemy's own per-row work (building each
    row's parameters, 10 % of the embedded process at 10,000 assignments for the order answers alone) is not
    done, and a value that is the very same object as in the row before (one timestamp for the batch) is
    processed once. ``stmt`` is compiled once per dialect and kept: pass the same object each time."""
    if not rows:
        return
    conn = await session.connection()
    dialect = conn.dialect
    cached = _STATEMENTS.get((id(stmt), dialect.name))
    if cached is None or cached[0] is not stmt:
        compiled = stmt.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ())
        procs = tuple(compiled.binds[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order)
        # the statement's own constants (``status == "open"``): their values, processed once
        fixed = tuple(
            _NOTHING
            if compiled.binds[k].required
            else _processed(procs[i], compiled.binds[k].effective_value)
            for i, k in enumerate(order)
        )
        cached = _STATEMENTS[(id(stmt), dialect.name)] = (stmt, compiled.string, order, procs, fixed)
    _, sql, order, procs, fixed = cached
    await conn.exec_driver_sql(sql, _bound(rows, order, procs, fixed, _processed))


def _bound(
    rows: list[dict[str, Any]],
    order: tuple[str, ...],
    procs: tuple[Any, ...],
    fixed: tuple[Any, ...] | None,
    process: Callable[[Any, Any], Any],
) -> list[tuple[Any, ...]]:
    """Each row's parameters in the statement's ``order``, each value through its column's bind processor
    (``process(proc, value)``); a value that is the very same object as in the row before is processed once.
    ``fixed``: the statement's own constants, already processed (``_NOTHING`` where the row gives it).

    Column by column, then zipped into rows: a column without a processor (integers, strings), or holding
    one object in every row (None, the batch's timestamp), costs one list comprehension and no per-value
    test. Binding 1,000 order intents (on the path from a tick to its order calls) takes 22 % fewer
    instructions than a loop over rows and columns did (21.4 million against 27.5, counted by callgrind)."""
    n = len(rows)
    columns: list[Any] = []
    for j, key in enumerate(order):
        if fixed is not None and fixed[j] is not _NOTHING:
            columns.append([fixed[j]] * n)
            continue
        values = [row[key] for row in rows]
        proc = procs[j]
        if proc is not None and n and len(set(map(id, values))) == 1:  # one object (None, one timestamp)
            values = [process(proc, values[0])] * n
        elif proc is not None:
            last: Any = _NOTHING
            done: Any = None
            for i, v in enumerate(values):
                if v is not last:
                    last, done = v, process(proc, v)
                values[i] = done
        columns.append(values)
    return list(zip(*columns, strict=True))


def _processed(proc: Any, value: Any) -> Any:
    """A value as SQLAlchemy binds it: None too goes through the processor (a JSON column stores it as 'null',
    as SQLAlchemy's own execute does)."""
    return proc(value) if proc is not None else value


def _processed_unless_none(proc: Any, value: Any) -> Any:
    """``insert_rows``' binding: None is stored as SQL NULL without its processor."""
    return proc(value) if proc is not None and value is not None else value


_STATEMENTS: dict[tuple[int, str], tuple[Any, str, tuple[str, ...], tuple[Any, ...], tuple[Any, ...]]] = {}


#: The parameters of one multi-row statement on SQLite: its default limit since 3.32 (32,766).
SQLITE_ROWS_VARS = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999


@functools.lru_cache(maxsize=64)
def _rows_sql(sql: str, width: int, n: int) -> str:
    """``sql`` (one row's INSERT, qmark parameters) for ``n`` rows in one statement."""
    group = "(" + ", ".join("?" * width) + ")"
    head, found, tail = sql.partition(group)
    if not found:  # not the form SQLAlchemy compiles to; never expected
        raise ValueError(f"cannot make a multi-row statement of {sql!r}")
    return head + ", ".join([group] * n) + tail


_NOTHING = object()
_INSERTS: dict[tuple[Any, ...], tuple[str, tuple[str, ...], tuple[Any, ...]]] = {}


def insert_for(dialect_name: str) -> InsertFor:
    """The INSERT construct with ON CONFLICT clauses for this database (PostgreSQL or SQLite)."""
    return pg_insert if dialect_name == "postgresql" else sqlite_insert


def dialect_of(sf: SessionFactory) -> str:
    bind = sf.kw.get("bind")
    return bind.dialect.name if bind is not None else ""


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


_GATES: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def write_gate(sf: SessionFactory) -> AsyncIterator[None]:
    """Hold around a hot-path write transaction. SQLite takes one writer at a time, and a writer that finds
    the database locked sleeps in SQLite's busy handler (1, 2, 5, 10 ... 100 ms) while the lock may be free
    again long before: with core, the sim's group commits and fill booking writing at once, those sleeps
    were most of the tick-to-order latency at 1,000 assignments. Queueing the writers of this process here,
    in order and without sleeping, costs nothing SQLite would not impose anyway. PostgreSQL: no gate."""
    if dialect_of(sf) != "sqlite":
        yield
        return
    key = sf.kw["bind"].sync_engine
    gate = _GATES.get(key)
    if gate is None:
        gate = _GATES[key] = asyncio.Lock()
    async with gate:
        yield
