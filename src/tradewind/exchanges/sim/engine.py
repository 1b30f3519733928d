"""The paper matching engine: balances per paper account, market orders filled at the next open, fees.

Fills are committed in groups (one transaction for everything that arrived within a few milliseconds)
and each order is answered only after its group is durable, so a killed process never loses a fill it
confirmed, and a client order id seen before is answered with its first result instead of a second fill.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import select

from tradewind.domain import split_symbol
from tradewind.exchanges.base import OrderResult, OrderSpec
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import PaperBalance, PaperFill

log = logging.getLogger(__name__)

QTY = Decimal("0.00000001")
_ZERO = Decimal(0)


class PaperEngine:
    def __init__(self, session_factory: SessionFactory, fee: Decimal, initial_cash: Decimal, cash_asset: str = "USD"):
        self.sf = session_factory
        self.fee = fee
        self.initial_cash = initial_cash
        self.cash_asset = cash_asset
        self._balances: dict[int, dict[str, Decimal]] = {}
        self._fills: dict[str, OrderResult] = {}  # client order id -> result (recent, also in paper_fills)
        self._queue: list[tuple[PaperFill, dict[str, Decimal] | None, int, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flusher(), name="paper-flush")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._flush()

    async def balances(self, trader_id: int) -> dict[str, Decimal]:
        async with self._lock:
            return dict(await self._load(trader_id))

    async def _load(self, trader_id: int) -> dict[str, Decimal]:
        bal = self._balances.get(trader_id)
        if bal is None:
            async with self.sf() as s:
                rows = (await s.execute(select(PaperBalance).where(PaperBalance.trader_id == trader_id))).scalars()
                bal = {r.asset: r.amount for r in rows}
                if not bal:
                    bal = {self.cash_asset: self.initial_cash}
                    s.add(PaperBalance(trader_id=trader_id, asset=self.cash_asset, amount=self.initial_cash))
                    await s.commit()
            self._balances[trader_id] = bal
        return bal

    async def find(self, client_order_id: str) -> OrderResult | None:
        known = self._fills.get(client_order_id)
        if known is not None:
            return known
        async with self.sf() as s:
            row = (
                await s.execute(select(PaperFill).where(PaperFill.client_order_id == client_order_id))
            ).scalar_one_or_none()
        return _result(row) if row else None

    async def place(self, trader_id: int, spec: OrderSpec, price: Decimal, now_ms: int | None = None) -> OrderResult:
        """Fill a market order at ``price`` (the next candle's open) or reject it; idempotent by client id."""
        previous = await self.find(spec.client_order_id)
        if previous is not None:
            return previous
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        async with self._lock:
            if spec.client_order_id in self._fills:  # a concurrent duplicate got here first
                return self._fills[spec.client_order_id]
            bal = await self._load(trader_id)
            base, quote = split_symbol(spec.symbol)
            amount = spec.amount.quantize(QTY, rounding=ROUND_DOWN)
            cost = amount * price
            fee = cost * self.fee
            reason = None
            changes: dict[str, Decimal] | None = None
            if amount <= 0:
                reason = "amount must be positive"
            elif spec.side == "buy":
                if bal.get(quote, _ZERO) < cost + fee:
                    reason = f"insufficient {quote}: need {cost + fee:.2f}, have {bal.get(quote, _ZERO):.2f}"
                else:
                    changes = {quote: bal.get(quote, _ZERO) - cost - fee, base: bal.get(base, _ZERO) + amount}
            elif spec.side == "sell":
                if bal.get(base, _ZERO) < amount:
                    reason = f"insufficient {base}: need {amount}, have {bal.get(base, _ZERO)}"
                else:
                    changes = {base: bal.get(base, _ZERO) - amount, quote: bal.get(quote, _ZERO) + cost - fee}
            else:
                reason = f"unknown side {spec.side!r}"
            if changes:
                bal.update(changes)
            row = PaperFill(
                trader_id=trader_id,
                client_order_id=spec.client_order_id,
                symbol=spec.symbol,
                side=spec.side,
                amount=amount,
                price=price,
                fee=fee if changes else _ZERO,
                status="filled" if changes else "rejected",
                reason=reason,
                time=now_ms,
            )
            result = _result(row)
            self._fills[spec.client_order_id] = result
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append((row, changes, trader_id, done))
            self._wakeup.set()
        await done
        return result

    async def _flusher(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0.002)  # let a burst of orders join one transaction
            try:
                await self._flush()
            except Exception:
                log.exception("paper engine: flush failed; retrying")
                await asyncio.sleep(0.5)
                self._wakeup.set()

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            async with self.sf() as s:
                touched: set[tuple[int, str]] = set()
                for row, changes, trader_id, _ in batch:
                    s.add(row)
                    touched.update((trader_id, asset) for asset in changes or {})
                # The in-memory balance is the newest: it already includes every fill of this batch.
                for trader_id, asset in touched:
                    await s.merge(PaperBalance(trader_id=trader_id, asset=asset, amount=self._balances[trader_id][asset]))
                await s.commit()
        except Exception:
            self._queue[:0] = batch
            raise
        for *_, done in batch:
            if not done.done():
                done.set_result(None)


def _result(row: PaperFill) -> OrderResult:
    return OrderResult(
        client_order_id=row.client_order_id,
        status=row.status,
        exchange_order_id=f"paper-{row.client_order_id}",
        filled=row.amount if row.status == "filled" else _ZERO,
        price=row.price if row.status == "filled" else None,
        fee=row.fee,
        fee_asset=split_symbol(row.symbol)[1],
        reason=row.reason,
        time=row.time,
    )
