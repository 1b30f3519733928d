"""The trading model's promise, end to end: a strategy with stops, targets, a trailing stop and limit entries,
run live on paper through `tradewind up` and then through the backtest engine on the very candles the sim
made, gives the same fills (price and amount, in order, with their types and exit reasons) and the same
equity, to the cent."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
import pytest

from tradewind.backtest import engine

from .platform_helpers import Proc, User, env_for, free_port, wait_until

pytestmark = pytest.mark.e2e

FEE, MAKER, SLIP_BPS, CASH = "0.001", "0.0005", "5", "10000"
# Every kind of order on a random walk of about 0.1 % a minute: market entries with a stop and a target,
# limit entries a hair under the close with a trailing stop, a stop moved while in the position, and a
# signal exit every seventh minute (which also takes a resting entry down).
STRATEGY = """
function decide(c, params)
  local n = #c.close
  if n < 3 then return "neutral" end
  local t = c.time[n] // 60000
  local close = c.close[n]
  if t % 7 == 0 then return "short" end
  if t % 4 == 0 then
    return {position = "long", stop_loss = 0.0015, take_profit = 0.002, note = "market"}
  elseif t % 4 == 1 then
    return {position = "long", limit = close * 0.9996, expire = 2, trailing_stop = 0.001, stop_loss = 0.003}
  elseif t % 4 == 3 then
    -- at the close (the next open): it fills at once, and a tight trailing stop often takes it out in the
    -- same candle, whose decision is a market entry: core must know the position is gone by then
    return {position = "long", limit = close, trailing_stop = 0.0003}
  end
  return {position = "neutral", stop_loss = 0.0008}
end
"""


def _cents(x: Decimal | float) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"))


def test_paper_trading_and_backtest_agree_to_the_cent(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    env = env_for(
        sim_speed=120,
        history_days=1,
        sim_symbols="BTC/USD",
        sim_fee=FEE,
        sim_maker_fee=MAKER,
        sim_slippage_bps=SLIP_BPS,
        sim_paper_cash=CASH,
    )
    proc = Proc(["up", "--data-dir", str(data), "--port", str(port)], env, tmp_path / "up.log").start()
    try:
        wait_until(
            lambda: httpx.get(f"{base}/api/health", timeout=2).status_code == 200,
            timeout=90,
            what="the web app",
            proc=proc,
        )
        u = User(base, "parity@example.com")
        strategy = u.post("/api/strategies", {"name": "protected", "code": STRATEGY})
        trader = u.post("/api/traders", {"name": "paper", "exchange": "sim", "paper": True})
        a = u.post(
            "/api/assignments",
            {
                "strategy_id": strategy["id"],
                "market_id": u.market("BTC/USD")["id"],
                "timeframe": "1m",
                "trader_id": trader["id"],
                "allocation": CASH,
                "params": {},
            },
        )

        def enough() -> bool:
            orders = u.items("/api/orders", assignment_id=a["id"], limit=500)
            reasons = {o.get("exit_reason") for o in orders if o["status"] == "filled"}
            kinds = {o.get("type") for o in orders if o["status"] == "filled"}
            evals = u.items("/api/evaluations", assignment_id=a["id"], limit=500)
            return len(evals) >= 60 and {"limit", "market"} <= kinds and len(reasons - {None}) >= 2

        wait_until(
            enough,
            timeout=240,
            what="60 candles with limit and market entries and two kinds of exit",
            proc=proc,
        )
        evals = u.items("/api/evaluations", assignment_id=a["id"], limit=500)
        first = min(e["candle_time"] for e in evals)
        time.sleep(2)
    finally:
        proc.stop()

    db = sqlite3.connect(data / "tradewind.db")
    rows = db.execute(
        "SELECT c.time, c.open, c.high, c.low, c.close, c.volume FROM candles c JOIN markets m ON m.id = c.market_id "
        "WHERE m.exchange = 'sim' AND m.symbol = 'BTC/USD' AND c.tf = '1m' ORDER BY c.time"
    ).fetchall()
    last_eval = db.execute(
        "SELECT max(candle_time) FROM evaluations WHERE assignment_id = ?", (a["id"],)
    ).fetchone()[0]
    # Live fills, in order: paper_fills has every one (market fills at their time between candles, resting
    # orders' fills at their candle's time).
    live = db.execute(
        "SELECT f.side, f.amount, f.price, f.fee, f.time, o.type, o.exit_reason FROM paper_fills f "
        "LEFT JOIN orders o ON o.client_order_id = f.client_order_id WHERE f.status = 'filled' ORDER BY f.id"
    ).fetchall()
    db.close()

    # The backtest sees the candles up to the last one decided live, and trades from the first.
    cut = next(i for i, r in enumerate(rows) if r[0] == last_eval) + 1
    arr = np.array(rows[:cut], dtype=float)
    arrays = {k: arr[:, i] for i, k in enumerate(("time", "open", "high", "low", "close", "volume"))}
    arrays["time"] = arrays["time"].astype(np.int64)
    result = engine.run(
        STRATEGY,
        arrays,
        cash=float(CASH),
        fee=float(FEE),
        maker_fee=float(MAKER),
        slippage=float(SLIP_BPS) / 10_000,
        trade_from=first,
    )
    assert result.error is None, result.error

    # The fills both made on candles before the last decided one (later ones may still be on their way).
    horizon = last_eval
    bt = []
    for t in result.trades:
        if t.entry_time <= horizon:
            bt.append(("buy", _cents(t.entry_price * t.qty), t.entry_type, None))
        if t.exit_time is not None and t.exit_time <= horizon and t.exit_reason != "end":
            bt.append(("sell", _cents(t.exit_price * t.qty), None, t.exit_reason))
    lv = []
    for side, amount, price, _fee, when, kind, reason in live:
        if when // 60_000 * 60_000 <= horizon:
            lv.append(
                (
                    side,
                    _cents(Decimal(str(amount)) * Decimal(str(price))),
                    kind if side == "buy" else None,
                    reason if side == "sell" else None,
                )
            )
    assert len(lv) >= 6, lv
    assert lv == bt

    # Equity at the horizon's close: cash after every fill, and the position at the close.
    close = Decimal(repr(float(arrays["close"][np.searchsorted(arrays["time"], horizon)])))
    cash, qty = Decimal(CASH), Decimal(0)
    for side, amount, price, fee, when, _k, _r in live:
        if when // 60_000 * 60_000 > horizon:
            continue
        value = Decimal(str(amount)) * Decimal(str(price))
        cash += -(value + Decimal(str(fee))) if side == "buy" else value - Decimal(str(fee))
        qty += Decimal(str(amount)) if side == "buy" else -Decimal(str(amount))
    at = int(np.searchsorted(result.times, horizon))
    assert _cents(cash + qty * close) == _cents(result.equity[at])
