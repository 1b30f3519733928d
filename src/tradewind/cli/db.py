"""`tradewind db upgrade`."""

from __future__ import annotations

import asyncio

import click

from tradewind.cli.context import open_storage, read_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def upgrade() -> None:
    """Apply the Alembic migrations to the configured database."""

    async def go() -> None:
        async with open_storage(read_settings(), migrate=True):
            pass

    asyncio.run(go())
    click.echo("database is up to date")
