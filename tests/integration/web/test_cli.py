"""`tradewind user create` and `tradewind secrets rotate`, run as an operator runs them: as processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.models import Trader, User
from tradewind.web.app import create_app

PASSWORD = "an operator's long passphrase"
TRADEWIND = str(Path(sys.executable).parent / "tradewind")


def run(tmp: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")
    }  # the shell's settings stay out
    env.update(TRADEWIND_DATA_DIR=str(tmp), TRADEWIND_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'cli.db'}")
    if key:
        env["TRADEWIND_SECRET_KEY"] = key
    return subprocess.run([TRADEWIND, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_an_admin_made_on_the_command_line_sees_users_but_no_secrets(tmp_path: Path) -> None:
    r = await asyncio.to_thread(
        run, tmp_path, "user", "create", "Ops@Example.com", "--admin", "--password", PASSWORD
    )
    assert r.returncode == 0, r.stderr
    assert "created admin user ops@example.com" in r.stdout
    r = await asyncio.to_thread(run, tmp_path, "user", "create", "ops@example.com", "--password", PASSWORD)
    assert r.returncode != 0 and "already has an account" in r.stderr
    r = await asyncio.to_thread(
        run, tmp_path, "user", "create", "weak@example.com", "--password", "password123"
    )
    assert r.returncode != 0 and "too common" in r.stderr

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    try:
        app = create_app(
            Settings(data_dir=tmp_path, database_url=url),
            make_session_factory(engine),
            None,
            SecretBox([Fernet.generate_key().decode()]),
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            await c.post(
                "/api/auth/register",
                json={"email": "user@example.com", "password": "another long passphrase"},
            )
            token = (
                await c.post("/api/auth/login", json={"email": "ops@example.com", "password": PASSWORD})
            ).json()["token"]
            c.headers["Authorization"] = f"Bearer {token}"
            assert (await c.get("/api/auth/me")).json()["is_admin"] is True
            users = (await c.get("/api/admin/users")).json()
            assert [u["email"] for u in users] == ["ops@example.com", "user@example.com"]
            assert not any("password" in k or "hash" in k or "token" in k for u in users for k in u)
            health = (await c.get("/api/admin/health")).json()
            assert health["database"] == "ok" and "active_assignments" in health
    finally:
        await engine.dispose()


async def test_secrets_rotate_re_encrypts_every_key_under_the_new_one(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    r = await asyncio.to_thread(run, tmp_path, "user", "create", "k@example.com", "--password", PASSWORD)
    assert r.returncode == 0, r.stderr
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    sf = make_session_factory(engine)
    try:
        async with sf() as s:
            box = SecretBox([old])
            user = (await s.execute(User.__table__.select())).first()
            s.add(
                Trader(
                    owner_id=user.id,
                    name="live",
                    exchange="kraken",
                    paper=False,
                    api_key_enc=box.encrypt("KEY-1234"),
                    api_secret_enc=box.encrypt("SECRET-1"),
                    key_last4="1234",
                )
            )
            await s.commit()
        r = await asyncio.to_thread(run, tmp_path, "secrets", "rotate", key=f"{new},{old}")
        assert r.returncode == 0, r.stderr
        assert "re-encrypted 1 trading account key(s)" in r.stdout
        async with sf() as s:
            t = (await s.execute(Trader.__table__.select())).first()
        only_new = SecretBox([new])
        assert (
            only_new.decrypt(t.api_key_enc) == "KEY-1234" and only_new.decrypt(t.api_secret_enc) == "SECRET-1"
        )
        r = await asyncio.to_thread(run, tmp_path, "secrets", "rotate", key="not-a-key")
        assert r.returncode == 2 and r.stderr.startswith(
            "tradewind: secret_key (TRADEWIND_SECRET_KEY): not a Fernet key"
        )
        # the old key dropped before the stored ones are re-encrypted: said, and nothing is changed
        r = await asyncio.to_thread(run, tmp_path, "secrets", "rotate", key=Fernet.generate_key().decode())
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert "cannot be decrypted with any key of secret_key" in r.stderr
        async with sf() as s:
            assert (await s.execute(Trader.__table__.select())).first().api_key_enc == t.api_key_enc
    finally:
        await engine.dispose()
