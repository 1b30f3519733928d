"""Accounts and sessions as a browser and an API client use them."""

from __future__ import annotations

from .conftest import PASSWORD


async def test_register_login_me_logout_with_a_bearer_token(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("ann@example.com")
    me = (await c.get("/api/auth/me")).json()
    assert me["email"] == "ann@example.com" and me["is_admin"] is False
    assert (await c.post("/api/auth/logout")).status_code == 204
    assert (await c.get("/api/auth/me")).status_code == 401


async def test_cookie_sessions_need_the_csrf_header_for_writes(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client() as c:
        await c.post("/api/auth/register", json={"email": "bob@example.com", "password": PASSWORD})
        r = await c.post("/api/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
        assert "httponly" in r.headers["set-cookie"].lower()
        assert (await c.get("/api/auth/me")).status_code == 200  # reads need no header
        body = {"name": "s", "code": 'function decide(c) return "long" end'}
        r = await c.post("/api/strategies", json=body)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        r = await c.post("/api/strategies", json=body, headers={"X-CSRF-Token": c.cookies["tw_csrf"]})
        assert r.status_code == 201


async def test_repeated_failed_logins_are_throttled_with_retry_after(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client() as c:
        await c.post("/api/auth/register", json={"email": "eve@example.com", "password": PASSWORD})
        codes = [
            (
                await c.post(
                    "/api/auth/login", json={"email": "eve@example.com", "password": f"wrong-{i}-password"}
                )
            ).status_code
            for i in range(6)
        ]
        assert codes[:5] == [401] * 5
        r = await c.post("/api/auth/login", json={"email": "eve@example.com", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert codes[5] == 429


async def test_obvious_passwords_are_refused_by_field(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client() as c:
        for pw in ("short", "password123", "aaaaaaaaaaaa", "carol@example.com"):
            r = await c.post("/api/auth/register", json={"email": "carol@example.com", "password": pw})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password", (pw, r.text)
        r = await c.post("/api/auth/register", json={"email": "not-an-email", "password": PASSWORD})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email"


async def test_a_second_registration_of_an_email_is_a_conflict(api) -> None:  # type: ignore[no-untyped-def]
    await api.user("dan@example.com")
    async with api.client() as c:
        r = await c.post("/api/auth/register", json={"email": "DAN@example.com", "password": PASSWORD})
        assert r.status_code == 409


async def test_the_audit_log_records_logins_and_failures(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client() as c:
        await c.post("/api/auth/register", json={"email": "fay@example.com", "password": PASSWORD})
        await c.post("/api/auth/login", json={"email": "fay@example.com", "password": "nope-nope-nope"})
    async with api.client() as c:
        token = (
            await c.post("/api/auth/login", json={"email": "fay@example.com", "password": PASSWORD})
        ).json()["token"]
        actions = [
            e["action"]
            for e in (await c.get("/api/audit", headers={"Authorization": f"Bearer {token}"})).json()["items"]
        ]
    assert {"account.created", "login.failed", "login"} <= set(actions)


async def test_a_cross_site_form_cannot_log_a_victim_in_or_write(api) -> None:  # type: ignore[no-untyped-def]
    """HTML forms can only send form encodings or text/plain; the API reads JSON only, so a forged
    login (login CSRF) or write fails before any cookie is set or anything is changed."""
    await api.user("victim@example.com")
    async with api.client() as c:
        body = f'{{"email": "victim@example.com", "password": "{PASSWORD}"}}'.encode()
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            r = await c.post("/api/auth/login", content=body, headers={"content-type": ctype})
            assert r.status_code == 422 and "set-cookie" not in r.headers, ctype


async def test_a_logged_out_token_and_a_forged_one_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("gone@example.com")
    token = c.headers["Authorization"].split()[1]
    await c.post("/api/auth/logout")
    async with api.client() as other:
        for t in (token, token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 5000):
            r = await other.get("/api/auth/me", headers={"Authorization": f"Bearer {t}"})
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_a_new_login_clears_the_users_ended_sessions(api, sf) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from tradewind.storage.models import Session

    live = await api.user("many@example.com")
    async with api.client() as other:
        for _ in range(2):
            r = await other.post("/api/auth/login", json={"email": "many@example.com", "password": PASSWORD})
            r = await other.post("/api/auth/logout", headers={"Authorization": f"Bearer {r.json()['token']}"})
            assert r.status_code == 204
        await other.post("/api/auth/login", json={"email": "many@example.com", "password": PASSWORD})
    async with sf() as s:
        count = (await s.execute(select(func.count()).select_from(Session))).scalar_one()
    assert count == 2  # the first (still live) and the last; the logged-out ones are gone
    assert (await live.get("/api/auth/me")).status_code == 200


async def test_sign_ups_and_logins_hold_no_database_connection_while_hashing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A burst of sign-ups queues for the hashing threads for seconds: none of them may hold one of the
    pool's connections meanwhile, or every other request waits and fails. With a pool of one connection,
    requests keep being answered while two sign-ups and a login wait for their hashes; a pool still
    exhausted answers 503, never 500."""
    import asyncio

    from tradewind.config import Settings
    from tradewind.secrets import SecretBox
    from tradewind.storage.db import make_engine, make_session_factory
    from tradewind.storage.migrate import upgrade_async
    from tradewind.web import security
    from tradewind.web.app import create_app
    from tradewind.web.routes import auth

    from .conftest import KEY, Api

    url = f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"
    await upgrade_async(url)
    engine = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=2)
    api = Api(
        create_app(
            Settings(data_dir=tmp_path, database_url=url),
            make_session_factory(engine),
            None,
            SecretBox([KEY]),
        )
    )
    try:
        ann = await api.user("ann@example.com")
        release = asyncio.Event()
        hashing, verifying = security.hash_password_async, security.verify_password_async

        async def slow_hash(password: str) -> str:
            await release.wait()
            return await hashing(password)

        async def slow_verify(stored: str | None, password: str) -> bool:
            await release.wait()
            return await verifying(stored, password)

        monkeypatch.setattr(auth, "hash_password_async", slow_hash)
        monkeypatch.setattr(auth, "verify_password_async", slow_verify)
        async with api.client() as c:
            waiting = [
                asyncio.create_task(
                    c.post("/api/auth/register", json={"email": f"{n}@example.com", "password": PASSWORD})
                )
                for n in ("bob", "cat")
            ] + [
                asyncio.create_task(
                    c.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
                )
            ]
            await asyncio.sleep(0.3)
            assert not any(t.done() for t in waiting)
            r = await ann.get("/api/strategies")  # the one connection is free
            assert r.status_code == 200, r.text
            release.set()
            assert [(await t).status_code for t in waiting] == [201, 201, 200]

        # every connection taken for longer than the pool's timeout: a clear 503 with Retry-After
        async with engine.connect():
            monkeypatch.setattr(engine.pool, "_timeout", 0.2)
            r = await ann.get("/api/strategies")
        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
    finally:
        await engine.dispose()


async def test_a_password_hashed_with_older_parameters_logs_in_and_is_hashed_again(api, sf) -> None:  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from tradewind.storage.models import User
    from tradewind.web.security import needs_rehash

    await api.user("old@example.com")
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1).hash(
        PASSWORD
    )  # the former parameters
    async with sf() as s:
        user = (await s.execute(select(User).where(User.email == "old@example.com"))).scalar_one()
        user.password_hash = old
        await s.commit()
    assert needs_rehash(old)
    async with api.client() as c:
        r = await c.post("/api/auth/login", json={"email": "old@example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text
    async with sf() as s:
        now = (
            await s.execute(select(User.password_hash).where(User.email == "old@example.com"))
        ).scalar_one()
    assert now != old and not needs_rehash(now) and "m=19456,t=2,p=1" in now
    async with api.client() as c:  # the new hash is the same password
        r = await c.post("/api/auth/login", json={"email": "old@example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text
