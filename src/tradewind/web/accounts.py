"""User accounts made outside the web app: an operator created on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from tradewind.storage.models import AuditEntry, User
from tradewind.web.security import hash_password, password_problem

if TYPE_CHECKING:
    from tradewind.storage.db import SessionFactory


class AccountError(Exception):
    """The account cannot be made; the message says why."""


def account_problem(email: str, password: str) -> tuple[str, str] | None:
    """(which, why) when ``email`` or ``password`` cannot make an account: the same rules as signing up."""
    if "@" not in email or len(email) > 254:
        return "email", "not an email address"
    problem = password_problem(password, email)
    return ("password", problem) if problem else None


async def create_user(sf: SessionFactory, email: str, password: str, *, admin: bool) -> User:
    """A new user (an operator with ``admin``), written to the audit log as made by the command line."""
    async with sf() as s:
        if (await s.execute(select(User).where(User.email == email))).scalar_one_or_none():
            raise AccountError(f"{email} already has an account")
        user = User(email=email, password_hash=hash_password(password), is_admin=admin)
        s.add(user)
        await s.flush()
        s.add(AuditEntry(user_id=user.id, action="account.created", detail={"admin": admin, "by": "cli"}))
        await s.commit()
    return user
