"""Walk-forward analyses: start one on the backtest workers (``tradewind walkforward``'s analysis), read its
windows, stitched in-sample and out-of-sample curves and efficiency."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Literal

from fastapi import APIRouter
from nats.errors import Error as NatsError
from pydantic import BaseModel, Field, field_validator

from tradewind.backtest import optimize as opt
from tradewind.backtest import walkforward as wf
from tradewind.backtest.studies import stale
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.domain import tf_ms
from tradewind.storage import candles as store
from tradewind.storage.models import Market, Strategy, WalkForwardRun
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, not_found, page
from tradewind.web.errors import ApiError
from tradewind.web.routes.backtests import NO_WORKER, _ms
from tradewind.web.routes.studies import Objective
from tradewind.web.schemas import MAX_ID, ParamValue, _check_params, _check_tf
from tradewind.web.schemas import Request as Body

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/walkforwards", tags=["walkforwards"])
MAX_TRIALS_PER_WINDOW = 500
MAX_SPAN_MS = 100 * wf.YEAR_MS


class WalkForwardIn(Body):
    strategy_id: int = Field(ge=1, le=MAX_ID, strict=True)
    market_id: int = Field(ge=1, le=MAX_ID, strict=True)
    timeframe: str = Field(default="1h", max_length=4)
    from_: dt.datetime | int | None = Field(
        default=None, alias="from", description="start (ISO 8601 or epoch ms)"
    )
    to: dt.datetime | int | None = Field(
        default=None, description="end, exclusive (ISO 8601 or epoch ms); default: the newest candle's end"
    )
    mode: Literal["rolling", "anchored", "split"] = Field(
        default="rolling",
        description="rolling: train windows of `train`, moved on by `test`; anchored: every train window "
        "starts at the first candle; split: one train/test split at `split`",
    )
    train: str | None = Field(
        default=None, max_length=16, description="train window length: 30d, 12h, 90m, 2w"
    )
    test: str | None = Field(default=None, max_length=16, description="test window length (and the step)")
    split: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="split: the train share of the candles, e.g. 0.7",
    )
    trials: int = Field(
        default=20, ge=1, le=MAX_TRIALS_PER_WINDOW, strict=True, description="per train window"
    )
    objective: Objective = "sharpe"
    sampler: Literal["tpe", "nsga2"] = "tpe"
    prune: bool = True
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, strict=True)
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="parameters held fixed (not searched)"
    )
    cash: float = Field(default=10_000.0, gt=0, le=1e12, allow_inf_nan=False)
    fee: float = Field(default=0.001, ge=0, le=0.1, allow_inf_nan=False)
    maker_fee: float | None = Field(default=None, ge=0, le=0.1, allow_inf_nan=False)
    slippage: float = Field(default=0.0, ge=0, le=0.1, allow_inf_nan=False)
    lookback: int = Field(default=500, ge=1, le=5000)

    model_config = {**Body.model_config, "populate_by_name": True}
    _params = field_validator("params")(_check_params)
    _tf = field_validator("timeframe")(_check_tf)


class WalkForwardQueued(BaseModel):
    id: int
    status: str


class WalkForwardOut(BaseModel):
    id: int
    status: str = Field(description="queued | running | interrupted | done | error")
    strategy_id: int
    version: int
    market_id: int
    timeframe: str
    config: dict[str, Any] = Field(
        description="from, to, mode, train and test (ms), split, trials per window, "
        "and study: objectives, sampler, prune, seed, fixed params, cash, fees, lookback"
    )
    metrics: dict[str, Any] | None = Field(
        default=None,
        description="the stitched out-of-sample curve's: return_pct, max_drawdown_pct, sharpe, "
        "sortino, profit_factor, win_rate, trade_count, final_equity, candles, wfe",
    )
    result: dict[str, Any] | None = Field(
        default=None,
        description="the detail only: `tradewind walkforward --json`'s document (mode, objective, "
        "cash, windows, oos_return_pct, oos_annualised_pct, is_annualised_pct, wfe, oos_equity, is_equity), the "
        "out-of-sample trades (with their window) and the range of candles it ran over",
    )
    error: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None


class WalkForwardPage(BaseModel):
    items: list[WalkForwardOut]
    next_before_id: int | None


def status_of(row: WalkForwardRun) -> str:
    return "interrupted" if stale(row) else row.status


def out(row: WalkForwardRun, detail: bool = True) -> WalkForwardOut:
    result = row.result or {}
    return WalkForwardOut(
        id=row.id,
        status=status_of(row),
        strategy_id=row.strategy_id,
        version=row.version,
        market_id=row.market_id,
        timeframe=row.timeframe,
        config=row.config or {},
        metrics=result.get("metrics"),
        result=result if detail and row.result is not None else None,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _windows(body: WalkForwardIn) -> dict[str, int | None]:
    """The train and test lengths (ms) the mode needs; a 422 naming the field that is missing or wrong."""
    if body.mode == "split":
        if body.split is None:
            raise ApiError(422, "give the train share of the candles, e.g. 0.7", field="split")
        for name in ("train", "test"):
            if getattr(body, name) is not None:
                raise ApiError(422, "not with mode split", field=name)
        return {"train": None, "test": None}
    if body.split is not None:
        raise ApiError(422, f"only with mode split, not {body.mode}", field="split")
    spans: dict[str, int | None] = {}
    for name in ("train", "test"):
        try:
            spans[name] = wf.parse_span(getattr(body, name) or "")
        except wf.WalkForwardError:
            raise ApiError(
                422, f"give a length such as 30d, 12h, 90m or 2w (mode {body.mode})", field=name
            ) from None
        if spans[name] > MAX_SPAN_MS:  # type: ignore[operator]
            raise ApiError(422, "at most 100 years", field=name)
    return spans


async def _start(st: StateDep, row: WalkForwardRun) -> None:
    if st.nc is None:
        row.status, row.error = "error", NO_WORKER
        return
    try:
        await st.nc.request(
            subjects.WALKFORWARD_START, m.encode(m.StartWalkForward(walkforward_id=row.id)), timeout=5
        )
    except (NatsError, TimeoutError):
        log.warning("walk-forward %s: no backtest worker answered", row.id)
        row.status, row.error = "error", NO_WORKER


@router.post("", status_code=202, response_model=WalkForwardQueued)
async def create(body: WalkForwardIn, repo: OwnedDep, st: StateDep) -> WalkForwardQueued:
    """Start a walk-forward analysis of the strategy's latest version over the market's stored candles in
    [from, to): its declared parameters optimised on each train window, the best run on the test window after
    it; poll GET /api/walkforwards/{id}."""
    strategy = await repo.get(Strategy, body.strategy_id)
    if strategy is None:
        raise ApiError(422, "no such strategy", field="strategy_id")
    if await repo.s.get(Market, body.market_id) is None:
        raise ApiError(422, "no such market", field="market_id")
    start, end = _ms(body.from_, "from"), _ms(body.to, "to")
    if start is not None and end is not None and end <= start:
        raise ApiError(422, "to must be after from", field="to")
    spans = _windows(body)
    if end is None:  # as a backtest: the candles stored when it is submitted (see backtests.create)
        newest = (await store.range_extent(repo.s, body.market_id, body.timeframe, start))[1]
        end = newest + tf_ms(body.timeframe) if newest is not None else int(time.time() * 1000)
    config = opt.StudyConfig(
        objectives=(body.objective,),
        sampler=body.sampler,
        prune=body.prune,
        seed=body.seed,
        fixed=dict(body.params),
        cash=body.cash,
        fee=body.fee,
        maker_fee=body.maker_fee,
        slippage=body.slippage,
        lookback=body.lookback,
    )
    spec = {
        "from": start,
        "to": end,
        "mode": body.mode,
        "train": spans["train"],
        "test": spans["test"],
        "train_text": body.train,
        "test_text": body.test,
        "split": body.split,
        "trials": body.trials,
        "study": config.as_dict(),
    }
    row = repo.add(
        WalkForwardRun(
            strategy_id=strategy.id,
            version=strategy.latest_version,
            market_id=body.market_id,
            timeframe=body.timeframe,
            config=spec,
            status="queued",
        )
    )
    await repo.s.commit()
    await _start(st, row)
    if row.status == "error":
        await repo.s.commit()
    return WalkForwardQueued(id=row.id, status=row.status)


@router.get("", response_model=WalkForwardPage)
async def list_walkforwards(repo: OwnedDep, limit: Limit = 50, before_id: Cursor = None) -> dict:
    """The user's walk-forward analyses, newest first, with their headline metrics (no windows or curves)."""
    rows = await repo.page(WalkForwardRun, limit, before_id)
    return page([out(r, detail=False).model_dump(mode="json") for r in rows], limit)


@router.get("/{walkforward_id}", response_model=WalkForwardOut)
async def get(walkforward_id: ObjectId, repo: OwnedDep) -> WalkForwardOut:
    """A walk-forward analysis: its windows, stitched curves, efficiency and out-of-sample trades."""
    row = await repo.get(WalkForwardRun, walkforward_id)
    if row is None:
        raise not_found("walk-forward")
    return out(row)
