"""`tradewind user create`."""

from __future__ import annotations

import asyncio

import click

from tradewind.cli.context import open_storage, read_settings


@click.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An operator: sees system health and users, never their secrets.")
@click.password_option(help="Asked for when not given.")
def create(email: str, admin: bool, password: str) -> None:
    """Create a user (an operator with --admin)."""
    settings = read_settings()
    from tradewind.web.accounts import AccountError, account_problem, create_user

    email = email.strip().lower()
    problem = account_problem(email, password)
    if problem is not None:
        which, why = problem
        raise click.BadParameter(why, param_hint="EMAIL" if which == "email" else "--password")

    async def go() -> None:
        async with open_storage(settings, migrate=True) as sf:
            await create_user(sf, email, password, admin=admin)

    try:
        asyncio.run(go())
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {'admin ' if admin else ''}user {email}")
