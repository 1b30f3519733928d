"""What every command shares: its settings, its storage, and the one way a configuration error ends it.

A configuration error (a setting pydantic refuses, an unknown setting, a database URL SQLAlchemy cannot
use, a secret key that is not one, ...) raised anywhere under a command is printed as one line,
``tradewind: <what is wrong>``, and the command exits with status 2; never a traceback. Other errors a user
can cause are ``click.ClickException`` (``Error: ...``, status 1).

Nothing heavy is imported at the top: `tradewind --help` and a backtest of a file start without pydantic,
SQLAlchemy or the web app (``tests/unit/test_cli_startup.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.storage.db import SessionFactory

CONFIG_EXIT = 2


class ConfigProblem(click.ClickException):
    """A configuration error, as the command line reports it."""

    exit_code = CONFIG_EXIT

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"tradewind: {self.format_message()}", file=file, err=file is None)


class Group(click.Group):
    """The `tradewind` group: every command under it ends a configuration error the same way."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            from tradewind.config import ConfigError  # loaded already when it is one

            if isinstance(exc, ConfigError):
                raise ConfigProblem(str(exc)) from None
            raise


def one_line(text: str) -> str:
    return " ".join(text.split())


def read_settings(**overrides: Any) -> Settings:
    """The settings of the environment (TRADEWIND_*, the TOML file of TRADEWIND_CONFIG), with the options
    a command gives (None: not given)."""
    from tradewind.config import load_settings

    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def check_settings() -> None:
    """Refuse bad settings in a command that needs none (a backtest of a file): without a TRADEWIND_*
    variable the settings are the defaults, which are valid, so pydantic is not even loaded."""
    if any(k.startswith("TRADEWIND_") for k in os.environ):
        read_settings()


def read_settings_if(needed: bool) -> Settings | None:
    """The settings when the command needs them; else None, once they are checked (``check_settings``)."""
    if needed:
        return read_settings()
    check_settings()
    return None


@contextlib.asynccontextmanager
async def open_storage(settings: Settings, *, migrate: bool = False) -> AsyncIterator[SessionFactory]:
    """The database of ``settings`` (migrated first with ``migrate``, the data folder made), as a session
    factory; the engine is disposed on the way out. A database that cannot be reached or opened is a
    one-line error."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError

    from tradewind.storage.db import make_engine, make_session_factory
    from tradewind.storage.migrate import upgrade_async

    if migrate:
        settings.make_data_dir()
    engine = make_engine(settings.db_url)  # a URL it cannot use: a ConfigError
    try:
        try:
            if migrate:
                await upgrade_async(settings.db_url)
            else:
                async with engine.connect():
                    pass
        except (OSError, DBAPIError) as exc:
            where = make_url(settings.db_url).render_as_string(hide_password=True)
            why = exc.orig if isinstance(exc, DBAPIError) else exc
            raise click.ClickException(one_line(f"cannot open the database {where}: {why}")) from None
        yield make_session_factory(engine)
    finally:
        await engine.dispose()
