"""The trades of an account or an assignment: round trips, daily profit and an equity curve, from its fills.

A paper account's fills are the simulated exchange's own records (``paper_fills``, on the market's clock);
a real account's are its orders' fills as core recorded them. Round trips are built by
``tradewind.trading.trips``, the same code a backtest's trades come from.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from tradewind.domain import TIMEFRAMES
from tradewind.storage import candles as store
from tradewind.storage.models import Assignment, Market, Trader
from tradewind.trading import trips as tr
from tradewind.web.deps import Limit, OwnedDep, QueryId, StateDep, found
from tradewind.web.errors import ApiError

router = APIRouter(prefix="/api", tags=["trades"])
MAX_FILLS = 20_000  # the newest fills read; older ones are left out (``truncated``)
EQUITY_POINTS = 500  # candles the equity curve is valued at, about
FILL_POINTS = 1000  # up to this many fills, the curve has a point at each one as well
RESET = "trader.reset"


class TripOut(BaseModel):
    assignment_id: int | None
    symbol: str
    market_id: int | None = Field(description="the market it traded (null: not stored here)")
    entry_time: int = Field(description="epoch ms of the first buy")
    entry_price: float = Field(description="the average price of its buys")
    entry_type: str
    qty: float = Field(description="the amount bought (base)")
    exit_time: int | None = Field(description="epoch ms of the sell that closed it; null: still open")
    exit_price: float | None = Field(description="the average price of its sells")
    exit_reason: str | None = Field(description="signal | stop_loss | take_profit | trailing_stop | manual")
    pnl: float | None = Field(description="what the sells brought less what the buys cost, fees included")
    pnl_pct: float | None = Field(description="pnl in percent of what the buys cost")
    fees: float
    duration_s: float | None


class DayOut(BaseModel):
    day: str = Field(description="UTC date")
    pnl: str = Field(description="realized that day: each sell against the average cost of what it sold")
    fees: str
    fills: int


class TradesSummary(BaseModel):
    trades: int = Field(description="closed round trips")
    open: int
    wins: int
    win_rate: float
    pnl: float
    fees: float = Field(description="paid on every round trip listed, open ones too")
    profit_factor: float
    avg_duration_s: float


class TradesOut(BaseModel):
    trader_id: int | None
    assignment_id: int | None
    paper: bool
    trips: list[TripOut] = Field(description="newest entry first, at most `limit`")
    daily: list[DayOut]
    equity: list[list[int | float]] = Field(description="[time ms, equity] from `since`")
    base: str | None = Field(
        description="where the equity curve starts: a paper account's starting cash (at its last reset), an "
        "assignment's allocation; null for a real account, whose curve is the P&L of its trades here"
    )
    since: int | None = Field(description="the curve's first time (epoch ms): a paper account's last reset")
    summary: TradesSummary
    fills: int = Field(description="fills read")
    truncated: bool = Field(description="more fills than were read: the oldest are left out")
    unmatched: int = Field(description="sells with nothing bought before them among the fills read")


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _fill(
    time: int,
    side: str,
    amount: Any,
    price: Any,
    fee: Any,
    symbol: str,
    kind: str | None,
    reason: str | None,
    aid: int | None,
) -> tr.TradeFill:
    return tr.TradeFill(
        time, side, Decimal(amount), Decimal(price), Decimal(fee or 0), symbol, kind or "market", reason, aid
    )


async def _resets_of(repo: OwnedDep, trader_id: int) -> list[tuple[int, Decimal]]:
    """The times (the exchange's clock) and starting cash of a paper account's resets, newest first."""
    out = []
    for entry in await repo.audit_of(RESET):
        d = entry.detail or {}
        if d.get("trader_id") == trader_id and isinstance(d.get("at"), int):
            try:
                out.append(
                    (d["at"], sum((Decimal(v) for v in (d.get("balances") or {}).values()), Decimal(0)))
                )
            except (InvalidOperation, TypeError):
                continue
    return out


def _timeframe(span_ms: int) -> str:
    """The shortest timeframe that values ``span_ms`` in about EQUITY_POINTS candles."""
    for tf in ("1m", "5m", "15m", "1h", "4h", "1d"):
        if span_ms / TIMEFRAMES[tf] <= EQUITY_POINTS:
            return tf
    return "1d"


async def _equity(
    repo: OwnedDep, exchange: str, fills: list[tr.TradeFill], start: Decimal, since: int
) -> list[list[float]]:
    """The curve of ``fills`` (time order) from ``since`` on, valued at the candles of the markets traded."""
    symbols = sorted({f.symbol for f in fills})
    markets = {
        m.symbol: m.id
        for m in (
            await repo.s.execute(
                select(Market).where(Market.exchange == exchange, Market.symbol.in_(symbols))
            )
        ).scalars()
    }
    last = max([f.time for f in fills] + [since])
    for mid in markets.values():
        newest = await store.last_time(repo.s, mid, "1m")
        if newest is not None:
            last = max(last, newest)
    tf = _timeframe(last - since)
    closes: dict[str, tr.Closes] = {}
    grid: set[int] = set()
    for symbol, mid in markets.items():
        rows = await store.candle_range(repo.s, mid, tf, since - TIMEFRAMES[tf], last + 1)
        closes[symbol] = tr.Closes([r[0] for r in rows], [r[4] for r in rows], TIMEFRAMES[tf])
        grid.update(r[0] for r in rows if r[0] >= since)
    if len(fills) <= FILL_POINTS:
        grid.update(f.time for f in fills)
    grid.add(since)
    return tr.equity_curve(fills, start, sorted(grid), closes)


@router.get("/trades", response_model=TradesOut)
async def trades(
    repo: OwnedDep, st: StateDep, trader_id: QueryId = None, assignment_id: QueryId = None, limit: Limit = 100
) -> TradesOut:
    """Completed round trips (entry, exit, P&L %, duration, fees, exit reason) of one of your trading accounts
    (``trader_id``) or assignments (``assignment_id``), its realized profit per day, and its equity curve."""
    if (trader_id is None) == (assignment_id is None):
        raise ApiError(422, "give either trader_id or assignment_id", field="trader_id")
    assignment: Assignment | None = None
    if assignment_id is not None:
        assignment = found(await repo.get(Assignment, assignment_id), "assignment")
        trader = await repo.get(Trader, assignment.trader_id) if assignment.trader_id is not None else None
    else:
        assert trader_id is not None
        trader = found(await repo.get(Trader, trader_id), "trading account")
    paper = bool(trader and trader.paper)
    resets: list[tuple[int, Decimal]] = []
    fills: list[tr.TradeFill] = []
    if assignment is None and trader is not None and trader.paper:
        rows = await repo.paper_fills(trader.id, MAX_FILLS)
        fills = [_fill(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]
        resets = await _resets_of(repo, trader.id)
    else:
        rows = await repo.order_fills(MAX_FILLS, trader_id=trader_id, assignment_id=assignment_id)
        for (
            updated,
            side,
            filled,
            price,
            fee,
            symbol,
            kind,
            reason,
            aid,
            ptime,
            pamount,
            pprice,
            pfee,
        ) in rows:
            if ptime is not None:  # the simulated exchange's own record: its clock, its amounts
                fills.append(_fill(ptime, side, pamount, pprice, pfee, symbol, kind, reason, aid))
            elif price is not None and filled > 0:
                fills.append(_fill(_ms(updated), side, filled, price, fee, symbol, kind, reason, aid))
    fills.sort(key=lambda f: f.time)
    truncated = len(rows) >= MAX_FILLS
    round_trips, realized, unmatched = tr.round_trips(fills, [at for at, _ in resets])
    reset = resets[0] if resets else None

    # The curve: an assignment's from its allocation; a paper account's from its starting cash (since its
    # last reset); a real account's is the P&L of its trades here (its balance is the exchange's).
    if assignment is not None:
        base: Decimal | None = assignment.allocation
    elif paper:
        base = reset[1] if reset is not None else Decimal(st.settings.sim_paper_cash)
    else:
        base = None
    since = reset[0] if reset is not None else None
    curve_fills = [f for f in fills if since is None or f.time >= since]
    equity: list[list[float]] = []
    if curve_fills:
        # from the reset, or from just before the first fill: the curve starts at its base
        start = since if since is not None else curve_fills[0].time - 1000
        exchange = trader.exchange if trader is not None else ""
        equity = await _equity(repo, exchange, curve_fills, base if base is not None else Decimal(0), start)
    markets: dict[str, int] = {}
    if trader is not None and round_trips:
        q = select(Market.symbol, Market.id).where(
            Market.exchange == trader.exchange, Market.symbol.in_({t.symbol for t in round_trips})
        )
        markets = {sym: mid for sym, mid in (await repo.s.execute(q)).all()}
    newest = sorted(round_trips, key=lambda t: t.entry_time, reverse=True)[:limit]
    return TradesOut(
        trader_id=trader.id if trader is not None else None,
        assignment_id=assignment_id,
        paper=paper,
        trips=[
            TripOut(
                assignment_id=t.assignment_id,
                symbol=t.symbol,
                market_id=markets.get(t.symbol),
                entry_time=t.entry_time,
                entry_price=t.entry_price,
                entry_type=t.entry_type,
                qty=t.qty,
                exit_time=t.exit_time,
                exit_price=t.exit_price,
                exit_reason=t.exit_reason,
                pnl=t.pnl,
                pnl_pct=t.pnl_pct,
                fees=t.fees,
                duration_s=None if t.duration_ms is None else t.duration_ms / 1000,
            )
            for t in newest
        ],
        daily=[DayOut(**d) for d in tr.daily_profit(realized, fills)],
        equity=equity,
        base=None if base is None else format(base, "f"),
        since=since if since is not None else (int(equity[0][0]) if equity else None),
        summary=TradesSummary(**tr.summary(round_trips)),
        fills=len(fills),
        truncated=truncated,
        unmatched=unmatched,
    )
