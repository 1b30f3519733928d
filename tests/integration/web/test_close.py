"""Close position, flatten all and the kill switch's flatten, over HTTP: the web asks core on a real NATS, core
(a real Closer on its trade desk) sells through a fake exchange; the web never places an order itself."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, update

from tests.integration.core.test_trade import FakeExchange
from tradewind.bus import subjects
from tradewind.config import Settings
from tradewind.core.close import Closer
from tradewind.core.decide import AssignmentIndex
from tradewind.core.trade import TradeDesk
from tradewind.storage.models import Assignment, Order

from .test_resources import setup_objects


@pytest.fixture
async def core(tmp_path, sf, nats_client):  # type: ignore[no-untyped-def]
    """Core's part: the close requests answered by a Closer, orders placed on a fake exchange."""
    exchange = FakeExchange(
        nats_client, outcome="timeout"
    )  # placed, answer never comes: the sell stays on its way
    await exchange.start()
    index = AssignmentIndex()
    desk = TradeDesk(Settings(data_dir=tmp_path), nats_client, sf, index)
    desk.order_timeout_s = 0.2
    sub = await nats_client.subscribe(
        subjects.CORE_CLOSE, queue=subjects.CORE_QUEUE, cb=Closer(desk).on_request
    )
    yield exchange
    await sub.unsubscribe()
    await desk.drain()


async def hold(sf, assignment_id: int, qty: str = "0.5") -> None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        await s.execute(
            update(Assignment)
            .where(Assignment.id == assignment_id)
            .values(position_qty=Decimal(qty), entry_cost=Decimal(qty) * 100)
        )
        await s.commit()


async def sells(sf) -> list[Order]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        return list((await s.execute(select(Order).where(Order.side == "sell"))).scalars())


async def test_closing_a_paused_position_sells_it_once_however_often_asked(api_bus, sf, core) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("closer@example.com")
    a = (await setup_objects(c))["assignments"]
    await hold(sf, a)
    assert (await c.post(f"/api/assignments/{a}/pause")).status_code == 200
    first = await c.post(f"/api/assignments/{a}/close")
    assert first.status_code == 200, first.text
    body = first.json()
    assert (
        body["status"] == "placed"
        and body["amount"] == "0.5"
        and body["client_order_id"].startswith(f"tw-{a}-c")
    )
    again = await c.post(f"/api/assignments/{a}/close")  # a double click, a retry
    assert again.status_code == 200 and again.json()["status"] == "closing"
    assert again.json()["client_order_id"] == body["client_order_id"]
    (sell,) = await sells(sf)
    assert (sell.client_order_id, sell.exit_reason, sell.amount) == (
        body["client_order_id"],
        "manual",
        Decimal("0.5"),
    )
    assert core.calls == 1
    audit = [e for e in (await c.get("/api/audit")).json()["items"] if e["action"] == "position.close"]
    assert (
        len(audit) == 2 and audit[-1]["detail"]["positions"][0]["client_order_id"] == body["client_order_id"]
    )


async def test_someone_elses_position_is_a_404_and_nothing_is_sold(api_bus, sf, core) -> None:  # type: ignore[no-untyped-def]
    alice = await api_bus.user("alice@example.com")
    mallory = await api_bus.user("mallory@example.com")
    a = (await setup_objects(alice))["assignments"]
    await hold(sf, a)
    r = await mallory.post(f"/api/assignments/{a}/close")
    assert r.status_code == 404 and r.json()["detail"] == "assignment not found"
    r = await mallory.post("/api/flatten")
    assert r.status_code == 409 and "nothing to close" in r.json()["detail"]
    r = await mallory.post("/api/killswitch?flatten=true")
    assert r.status_code == 200 and r.json()["closed"] == []
    assert await sells(sf) == [] and core.calls == 0
    assert (await alice.get(f"/api/assignments/{a}")).json()["position_qty"] == "0.5"


async def test_nothing_to_close_is_a_409(api_bus, sf, core) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("flat@example.com")
    a = (await setup_objects(c))["assignments"]
    r = await c.post(f"/api/assignments/{a}/close")
    assert r.status_code == 409 and r.json()["detail"] == "nothing to close: this assignment holds nothing"
    assert (await c.post("/api/flatten")).status_code == 409
    signals = (
        await c.post(
            "/api/assignments",
            json={"strategy_id": (await c.get("/api/strategies")).json()["items"][0]["id"], "market_id": 1},
        )
    ).json()
    r = await c.post(f"/api/assignments/{signals['id']}/close")
    assert r.status_code == 409 and "no trading account" in r.json()["detail"]
    assert (await c.post("/api/assignments/2147483647/close")).status_code == 404
    assert (await c.post("/api/assignments/0/close")).status_code == 422
    assert core.calls == 0


async def test_flatten_all_and_the_kill_switchs_flatten_close_every_position(api_bus, sf, core) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("flatten@example.com")
    first = (await setup_objects(c))["assignments"]
    second = (await setup_objects(c))["assignments"]
    third = (await setup_objects(c))["assignments"]
    await hold(sf, first)
    await hold(sf, second, "0.25")
    r = await c.post("/api/flatten")
    assert r.status_code == 200, r.text
    assert sorted((x["assignment_id"], x["status"], x["amount"]) for x in r.json()["closed"]) == [
        (first, "placed", "0.5"),
        (second, "placed", "0.25"),
    ]
    await hold(sf, third, "2")
    r = await c.post("/api/killswitch", params={"flatten": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["killed"] is True and body["paused_assignments"] == 3 and "flatten_error" not in body
    statuses = {x["assignment_id"]: x["status"] for x in body["closed"]}
    assert statuses == {
        first: "closing",
        second: "closing",
        third: "placed",
    }  # the first two are on their way
    assert len(await sells(sf)) == 3 and core.calls == 3
    actions = [e["action"] for e in (await c.get("/api/audit")).json()["items"]]
    assert actions[:2] == ["positions.flatten", "killswitch.on"] and "positions.flatten" in actions[2:]


async def test_without_core_nothing_is_sold_and_the_answer_says_so(api_bus, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("nocore@example.com")
    a = (await setup_objects(c))["assignments"]
    await hold(sf, a)
    r = await c.post(f"/api/assignments/{a}/close")
    assert r.status_code == 503 and "core is not reachable" in r.json()["detail"]
    r = await c.post("/api/killswitch?flatten=true")
    assert (
        r.status_code == 200
        and r.json()["killed"] is True
        and "core is not reachable" in r.json()["flatten_error"]
    )
    assert await sells(sf) == []
