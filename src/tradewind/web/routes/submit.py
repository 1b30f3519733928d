"""What a backtest, an optimisation (study) and a walk-forward share when one is submitted: the run fields of
the request, the checks before it is queued, and asking a backtest worker to start it."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Annotated, Any

import msgspec
from nats.errors import Error as NatsError
from pydantic import BaseModel, Field, field_validator

from tradewind.backtest import optimize as opt
from tradewind.bus import messages as m
from tradewind.domain import tf_ms
from tradewind.storage import candles as store
from tradewind.storage.models import Backtest, Market, Strategy, Study, WalkForwardRun
from tradewind.storage.repositories import Owned
from tradewind.web.deps import WebState
from tradewind.web.errors import ApiError
from tradewind.web.schemas import MAX_ID, ParamValue, Request, _check_params, _check_tf

log = logging.getLogger(__name__)
NO_WORKER = "no backtest worker answered; start an eval process (tradewind run eval) and try again"
MAX_MS = 253_402_300_799_999  # 9999-12-31
Fee = Annotated[float, Field(ge=0, le=0.1, allow_inf_nan=False)]
Run = Backtest | Study | WalkForwardRun


class RunIn(Request):
    """The fields every run takes: the strategy, the market's candles it runs over, and the costs."""

    strategy_id: int = Field(ge=1, le=MAX_ID, strict=True)
    market_id: int = Field(ge=1, le=MAX_ID, strict=True)
    timeframe: str = Field(default="1h", max_length=4)
    from_: dt.datetime | int | None = Field(
        default=None, alias="from", description="start (ISO 8601 or epoch ms)"
    )
    to: dt.datetime | int | None = Field(default=None, description="end, exclusive (ISO 8601 or epoch ms)")
    params: dict[str, ParamValue] = Field(default_factory=dict)
    cash: float = Field(default=10_000.0, gt=0, le=1e12, allow_inf_nan=False)
    fee: Fee = 0.001
    maker_fee: Fee | None = None
    slippage: float = Field(default=0.0, ge=0, le=0.1, allow_inf_nan=False)
    lookback: int = Field(default=500, ge=1, le=5000)

    model_config = {**Request.model_config, "populate_by_name": True}
    _params = field_validator("params")(_check_params)
    _tf = field_validator("timeframe")(_check_tf)

    def costs(self) -> dict[str, Any]:
        """The cash, fees, slippage and lookback, as a run's config and ``opt.StudyConfig`` name them."""
        return {
            "cash": self.cash,
            "fee": self.fee,
            "maker_fee": self.maker_fee,
            "slippage": self.slippage,
            "lookback": self.lookback,
        }

    def span(self) -> tuple[int | None, int | None]:
        """``from`` and ``to`` in epoch ms (None: not given); a 422 when ``to`` is not after ``from``."""
        start, end = _ms(self.from_, "from"), _ms(self.to, "to")
        if start is not None and end is not None and end <= start:
            raise ApiError(422, "to must be after from", field="to")
        return start, end


class SearchIn(RunIn):
    """A run that searches the strategy's declared parameters: a study, or a walk-forward's train windows."""

    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="parameters held fixed (not searched)"
    )
    prune: bool = True
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, strict=True)

    def study(self, objectives: tuple[str, ...], sampler: str, fixed: dict[str, Any]) -> opt.StudyConfig:
        """What the search optimises, and how: each trial a backtest at this request's costs."""
        return opt.StudyConfig(
            objectives=objectives,
            sampler=sampler,
            prune=self.prune,
            seed=self.seed,
            fixed=fixed,
            **self.costs(),
        )


class Queued(BaseModel):
    id: int
    status: str


class RunHead(BaseModel):
    """What every run's answer starts with."""

    id: int
    status: str
    strategy_id: int
    version: int
    market_id: int
    timeframe: str


def _ms(value: dt.datetime | int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = int(value.timestamp() * 1000)
    if not 0 <= value <= MAX_MS:
        raise ApiError(422, "a time between 1970 and 9999", field=field)
    return value


async def strategy_of(repo: Owned, body: RunIn) -> Strategy:
    """The user's strategy the run names, its market checked too; a 422 naming the field when either is not
    there."""
    strategy = await repo.get(Strategy, body.strategy_id)
    if strategy is None:
        raise ApiError(422, "no such strategy", field="strategy_id")
    if await repo.s.get(Market, body.market_id) is None:
        raise ApiError(422, "no such market", field="market_id")
    return strategy


def columns(strategy: Strategy, body: RunIn) -> dict[str, Any]:
    """A new run's columns from its request: the strategy's latest version, on the market and timeframe, queued."""
    return {
        "strategy_id": strategy.id,
        "version": strategy.latest_version,
        "market_id": body.market_id,
        "timeframe": body.timeframe,
        "status": "queued",
    }


async def end_of_data(repo: Owned, body: RunIn, start: int | None) -> int:
    """The end of a run asked for up to now: the candles stored when it is submitted, however long it queues
    (and a run submitted later sees the ones that arrived since). Now in the market's time: the end of its
    newest candle (the simulator's clock runs ahead of the wall clock); the wall clock when it has none yet."""
    newest = (await store.range_extent(repo.s, body.market_id, body.timeframe, start))[1]
    return newest + tf_ms(body.timeframe) if newest is not None else int(time.time() * 1000)


async def start(repo: Owned, st: WebState, row: Run, subject: str, msg: msgspec.Struct, what: str) -> None:
    """Ask a backtest worker to start ``row`` (queued and committed): it answers at once, then works. When
    none answers, ``row`` is failed with ``NO_WORKER``, and saved so."""
    if st.nc is None:
        row.status, row.error = "error", NO_WORKER
    else:
        try:
            await st.nc.request(subject, m.encode(msg), timeout=5)
        except (NatsError, TimeoutError):  # no responders, no answer in time, or the bus is down
            log.warning("%s %s: no backtest worker answered", what, row.id)
            row.status, row.error = "error", NO_WORKER
    if row.status == "error":
        await repo.s.commit()
