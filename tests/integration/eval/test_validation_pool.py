"""The validation pool: code is checked in child processes killed on a wall-clock deadline."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tradewind.eval.validation import ValidationBusy, ValidationPool

GOOD = 'function decide(c) return "long" end'
# Every step copies and hashes an 8 MB string: work the count hook sees only every ~150 steps, so only
# the wall-clock deadline stops it in time.
RUNAWAY = """
local s = string.rep("x", 1000000) s = s .. s .. s .. s .. s .. s .. s .. s
local t, i = {}, 0
while true do i = i + 1 t[s .. i] = true t[s .. i] = nil end
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def dies(pid: int) -> bool:
    for _ in range(40):  # a killed process is gone within a moment
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_runaway_is_killed_on_its_deadline_and_its_child_replaced() -> None:
    pool = ValidationPool(size=1, deadline_s=0.3)
    try:
        assert await pool.validate(GOOD, "alice") == []
        (first,) = pool._children
        started = time.monotonic()
        (d,) = await pool.validate(RUNAWAY, "alice")
        assert time.monotonic() - started < 1.5
        assert "ran past its 0.3 s limit" in d.message and pool.kills == 1
        assert await dies(first.proc.pid), "the child that ran it was killed"
        assert await pool.validate(GOOD, "alice") == [], "a fresh child took its place"
        (d,) = await pool.validate("x = = 1", "alice")
        assert d.line == 1 and "syntax error" in d.message
    finally:
        await pool.close()


async def test_one_user_cannot_queue_more_than_two_validations() -> None:
    pool = ValidationPool(size=2, deadline_s=1.0)
    try:
        await pool.start()
        results = await asyncio.gather(
            *(pool.validate(RUNAWAY, "mallory") for _ in range(5)), return_exceptions=True
        )
        busy = [r for r in results if isinstance(r, ValidationBusy)]
        answered = [r for r in results if isinstance(r, list)]
        assert len(busy) == 3 and len(answered) == 2
        assert all("limit" in r[0].message for r in answered)
    finally:
        await pool.close()


async def test_another_users_validation_is_not_held_up_by_runaways() -> None:
    pool = ValidationPool(size=2, deadline_s=1.0)
    try:
        await pool.start()
        for _ in range(200):  # both children up
            if pool._idle is not None and pool._idle.qsize() == 2:
                break
            await asyncio.sleep(0.05)
        flood = [asyncio.create_task(pool.validate(RUNAWAY, "mallory")) for _ in range(2)]
        await asyncio.sleep(0.2)  # one runaway holds a child, the other waits for its turn
        assert pool._idle is not None and pool._idle.qsize() == 1
        started = time.monotonic()
        assert await pool.validate(GOOD, "bob") == []
        assert time.monotonic() - started < 2.0
        await asyncio.gather(*flood)
    finally:
        await pool.close()


async def test_the_lifespan_starts_the_children_and_leaves_none_behind() -> None:
    pool = ValidationPool(size=2)
    async with pool.lifespan():
        assert await pool.validate(GOOD, "alice") == []
        pids = [c.proc.pid for c in pool._children]
        assert len(pids) >= 1 and os.getpid() not in pids, "validation runs in child processes"
    assert all([await dies(pid) for pid in pids])
    with pytest.raises(Exception, match="shutting down"):
        await pool.validate(GOOD, "alice")


async def test_a_validation_answers_the_parameters_the_code_declares() -> None:
    pool = ValidationPool(size=1)
    try:
        code = 'params = {fast = {type = "int", min = 2, max = 9, default = 3}}\n' + GOOD
        found = await pool.inspect(code, "alice")
        assert found.diagnostics == []
        assert found.declared == [{"name": "fast", "type": "int", "min": 2, "max": 9, "default": 3}]
        found = await pool.inspect("params = 5\n" + GOOD, "alice")
        assert found.declared == [] and "params must be a table" in found.diagnostics[0].message
    finally:
        await pool.close()
