"""Backtests: run a strategy over stored history on the backtest workers, and read the results."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import Backtest
from tradewind.web import declared
from tradewind.web.declared import ValidatorDep
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, found, page
from tradewind.web.errors import ApiError
from tradewind.web.routes import submit
from tradewind.web.routes.submit import Fee, Queued, RunHead, RunIn
from tradewind.web.schemas import MAX_INTERVAL_MS, MIN_INTERVAL_MS, Page, SomeCode

router = APIRouter(prefix="/api/backtests", tags=["backtests"])
QUOTING_FIELDS = ("spread_bps", "max_position", "min_interval_ms")  # None: the worker's default
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class BacktestIn(RunIn):
    fee: Fee = Field(default=0.001, description="the taker fee")
    maker_fee: Fee | None = Field(
        default=None, description="the fee of limit entries and take-profits; default: fee"
    )
    trigger: Literal["candle", "tick"] | None = Field(
        default=None,
        description="candle: decide() on each closed candle; tick: on_tick() and the quotes it keeps; "
        "default: tick for a strategy that defines on_tick and no decide",
    )
    spread_bps: Positive | None = Field(
        default=None,
        le=1000,
        description="quoting on candles: the spread of the book assumed around each close, in basis points; "
        "default 2",
    )
    max_position: Positive | None = Field(
        default=None,
        le=1e12,
        description="quoting: the most base held (a buy quote is cut to what is left below it); default: only "
        "the cash limits it",
    )
    min_interval_ms: int | None = Field(
        default=None,
        ge=MIN_INTERVAL_MS,
        le=MAX_INTERVAL_MS,
        strict=True,
        description="quoting on ticks: at most one on_tick per this many milliseconds; default 1000",
    )
    code: SomeCode | None = Field(
        default=None,
        description="run this code instead of the strategy's latest "
        "version (the editor's unsaved code); it is kept with the run, not saved",
    )


class BacktestQueued(Queued):
    pass


class BacktestOut(RunHead):  # status: queued | running | done | error
    params: dict[str, Any]
    # cash, fee, maker_fee, slippage, lookback, from, to (epoch ms), trigger, spread_bps, max_position, min_interval_ms
    config: dict[str, Any]
    mode: Literal["candles", "ticks"] | None = Field(
        default=None,
        description="a quoting run's: ticks (on the market's stored ticks) or candles (a synthetic spread "
        "around each close); null for a decide run (or one not run yet)",
    )
    # decide: final_equity, return_pct, max_drawdown_pct, sharpe, sortino, win_rate, profit_factor,
    # avg_trade_duration_s, fees_paid, buy_and_hold_return_pct, candles, duration_s; quoting: the
    # `tradewind backtest --json` document of a quoting strategy (quotes_placed, fills by side, evaluations, ...)
    metrics: dict[str, Any] | None = None
    # entry_time, entry_price, entry_type, exit_time, exit_price, exit_reason, qty, pnl, pnl_pct, fees, duration_s
    trades: list[dict[str, Any]] | None = None
    fills: list[dict[str, Any]] | None = Field(
        default=None,
        description="a quoting run's fills: time, side, price, amount, fee, kind (quote | market), pnl",
    )
    equity: list[list[int | float]] | None = None  # [time ms, equity, drawdown %], about 1,000 points
    buy_and_hold: list[list[int | float]] | None = Field(
        default=None,
        description="[time ms, equity] at the equity curve's times: all the cash put in at the first candle a "
        "decision could trade (its open, with the fee and slippage) and held",
    )
    plot: dict[str, list[list[int | float]]] | None = Field(
        default=None,
        description="the strategy's own series (plot = {...} in decide's tables) over the run's last 5,000 "
        "candles: [time ms, value] per series name",
    )
    range: RangeOut | None = Field(default=None, description="the data the run used (null until it has run)")
    error: str | None = None
    draft: bool = Field(default=False, description="it ran code sent with it, not a saved version")
    created_at: dt.datetime
    finished_at: dt.datetime | None = None


class RangeOut(BaseModel):
    from_: int | None = Field(
        alias="from", description="the start asked for (epoch ms); null: the first stored candle"
    )
    to: int = Field(
        description="the end (exclusive, epoch ms): as asked, or the end of the newest candle stored when the run was submitted"
    )
    first: int | None = Field(description="the time of the first candle (or tick) of the run's equity curve")
    last: int | None = Field(description="the time of the last one: the newest data the run saw")
    candles: int | None = Field(description="how many candles (or ticks) it ran over")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class BacktestPage(Page):
    items: list[BacktestOut]


def _range(b: Backtest) -> RangeOut | None:
    cfg, result = b.config or {}, b.result or {}
    if not result or cfg.get("to") is None:
        return None
    equity, metrics = result.get("equity") or [], result.get("metrics") or {}
    count = metrics.get("candles", metrics.get("ticks"))
    return RangeOut.model_validate(
        {
            "from": cfg.get("from"),
            "to": cfg["to"],
            "first": int(equity[0][0]) if equity else None,
            "last": int(equity[-1][0]) if equity else None,
            "candles": count if isinstance(count, int) else None,
        }
    )


def out(b: Backtest, detail: bool = True) -> BacktestOut:
    result = b.result or {}
    return BacktestOut(
        id=b.id,
        status=b.status,
        strategy_id=b.strategy_id,
        version=b.version,
        market_id=b.market_id,
        timeframe=b.timeframe,
        params=b.params or {},
        config=b.config or {},
        mode=result.get("mode"),
        metrics=result.get("metrics"),
        trades=result.get("trades") if detail else None,
        fills=result.get("fills") if detail else None,
        equity=result.get("equity") if detail else None,
        buy_and_hold=result.get("buy_and_hold") if detail else None,
        plot=result.get("plot") if detail else None,
        error=b.error,
        created_at=b.created_at,
        finished_at=b.finished_at,
        range=_range(b),
        draft=b.code is not None,
    )


@router.post("", status_code=202, response_model=BacktestQueued)
async def create(body: BacktestIn, repo: OwnedDep, st: StateDep, pool: ValidatorDep) -> BacktestQueued:
    """Queue a backtest of the strategy's latest version, or of ``code``; poll GET /api/backtests/{id} for the
    result. A quoting strategy (on_tick) runs on the market's stored ticks in the range, or without any on its
    candles. The parameters are checked against what the code declares."""
    strategy = await submit.strategy_of(repo, body)
    if body.code is not None:
        decl = await declared.read(pool, body.code, repo.user_id)
    else:
        latest = await repo.version(strategy, strategy.latest_version)
        assert latest is not None
        decl = await declared.of_version(pool, latest, repo.user_id)
    params = declared.check(decl, body.params)
    start, end = body.span()
    if end is None:
        end = await submit.end_of_data(repo, body, start)
    if body.trigger == "candle":
        for name in QUOTING_FIELDS:
            if getattr(body, name) is not None:
                raise ApiError(422, "only for a quoting run: not with the trigger candle", field=name)
    config = {
        **body.costs(),
        "from": start,
        "to": end,
        "trigger": body.trigger,
        **{name: getattr(body, name) for name in QUOTING_FIELDS},
    }
    bt = repo.add(Backtest(**submit.columns(strategy, body), params=params, config=config, code=body.code))
    await repo.s.commit()
    await submit.start(repo, st, bt, subjects.BACKTEST_START, m.StartBacktest(backtest_id=bt.id), "backtest")
    return BacktestQueued(id=bt.id, status=bt.status)


@router.get("", response_model=BacktestPage)
async def list_backtests(repo: OwnedDep, limit: Limit = 50, before_id: Cursor = None) -> dict[str, Any]:
    """The user's backtests, newest first, without trades and equity curves."""
    return page(
        [out(b, detail=False).model_dump(mode="json") for b in await repo.page(Backtest, limit, before_id)],
        limit,
    )


@router.get("/{backtest_id}", response_model=BacktestOut)
async def get(backtest_id: ObjectId, repo: OwnedDep) -> BacktestOut:
    """Status, metrics, trades and the equity curve (with drawdown) of one backtest."""
    b = found(await repo.get(Backtest, backtest_id), "backtest")
    return out(b)
