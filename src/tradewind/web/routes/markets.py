"""Markets and their candles (public market data, for logged-in users)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from tradewind.bus.messages import Bar
from tradewind.domain import TIMEFRAMES
from tradewind.storage import candles as store
from tradewind.storage.models import Market
from tradewind.web.deps import CurrentUser, ObjectId, SessionDep, found, not_found
from tradewind.web.errors import ApiError
from tradewind.web.schemas import CandleOut, MarketOut, MarketPage

router = APIRouter(prefix="/api/markets", tags=["markets"])


def out(mk: Market) -> MarketOut:
    return MarketOut(
        id=mk.id,
        exchange=mk.exchange,
        symbol=mk.symbol,
        timeframes=list(TIMEFRAMES),
        last_price=mk.last_price,
    )


@router.get("", response_model=MarketPage)
async def list_markets(s: SessionDep, _: CurrentUser) -> dict[str, Any]:
    rows = (
        await s.execute(
            select(Market).where(Market.active.is_(True)).order_by(Market.exchange, Market.symbol)
        )
    ).scalars()
    return {"items": [out(mk).model_dump() for mk in rows], "next_before_id": None}


@router.get("/{market_id}", response_model=MarketOut)
async def get(market_id: ObjectId, s: SessionDep, _: CurrentUser) -> MarketOut:
    mk = found(await s.get(Market, market_id), "market")
    return out(mk)


@router.get("/{market_id}/candles", response_model=list[CandleOut])
async def candles(
    market_id: ObjectId,
    s: SessionDep,
    _: CurrentUser,
    timeframe: Annotated[str, Query(max_length=4)] = "1m",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    before: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> Response:
    if timeframe not in TIMEFRAMES:
        raise ApiError(422, f"unknown timeframe; use one of {', '.join(TIMEFRAMES)}", field="timeframe")
    if await s.get(Market, market_id) is None:
        raise not_found("market")
    rows = await store.last_candles(s, market_id, timeframe, limit, before=before)
    # The API's largest answer (every chart asks for 300-5,000 candles), encoded straight from the rows: the
    # same JSON as list[CandleOut] (the declared response), without a model and a validation per candle.
    return Response(
        _encode([Bar(time=t, open=o, high=h, low=lo, close=c, volume=v) for t, o, h, lo, c, v in rows]),
        media_type="application/json",
    )


_encode = msgspec.json.Encoder().encode
