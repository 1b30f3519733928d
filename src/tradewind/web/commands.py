"""`tradewind user create` and `tradewind secrets rotate`."""

from __future__ import annotations

import asyncio

import click

# Imports of the database layer happen inside the commands, so that `tradewind` starts fast.


@click.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An operator: sees system health and users, never their secrets.")
@click.password_option(help="Asked for when not given.")
def create_user(email: str, admin: bool, password: str) -> None:
    """Create a user (an operator with --admin)."""
    from sqlalchemy import select

    from tradewind.config import load_settings
    from tradewind.storage.db import make_engine, make_session_factory
    from tradewind.storage.migrate import upgrade_async
    from tradewind.storage.models import AuditEntry, User
    from tradewind.web.security import hash_password, password_problem

    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise click.BadParameter("not an email address", param_hint="EMAIL")
    problem = password_problem(password, email)
    if problem:
        raise click.BadParameter(problem, param_hint="--password")

    async def run() -> None:
        settings = load_settings()
        settings.make_data_dir()
        await upgrade_async(settings.db_url)
        engine = make_engine(settings.db_url)
        try:
            async with make_session_factory(engine)() as s:
                if (await s.execute(select(User).where(User.email == email))).scalar_one_or_none():
                    raise click.ClickException(f"{email} already has an account")
                u = User(email=email, password_hash=hash_password(password), is_admin=admin)
                s.add(u)
                await s.flush()
                s.add(
                    AuditEntry(user_id=u.id, action="account.created", detail={"admin": admin, "by": "cli"})
                )
                await s.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
    click.echo(f"created {'admin ' if admin else ''}user {email}")


@click.group()
def secrets() -> None:
    """Exchange API keys at rest."""


@secrets.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored API key under the newest key of TRADEWIND_SECRET_KEY.

    Put the new key first and keep the old one after it (comma-separated), run this, then drop the old key.
    """
    from sqlalchemy import select

    from tradewind.config import ConfigError, load_settings
    from tradewind.secrets import SecretBox, load_secret_box
    from tradewind.storage.db import make_engine, make_session_factory
    from tradewind.storage.models import AuditEntry, Trader

    async def run() -> int:
        settings = load_settings()
        try:
            box: SecretBox = load_secret_box(settings)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        engine = make_engine(settings.db_url)
        count = 0
        try:
            async with make_session_factory(engine)() as s:
                for t in (await s.execute(select(Trader).where(Trader.api_key_enc.is_not(None)))).scalars():
                    t.api_key_enc = box.rotate(t.api_key_enc)  # type: ignore[arg-type]
                    t.api_secret_enc = box.rotate(t.api_secret_enc)  # type: ignore[arg-type]
                    s.add(
                        AuditEntry(
                            user_id=t.owner_id, action="trader.key_reencrypted", detail={"trader_id": t.id}
                        )
                    )
                    count += 1
                await s.commit()
        finally:
            await engine.dispose()
        return count

    n = asyncio.run(run())
    click.echo(f"re-encrypted {n} trading account key(s)")
