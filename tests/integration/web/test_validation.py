"""Validation over HTTP: runaway code answers not-ok within seconds and holds up nobody else."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.web.app import create_app

from .conftest import KEY, Api

GOOD = 'function decide(c, p) return "long" end'
# The reported attack: the top level calls os.date with a 500,000-character format a hundred times.
OS_DATE = (
    'local f = string.rep("%c", 250000) for i = 1, 100 do os.date(f) end function decide(c) return "long" end'
)
# Work the count hook sees too rarely to stop in time: only the wall-clock deadline does.
RUNAWAY = """
local s = string.rep("x", 1000000) s = s .. s .. s .. s .. s .. s .. s .. s
local t, i = {}, 0
while true do i = i + 1 t[s .. i] = true t[s .. i] = nil end
"""


async def timed(coro):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    r = await coro
    return r, time.monotonic() - started


@pytest.fixture
async def app(api: Api) -> AsyncIterator[Api]:
    """The conftest's app (run without its lifespan, so the pool starts on first use), stopped after."""
    yield api
    await api.app.state.validator.close()


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


async def test_concurrent_runaway_validations_answer_not_ok_and_hold_up_no_other_user(app: Api) -> None:
    mallory = await app.user("mallory@example.com")
    bob = await app.user("bob@example.com")
    started = time.monotonic()
    flood = [timed(mallory.post("/api/strategies/validate", json={"code": RUNAWAY})) for _ in range(6)]
    *answers, (trivial, trivial_took) = await asyncio.gather(
        *flood, timed(bob.post("/api/strategies/validate", json={"code": GOOD}))
    )
    assert trivial.status_code == 200 and trivial.json() == {"ok": True, "errors": []}
    assert trivial_took < 3, f"a trivial validation took {trivial_took:.1f} s behind another user's runaways"
    stopped = 0
    for r, took in answers:
        assert took < 6, f"a runaway validation answered after {took:.1f} s"
        if r.status_code == 429:  # more than one running and one waiting per user
            assert "still running" in r.json()["detail"] and r.headers["retry-after"]
            continue
        assert r.status_code == 200 and r.json()["ok"] is False, r.text
        message = r.json()["errors"][0]["message"]
        assert "ran past its 1 s limit" in message or "time limit reached" in message, message
        stopped += 1
    assert stopped >= 1 and time.monotonic() - started < 8


async def test_the_os_date_attack_is_refused_at_once_on_validate_and_on_save(app: Api) -> None:
    c = await app.user("dates@example.com")
    r, took = await timed(c.post("/api/strategies/validate", json={"code": OS_DATE}))
    assert r.status_code == 200 and r.json()["ok"] is False and took < 3
    assert "os.date: format longer than 256" in r.json()["errors"][0]["message"]
    r, took = await timed(c.post("/api/strategies", json={"name": "dates", "code": OS_DATE}))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code" and took < 3


async def test_a_runaway_is_refused_on_save_and_on_update(app: Api) -> None:
    c = await app.user("saver@example.com")
    r = await c.post("/api/strategies", json={"name": "runaway", "code": RUNAWAY})
    assert r.status_code == 422 and "limit" in r.json()["errors"][0]["message"], r.text
    s = (await c.post("/api/strategies", json={"name": "fine", "code": GOOD})).json()
    r = await c.patch(f"/api/strategies/{s['id']}", json={"code": RUNAWAY})
    assert r.status_code == 422 and "limit" in r.json()["errors"][0]["message"], r.text
    assert (await c.get(f"/api/strategies/{s['id']}")).json()["version"] == 1


async def test_the_apps_lifespan_starts_and_stops_the_validation_processes(tmp_path: Path, sf) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    web = create_app(settings, sf, None, SecretBox([KEY]))
    pool = web.state.validator
    async with web.router.lifespan_context(web):
        assert await pool.validate(GOOD, 1) == []
        pids = [c.proc.pid for c in pool._children]
        assert pids and os.getpid() not in pids, "validation runs in child processes"
    assert all(gone(pid) for pid in pids)
