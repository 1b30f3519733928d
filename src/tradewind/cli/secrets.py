"""`tradewind secrets rotate`."""

from __future__ import annotations

import asyncio

import click

from tradewind.cli.context import open_storage, read_settings


@click.group()
def secrets() -> None:
    """Exchange API keys at rest."""


@secrets.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored API key under the newest key of TRADEWIND_SECRET_KEY.

    Put the new key first and keep the old one after it (comma-separated), run this, then drop the old key.
    """
    settings = read_settings()
    from tradewind.secrets import load_secret_box, reencrypt_stored_keys

    box = load_secret_box(settings)

    async def go() -> int:
        async with open_storage(settings) as sf:
            return await reencrypt_stored_keys(sf, box)

    n = asyncio.run(go())
    click.echo(f"re-encrypted {n} trading account key(s)")
