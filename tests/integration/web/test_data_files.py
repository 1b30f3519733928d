"""The SQLite database holds password hashes, encrypted exchange keys and session tokens: its files and
the data folder are the owner's only, as the key file is."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradewind.config import Settings
from tradewind.storage.db import make_engine
from tradewind.storage.migrate import upgrade_async


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask, under which files are created readable by everyone unless the code says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def with_suffix(db: Path, suffix: str) -> Path:
    return db.with_name(db.name + suffix)


async def test_a_new_database_and_its_folder_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "data" / "tradewind.db"
    url = f"sqlite+aiosqlite:///{db}"
    await upgrade_async(url)  # the migrations create the folder and the file
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:  # a write in WAL mode: the -wal and -shm files exist now
            await conn.exec_driver_sql("CREATE TABLE probe (x)")
            await conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
            files = [db, with_suffix(db, "-wal"), with_suffix(db, "-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}
    finally:
        await engine.dispose()
    assert mode(db.parent) == 0o700


async def test_an_existing_database_readable_by_others_is_tightened_on_start(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    db = shared / "old.db"
    with contextlib.closing(
        sqlite3.connect(db)
    ) as old:  # made by an older version, left open by another process
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE t (x)")
        old.execute("INSERT INTO t VALUES (1)")
        old.commit()
        files = [db, with_suffix(db, "-wal"), with_suffix(db, "-shm")]
        for f in files:
            f.chmod(0o644)
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        try:
            assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}
            async with engine.connect() as conn:
                assert (await conn.exec_driver_sql("SELECT x FROM t")).scalar_one() == 1
        finally:
            await engine.dispose()
    assert mode(shared) == 0o755  # a folder it did not create is not changed


async def test_the_data_folder_is_made_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "home" / ".tradewind")
    assert settings.make_data_dir() == settings.data_dir
    assert mode(settings.data_dir) == 0o700
    settings.make_data_dir()  # again: already there, no error
