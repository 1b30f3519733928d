"""core.trade.Balances: a balance read when the candle came is used only while it is as good as a read after
the evaluations would be (no order call of this core started since, none open), and only for the accounts
it covers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from tradewind.core.trade import Balances


def book(started: int = 0, open_: int = 0) -> Any:
    return SimpleNamespace(calls_started=started, calls_open=open_)


async def read_of(value: Any) -> Any:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
    return future


async def test_the_read_serves_the_accounts_it_covers_until_an_order_call_starts() -> None:
    orders = book(started=3)
    read = await read_of([{7: 100}])
    balances = Balances(orders, {"sim": {7, 8}}, read)
    assert balances.usable({"sim": {7}}) is read
    assert balances.usable({"sim": {7, 9}}) is None  # an account it did not ask about
    assert balances.usable({"bitfinex": {7}}) is None
    orders.calls_open = 1  # a call of another candle (or market) on its way: its buys are not in the read
    assert balances.usable({"sim": {7}}) is None
    orders.calls_open = 0
    orders.calls_started = 4  # one started (and answered) since the read began
    assert balances.usable({"sim": {7}}) is None


async def test_a_failed_read_is_not_used_and_its_failure_is_retrieved_on_cancel() -> None:
    read = await read_of(TimeoutError("no answer"))
    balances = Balances(book(), {"sim": {7}}, read)
    assert balances.usable({"sim": {7}}) is None  # ``_plan`` asks again; a failure there propagates
    balances.cancel()
    assert read.done()


async def test_an_unfinished_read_is_handed_out_and_cancelled_when_the_candle_is_done() -> None:
    gate: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    balances = Balances(book(), {"sim": {7}}, gate)
    assert balances.usable({"sim": {7}}) is gate
    balances.cancel()
    assert gate.cancelled()
