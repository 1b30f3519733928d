"""`/api/stream`: a WebSocket carrying the user's own events and the public candles, as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.web.deps import authenticate

router = APIRouter()
log = logging.getLogger(__name__)
MAX_QUEUE = 1000


@router.websocket("/api/stream")
async def stream(ws: WebSocket) -> None:
    """Authenticated by the session cookie or a ``token`` query parameter. A client may send
    ``{"markets": [market ids]}`` to receive only those markets' candles (default: all)."""
    st = ws.app.state.tw
    async with st.sf() as s:
        auth = await authenticate(ws, s, token=ws.query_params.get("token"))  # type: ignore[arg-type]
    if auth is None:
        await ws.close(code=4401, reason="log in first")
        return
    await ws.accept()
    if st.nc is None:
        await ws.send_json({"type": "error", "detail": "live updates need the message bus"})
        await ws.close()
        return
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUE)
    wanted: dict[str, set[str] | None] = {"symbols": None}

    def put(event: dict[str, Any]) -> None:
        if queue.full():  # a slow browser loses old updates, never blocks the bus
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(event)

    async def on_user(msg: Any) -> None:
        ev = m.decode(msg.data, m.UserEvent)
        put({"type": ev.kind, **ev.data})

    async def on_candle(msg: Any) -> None:
        c = m.decode(msg.data, m.Candle)
        symbols = wanted["symbols"]
        if symbols is not None and f"{c.exchange}:{c.symbol}" not in symbols:
            return
        put({"type": "candle", "exchange": c.exchange, "symbol": c.symbol, "tf": c.tf, "time": c.time, "open": c.open,
             "high": c.high, "low": c.low, "close": c.close, "volume": c.volume})  # fmt: skip

    subs = [
        await st.nc.subscribe(subjects.user_events(auth.user.id), cb=on_user),
        await st.nc.subscribe(subjects.CORE_CANDLES_ALL, cb=on_candle),
    ]

    async def sender() -> None:
        while True:
            await ws.send_json(await queue.get())

    async def receiver() -> None:
        from tradewind.storage.models import Market

        while True:
            text = await ws.receive_text()
            try:
                req = json.loads(text)
                ids = [int(x) for x in req.get("markets", [])][:100]
            except (ValueError, TypeError, AttributeError):
                await ws.send_json({"type": "error", "detail": 'send {"markets": [market ids]}'})
                continue
            async with st.sf() as s:
                rows = [await s.get(Market, i) for i in ids]
            wanted["symbols"] = {f"{r.exchange}:{r.symbol}" for r in rows if r is not None} if ids else None

    tasks = [asyncio.create_task(sender()), asyncio.create_task(receiver())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except WebSocketDisconnect:
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
