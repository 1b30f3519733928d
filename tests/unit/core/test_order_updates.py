"""core.orders books the venues' order reports in batches: the reports that arrive together are one
read and one update, an order reported twice waits for its first report's batch, and ``settle`` counts a
report as pending until it is booked."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from tradewind.bus import messages as m
from tradewind.core import orders


class Book(orders.OrderBook):
    """The order book without a database: ``apply`` records what it is given (and can fail)."""

    def __init__(self, failures: int = 0) -> None:  # noqa: D107 - nothing of the parent's is needed
        self._reports = []
        self._booking = None
        self._inflight = set()
        self._applying = 0
        self._booked = {}
        self.batches: list[list[tuple[str, str]]] = []
        self.failures = failures
        self.pending_seen: list[int] = []

    async def apply(self, acks: list[tuple[str, m.OrderAck, float | None]]) -> None:
        self.pending_seen.append(self._applying)
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        self.batches.append([(cid, ack.status) for cid, ack, _ in acks])


def report(cid: str, status: str, seq: int) -> Any:
    upd = m.OrderUpdated(
        source="run-1",
        seq=seq,
        exchange="sim",
        trader_id=1,
        client_order_id=cid,
        status=status,
        filled="0",
        fee="0",
    )
    return SimpleNamespace(data=m.encode(upd))


async def booked(book: Book) -> None:
    while book._inflight:
        await asyncio.gather(*list(book._inflight))


async def test_reports_that_arrive_together_are_booked_in_one_batch() -> None:
    book = Book()
    for i in range(5):
        await book.on_order_update(report(f"o{i}", "canceled", i + 1))
    assert book._applying == 5  # queued: settle waits for them
    await booked(book)
    assert book.batches == [[(f"o{i}", "canceled") for i in range(5)]]
    assert book._applying == 0 and book._booked == {"run-1": 5}


async def test_an_order_reported_twice_is_booked_in_order_one_batch_after_the_other() -> None:
    book = Book()
    await book.on_order_update(report("a", "open", 1))
    await book.on_order_update(report("b", "open", 2))
    await book.on_order_update(report("a", "filled", 3))
    await book.on_order_update(report("c", "canceled", 4))
    await booked(book)
    assert book.batches == [[("a", "open"), ("b", "open")], [("a", "filled"), ("c", "canceled")]]
    assert book.pending_seen == [4, 2]  # the second batch is still counted while the first is booked
    assert book._applying == 0


async def test_a_batch_the_database_refused_is_booked_again_and_reports_meanwhile_wait_their_turn() -> None:
    book = Book(failures=1)
    await book.on_order_update(report("a", "canceled", 1))
    await asyncio.sleep(0.1)  # the first attempt failed; it is retried after half a second
    await book.on_order_update(report("b", "canceled", 2))
    assert book._applying == 2
    await booked(book)
    assert book.batches == [[("a", "canceled")], [("b", "canceled")]]
    assert book._applying == 0 and book._booked == {"run-1": 2}


async def test_a_garbled_report_is_dropped_without_touching_the_others() -> None:
    book = Book()
    await book.on_order_update(SimpleNamespace(data=b"\x00not msgpack"))
    await book.on_order_update(report("a", "canceled", 1))
    await booked(book)
    assert book.batches == [[("a", "canceled")]] and book._applying == 0
