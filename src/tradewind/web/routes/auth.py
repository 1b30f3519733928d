"""Sign-up, log-in, log-out, who am I."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from tradewind.storage.models import Session as LoginSession
from tradewind.storage.models import User
from tradewind.storage.repositories import Owned
from tradewind.storage.types import utcnow
from tradewind.web.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AuthDep,
    CurrentUser,
    SessionDep,
    StateDep,
    client_address,
    session_expiry,
)
from tradewind.web.errors import ApiError
from tradewind.web.schemas import Credentials, TokenOut, UserOut
from tradewind.web.security import (
    ThrottleUnavailable,
    hash_password_async,
    needs_rehash,
    new_token,
    password_problem,
    token_hash,
    verify_password_async,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/auth", tags=["auth"])


def user_out(u: User) -> UserOut:
    return UserOut(id=u.id, email=u.email, is_admin=u.is_admin, killed=u.killed, created_at=u.created_at)


@router.post("/register", status_code=201, response_model=UserOut)
async def register(body: Credentials, s: SessionDep, request: Request) -> UserOut:
    email = body.email.lower()
    problem = password_problem(body.password, email)
    if problem:
        raise ApiError(422, problem, field="password")
    exists = (await s.execute(select(func.count()).select_from(User).where(User.email == email))).scalar_one()
    if exists:
        raise ApiError(409, "an account with this email exists; log in instead", field="email")
    # No database connection is held while the password is hashed (up to seconds when sign-ups queue for
    # the hashing threads): a burst of sign-ups must not take the pool from every other request.
    await s.rollback()
    user = User(email=email, password_hash=await hash_password_async(body.password))
    s.add(user)
    try:
        await s.flush()
    except IntegrityError:  # the same email registered concurrently
        raise ApiError(409, "an account with this email exists; log in instead", field="email") from None
    Owned(s, user.id).audit_log("account.created", client_address(request))
    await s.commit()
    return user_out(user)


@router.post("/login", response_model=TokenOut)
async def login(
    body: Credentials, s: SessionDep, st: StateDep, request: Request, response: Response
) -> TokenOut:
    email = body.email.lower()
    address = client_address(request)
    try:  # counted as failed until the password proves right
        wait, attempt = await st.throttle.begin(email, address)
    except ThrottleUnavailable as exc:
        log.error("login refused: %s", exc)
        raise ApiError(503, "logging in is unavailable for a moment; try again shortly") from None
    if wait.seconds:
        raise ApiError(429, wait.message, headers={"Retry-After": str(wait.seconds)})
    try:
        found = (
            await s.execute(select(User.id, User.password_hash).where(User.email == email))
        ).one_or_none()
        await s.rollback()  # no connection held while the password is checked (see register)
        right = await verify_password_async(found.password_hash if found else None, body.password)
        user = None
        if found is not None and right:
            # A hash made with older (costlier) parameters is made again with today's, holding no connection.
            old = found.password_hash
            rehashed = await hash_password_async(body.password) if needs_rehash(old) else None
            user = await s.get(User, found.id)  # None: deleted meanwhile
            if user is not None and rehashed is not None and user.password_hash == old:  # (not changed since)
                user.password_hash = rehashed  # committed with the new session below
        if user is None:
            if found is not None and not right:
                Owned(s, found.id).audit_log("login.failed", address)
                await s.commit()
            # an address with many failures at any accounts gets its wrong passwords answered slowly
            await st.throttle.slow_failure(address)
            raise ApiError(401, "wrong email or password")
    finally:
        await st.throttle.end(address)
    await st.throttle.logged_in(email, address, attempt)
    # Ended sessions have no use left; dropping this user's here keeps the table from growing forever. Looked
    # for first: a DELETE takes SQLite's write lock even when it deletes nothing, and holds it until the commit
    # below, while core's writes (in another process under `tradewind up`) wait for it.
    ended = (LoginSession.user_id == user.id) & or_(
        LoginSession.revoked.is_(True), LoginSession.expires_at < utcnow()
    )
    if (await s.execute(select(LoginSession.id).where(ended).limit(1))).first() is not None:
        await s.execute(delete(LoginSession).where(ended))
    token, csrf = new_token(), new_token()
    s.add(
        LoginSession(
            user_id=user.id, token_hash=token_hash(token), csrf_token=csrf, expires_at=session_expiry()
        )
    )
    Owned(s, user.id).audit_log("login", address)
    await s.commit()
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure, max_age=14 * 86400, path="/"
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, httponly=False, samesite="lax", secure=secure, max_age=14 * 86400, path="/"
    )
    return TokenOut(token=token, csrf_token=csrf, user=user_out(user))


@router.post("/logout", status_code=204)
async def logout(auth: AuthDep, s: SessionDep, request: Request, response: Response) -> Response:
    login_session = await s.get(LoginSession, auth.session.id)
    if login_session is not None:
        login_session.revoked = True
    Owned(s, auth.user.id).audit_log("logout", client_address(request))
    await s.commit()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)
