"""Walk-forward analyses: start one on the backtest workers (``tradewind walkforward``'s analysis), read its
windows, stitched in-sample and out-of-sample curves and efficiency."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from tradewind.backtest import walkforward as wf
from tradewind.backtest.studies import stale
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import WalkForwardRun
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, found, page
from tradewind.web.errors import ApiError
from tradewind.web.routes import submit
from tradewind.web.routes.studies import Objective
from tradewind.web.routes.submit import Queued, RunHead, SearchIn
from tradewind.web.schemas import Page

router = APIRouter(prefix="/api/walkforwards", tags=["walkforwards"])
MAX_TRIALS_PER_WINDOW = 500
MAX_SPAN_MS = 100 * wf.YEAR_MS


class WalkForwardIn(SearchIn):
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


class WalkForwardQueued(Queued):
    pass


class WalkForwardOut(RunHead):
    status: str = Field(description="queued | running | interrupted | done | error")
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


class WalkForwardPage(Page):
    items: list[WalkForwardOut]


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
            span = wf.parse_span(getattr(body, name) or "")
        except wf.WalkForwardError:
            raise ApiError(
                422, f"give a length such as 30d, 12h, 90m or 2w (mode {body.mode})", field=name
            ) from None
        if span > MAX_SPAN_MS:
            raise ApiError(422, "at most 100 years", field=name)
        spans[name] = span
    return spans


@router.post("", status_code=202, response_model=WalkForwardQueued)
async def create(body: WalkForwardIn, repo: OwnedDep, st: StateDep) -> WalkForwardQueued:
    """Start a walk-forward analysis of the strategy's latest version over the market's stored candles in
    [from, to): its declared parameters optimised on each train window, the best run on the test window after
    it; poll GET /api/walkforwards/{id}."""
    strategy = await submit.strategy_of(repo, body)
    start, end = body.span()
    spans = _windows(body)
    if end is None:
        end = await submit.end_of_data(repo, body, start)
    config = body.study((body.objective,), body.sampler, dict(body.params))
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
    row = repo.add(WalkForwardRun(**submit.columns(strategy, body), config=spec))
    await repo.s.commit()
    await submit.start(
        repo, st, row, subjects.WALKFORWARD_START, m.StartWalkForward(walkforward_id=row.id), "walk-forward"
    )
    return WalkForwardQueued(id=row.id, status=row.status)


@router.get("", response_model=WalkForwardPage)
async def list_walkforwards(repo: OwnedDep, limit: Limit = 50, before_id: Cursor = None) -> dict[str, Any]:
    """The user's walk-forward analyses, newest first, with their headline metrics (no windows or curves)."""
    rows = await repo.page(WalkForwardRun, limit, before_id)
    return page([out(r, detail=False).model_dump(mode="json") for r in rows], limit)


@router.get("/{walkforward_id}", response_model=WalkForwardOut)
async def get(walkforward_id: ObjectId, repo: OwnedDep) -> WalkForwardOut:
    """A walk-forward analysis: its windows, stitched curves, efficiency and out-of-sample trades."""
    row = found(await repo.get(WalkForwardRun, walkforward_id), "walk-forward")
    return out(row)
