"""Dependencies of the routes: the database session, the current user, the bus, the secret box."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Session as LoginSession
from tradewind.storage.models import User
from tradewind.storage.repositories import Owned
from tradewind.storage.types import utcnow
from tradewind.web.errors import ApiError
from tradewind.web.schemas import MAX_ID
from tradewind.web.security import LoginGuard, RateLimiter, Throttle, token_hash

SESSION_COOKIE = "tw_session"
CSRF_COOKIE = "tw_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
T = TypeVar("T")

# The parameters every route shares, with their limits.
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="the object's id")]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[int | None, Query(ge=1, le=MAX_ID, description="next_before_id of the previous page")]


@dataclass
class WebState:
    settings: Settings
    sf: SessionFactory
    nc: Client | None
    box: SecretBox
    throttle: LoginGuard = field(default_factory=Throttle)  # `tradewind up`: the parent's (SharedThrottle)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    stream_recheck_s: float = 30.0  # how soon a logout also closes the user's open sockets
    # `tradewind up`: this process's metrics (given) with the other processes' (see runtime.WebProcess)
    more_metrics: Callable[[bytes], Awaitable[bytes]] | None = None


async def state(request: Request) -> WebState:
    # async, though it awaits nothing: FastAPI runs a plain function dependency in its thread pool, and this
    # one is in every logged-in request (a hop to a thread and back each, a queue behind 40 threads under load)
    tw: WebState = request.app.state.tw  # create_app puts it there
    return tw


StateDep = Annotated[WebState, Depends(state)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.tw.sf() as s:
        yield s


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass
class Auth:
    user: User
    session: LoginSession
    via_cookie: bool


def session_token(request: Request, token: str | None = None) -> tuple[str | None, bool]:
    """The session token a request carries (``token`` if given, else the bearer header, else the cookie), and
    whether it came in the cookie; None when there is none worth looking up."""
    via_cookie = False
    if token is None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        else:
            token = request.cookies.get(SESSION_COOKIE)
            via_cookie = token is not None
    if not token or len(token) > 200:
        return None, via_cookie
    return token, via_cookie


async def authenticate(request: Request, s: AsyncSession, token: str | None = None) -> Auth | None:
    token, via_cookie = session_token(request, token)
    if token is None:
        return None
    row = (
        await s.execute(
            select(LoginSession, User)
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_hash == token_hash(token))
        )
    ).first()
    if row is None:
        return None
    login, user = row
    if login.revoked or login.expires_at < utcnow():
        return None
    return Auth(user, login, via_cookie)


# Declared for the OpenAPI document (and so for generated clients and Schemathesis); `authenticate` reads
# the same header and cookie itself, because the WebSocket route cannot use these dependencies.
_bearer = HTTPBearer(
    scheme_name="bearer", auto_error=False, description="The `token` from POST /api/auth/login"
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="cookie",
    auto_error=False,
    description="Set by POST /api/auth/login; writes need X-CSRF-Token",
)


async def current_auth(
    request: Request,
    s: SessionDep,
    st: StateDep,
    _b: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _c: Annotated[str | None, Depends(_cookie)],
) -> Auth:
    auth = await authenticate(request, s)
    if auth is None:
        raise ApiError(
            401,
            "log in first (a session cookie or an Authorization: Bearer token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if auth.via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if not sent or not hmac.compare_digest(sent.encode(), auth.session.csrf_token.encode()):
            raise ApiError(403, "missing or wrong X-CSRF-Token header (send the tw_csrf cookie's value)")
    wait = st.limiter.allow(auth.user.id)
    if wait:
        raise ApiError(
            429,
            f"too many requests; slow down and try again in {int(wait) + 1} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    return auth


AuthDep = Annotated[Auth, Depends(current_auth)]


async def current_user(auth: AuthDep) -> User:
    return auth.user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise ApiError(404, "not found")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


async def owned(s: SessionDep, user: CurrentUser) -> Owned:
    return Owned(s, user.id)


OwnedDep = Annotated[Owned, Depends(owned)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_expiry() -> dt.datetime:
    return utcnow() + dt.timedelta(days=14)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def found(obj: T | None, what: str) -> T:
    """``obj``, or a 404 naming ``what`` when there is none (another user's object is none)."""
    if obj is None:
        raise not_found(what)
    return obj


def page(items: list[Any], limit: int) -> dict[str, Any]:
    return {"items": items, "next_before_id": items[-1]["id"] if len(items) == limit and items else None}
