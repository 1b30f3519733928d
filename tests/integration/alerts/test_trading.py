"""Alerts caused by trading on the simulator: fills and the daily loss limit by e-mail, a failing webhook tried
again and then shown as failed while trading goes on, and an exchange that goes quiet and comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.service import CoreService
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.storage.models import Order

from .conftest import assignment
from .receivers import WebhookReceiver, eventually

TOKEN = "987654321:AAF-trading-token-abcdefghijklmnopq"


class FlipWorker:
    """A stand-in eval worker (the real one is tested in eval/): long on even minutes, short on odd ones, so
    every candle of the fast simulator trades."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(subjects.EVAL_RUN, queue=subjects.EVAL_QUEUE, cb=self.on)

    async def on(self, msg: Any) -> None:
        req = m.decode(msg.data, m.EvalRequest)
        pos = "long" if (req.candle_time // 60_000) % 2 == 0 else "short"
        outs = [m.EvalOutcome(assignment_id=j.assignment_id, status="ok", position=pos) for j in req.jobs]
        await msg.respond(m.encode(m.EvalReply(outcomes=outs, worker="flip")))


class Trading:
    def __init__(self, settings: Any, nc: Any, sf: Any, box: Any) -> None:
        self.settings, self.nc, self.sf, self.box = settings, nc, sf, box
        self.exchange: ExchangeService | None = None
        self.core: CoreService | None = None

    async def start(self, settings: Any = None) -> None:
        """Core and the sim exchange (start them once the assignments exist: core reads them at start)."""
        st = settings or self.settings
        await FlipWorker(self.nc).start()
        self.core = CoreService(st, self.nc, self.nc.jetstream(), self.sf)
        await self.core.start()
        await self.start_exchange(st)

    async def start_exchange(self, settings: Any = None) -> None:
        st = settings or self.settings
        self.exchange = ExchangeService(
            st, SimAdapter(st, self.sf), self.nc, self.nc.jetstream(), self.sf, self.box
        )
        await self.exchange.start()

    async def stop_exchange(self) -> None:
        if self.exchange is not None:
            await self.exchange.stop()
            self.exchange = None

    async def filled(self) -> int:
        async with self.sf() as s:
            return (
                await s.execute(select(func.count()).select_from(Order).where(Order.status == "filled"))
            ).scalar_one()

    async def stop(self) -> None:
        if self.core is not None:
            await self.core.stop()
        await self.stop_exchange()


@pytest.fixture
async def trading(settings, nc, sf, box) -> AsyncIterator[Trading]:  # type: ignore[no-untyped-def]
    t = Trading(settings, nc, sf, box)
    yield t
    await t.stop()


async def test_fills_and_the_daily_loss_limit_arrive_by_email(api, alerts, smtp, trading, settings) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("eve@example.com")
    r = await c.post(
        "/api/alerts/channels",
        json={"kind": "email", "to": "eve@example.com", "events": ["fill", "loss_limit"]},
    )
    assert r.status_code == 201, r.text
    a = await assignment(c, daily_loss_limit="1")
    # 1% fees and 0.5% slippage each way: a round trip loses far more than the limit of 1 USD
    await trading.start(settings.model_copy(update={"sim_fee": "0.01", "sim_slippage_bps": "50"}))

    def subjects_() -> list[str]:
        return [str(msg["Subject"]) for msg in smtp.messages]

    await eventually(
        lambda: any("Daily loss limit reached on Paper" in s for s in subjects_()),
        timeout=60,
        what="the loss limit e-mail",
    )
    buys = [s for s in subjects_() if s.startswith("[tradewind] Filled: buy ")]
    assert buys and all(" BTC at " in s and s.endswith(" USD") for s in buys)
    await eventually(
        lambda: any(s.startswith("[tradewind] Filled: sell ") for s in subjects_()), what="the sell"
    )
    loss = next(msg for msg in smtp.messages if "Daily loss limit" in str(msg["Subject"]))
    assert "1 assignment(s) paused" in loss.get_content() and loss["To"] == "eve@example.com"
    paused = (await c.get(f"/api/assignments/{a['id']}")).json()
    assert paused["enabled"] is False and paused["paused_reason"].startswith("daily loss limit reached")
    assert len([s for s in subjects_() if "Daily loss limit" in s]) == 1  # once, not after every later fill


async def test_a_failing_webhook_is_retried_then_shown_failed_while_trading_and_other_channels_go_on(  # type: ignore[no-untyped-def]
    api, alerts, webhook, telegram, trading, nc
) -> None:
    webhook.status = 500
    telegram.tokens.add(TOKEN)
    telegram.chats.add("99")
    c = await api.user("fay@example.com")
    me = (await c.get("/api/auth/me")).json()["id"]
    failures: list[m.AlertFailedEvent] = []

    async def hear(msg: Any) -> None:
        ev = m.decode_user_event(msg.data)
        if isinstance(ev, m.AlertFailedEvent):
            failures.append(ev)

    await nc.subscribe(subjects.user_events(me), cb=hear)
    hook = (
        await c.post(
            "/api/alerts/channels", json={"kind": "webhook", "url": webhook.url(), "events": ["fill"]}
        )
    ).json()
    await c.post(
        "/api/alerts/channels",
        json={"kind": "telegram", "bot_token": TOKEN, "chat_id": "99", "events": ["fill"]},
    )
    await assignment(c)
    await trading.start()

    async def failed() -> bool:
        ch = (await c.get(f"/api/alerts/channels/{hook['id']}")).json()
        return ch["status"] == "failing" and ch["failed"] >= 1

    await eventually(failed, timeout=60, what="the webhook shown as failing")
    ch = (await c.get(f"/api/alerts/channels/{hook['id']}")).json()
    assert ch["last_attempts"] == 3 and ch["last_error"].startswith(
        f"http://127.0.0.1:{webhook.port}/… answered HTTP 500"
    )
    assert "k3y-in-the-path" not in ch["last_error"]
    first = webhook.received[0].headers["X-Tradewind-Delivery"]
    assert [r.headers["X-Tradewind-Delivery"] for r in webhook.received[:3]] == [
        first
    ] * 3  # the same alert, 3 tries
    log = (await c.get(f"/api/alerts/channels/{hook['id']}/deliveries")).json()["items"]
    assert any(d["status"] == "failed" and d["attempts"] == 3 and "HTTP 500" in d["error"] for d in log)
    await eventually(lambda: failures, what="the failure told to the open app")
    assert failures[0].channel_id == hook["id"] and "HTTP 500" in (failures[0].error or "")

    # Trading went on meanwhile and goes on, and the Telegram channel got its fills.
    before = await trading.filled()

    async def more() -> bool:
        return await trading.filled() >= before + 3

    await eventually(more, timeout=60, what="more fills after the failures")
    assert any(msg["text"].startswith("Filled: ") for msg in telegram.messages)

    webhook.status = 200  # the endpoint is back: the next alerts arrive and the channel is well again

    async def recovered() -> bool:
        return (await c.get(f"/api/alerts/channels/{hook['id']}")).json()["status"] == "ok"

    await eventually(recovered, timeout=60, what="the webhook well again")


async def test_an_exchange_that_goes_quiet_is_reported_and_so_is_its_return(
    api, alerts, webhook, trading
) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("gus@example.com")
    await c.post(
        "/api/alerts/channels", json={"kind": "webhook", "url": webhook.url(), "events": ["exchange"]}
    )
    other = await WebhookReceiver().start()
    try:
        outsider = await api.user("hal@example.com")  # no account and no assignment on sim: not told
        await outsider.post(
            "/api/alerts/channels", json={"kind": "webhook", "url": other.url(), "events": ["exchange"]}
        )
        await c.post("/api/traders", json={"name": "Paper", "exchange": "sim", "paper": True})
        await trading.start_exchange()
        await eventually(lambda: "sim" in alerts.watch.last, what="market data seen")
        await trading.stop_exchange()

        await eventually(lambda: webhook.events("exchange"), what="the disconnection")
        down = webhook.events("exchange")[0]
        assert down["title"] == "Exchange sim disconnected" and down["data"]["connected"] is False
        await trading.start_exchange()
        await eventually(lambda: len(webhook.events("exchange")) == 2, what="the return")
        assert webhook.events("exchange")[1]["title"] == "Exchange sim is back"
        assert other.received == []
    finally:
        await other.stop()
