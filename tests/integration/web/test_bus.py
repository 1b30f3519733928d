"""Routes that talk to other components over a real NATS: balances, key checks, reloads, the kill switch."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import Assignment, Order

from .test_resources import GOOD, setup_objects


async def test_balances_come_from_the_accounts_exchange(api_bus, nats_client) -> None:  # type: ignore[no-untyped-def]
    asked: list[int] = []

    async def balance(msg) -> None:  # type: ignore[no-untyped-def]
        req = m.decode(msg.data, m.BalanceRequest)
        asked.append(req.trader_id)
        await msg.respond(m.encode(m.BalanceReply(balances={"USD": "10000", "BTC": "0.5"})))

    await nats_client.subscribe(subjects.exchange_balance("sim"), cb=balance)
    c = await api_bus.user("bal@example.com")
    t = (await c.post("/api/traders", json={"name": "paper", "exchange": "sim", "paper": True})).json()
    r = await c.get(f"/api/traders/{t['id']}/balances")
    assert r.status_code == 200 and r.json() == {
        "trader_id": t["id"],
        "balances": {"USD": "10000", "BTC": "0.5"},
    }
    assert asked == [t["id"]]


async def test_an_exchange_error_on_balances_is_a_502_and_no_adapter_a_503(api_bus, nats_client) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("bal2@example.com")
    t = (await c.post("/api/traders", json={"name": "paper", "exchange": "sim", "paper": True})).json()
    r = await c.get(f"/api/traders/{t['id']}/balances")
    assert r.status_code == 503 and r.json()["detail"].startswith("exchange sim is not reachable")

    async def failing(msg) -> None:  # type: ignore[no-untyped-def]
        await msg.respond(m.encode(m.BalanceReply(error="rate limited")))

    await nats_client.subscribe(subjects.exchange_balance("sim"), cb=failing)
    r = await c.get(f"/api/traders/{t['id']}/balances")
    assert r.status_code == 502 and "rate limited" in r.json()["detail"]


async def test_every_assignment_change_tells_core_to_reload(api_bus, nats_client) -> None:  # type: ignore[no-untyped-def]
    seen: list[int | None] = []

    async def changed(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(m.decode(msg.data, m.AssignmentsChanged).assignment_id)

    await nats_client.subscribe(subjects.ASSIGNMENTS_CHANGED, cb=changed)
    c = await api_bus.user("reload@example.com")
    ids = await setup_objects(c)
    a = ids["assignments"]
    await c.patch(f"/api/assignments/{a}", json={"allocation": "250"})
    await c.post(f"/api/assignments/{a}/pause")
    await c.post(f"/api/assignments/{a}/resume")
    await c.delete(f"/api/assignments/{a}")
    await nats_client.flush()
    await asyncio.sleep(0.1)
    assert seen == [a] * 5


async def test_re_enabling_clears_the_pause_reason(api_bus) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("resume@example.com")
    a = (await setup_objects(c))["assignments"]
    paused = (await c.post(f"/api/assignments/{a}/pause")).json()
    assert paused["enabled"] is False and paused["paused_reason"] == "paused by you"
    resumed = (await c.patch(f"/api/assignments/{a}", json={"enabled": True})).json()
    assert resumed["enabled"] is True and resumed["paused_reason"] is None


async def test_the_kill_switch_cancels_open_orders_and_holds_until_released(api_bus, nats_client, sf) -> None:  # type: ignore[no-untyped-def]
    cancels: list[m.CancelOrder] = []

    async def cancel(msg) -> None:  # type: ignore[no-untyped-def]
        cancels.append(m.decode(msg.data, m.CancelOrder))
        await msg.respond(b"")

    await nats_client.subscribe(subjects.exchange_cancel("sim"), cb=cancel)
    c = await api_bus.user("panic@example.com")
    other = await api_bus.user("calm@example.com")
    ids = await setup_objects(c)
    other_ids = await setup_objects(other)
    me = (await c.get("/api/auth/me")).json()
    other_me = (await other.get("/api/auth/me")).json()
    async with sf() as s:
        for owner, trader, coid, status, kind in [
            (me["id"], ids["traders"], "open-1", "open", "market"),
            (me["id"], ids["traders"], "done-1", "filled", "market"),
            # a position's protective orders and a resting limit entry come down too
            (me["id"], ids["traders"], "open-1-p0", "open", "take_profit"),
            (me["id"], ids["traders"], "open-1-r0", "open", "trailing_stop"),
            (me["id"], ids["traders"], "entry-2", "open", "limit"),
            (other_me["id"], other_ids["traders"], "theirs-1", "open", "stop"),
        ]:
            s.add(
                Order(
                    owner_id=owner,
                    trader_id=trader,
                    client_order_id=coid,
                    exchange="sim",
                    symbol="BTC/USD",
                    side="buy",
                    amount=Decimal("0.1"),
                    status=status,
                    type=kind,
                )
            )
        await s.commit()

    r = await c.post("/api/killswitch")
    assert r.json() == {"killed": True, "paused_assignments": 1, "cancel_requests": 4}
    assert sorted(x.client_order_id for x in cancels) == ["entry-2", "open-1", "open-1-p0", "open-1-r0"]
    assert {x.owner_id for x in cancels} == {me["id"]}  # each cancel names whose order it is
    assert (await other.get(f"/api/assignments/{other_ids['assignments']}")).json()["enabled"] is True

    a = ids["assignments"]
    r = await c.post(f"/api/assignments/{a}/resume")
    assert r.status_code == 409 and "kill switch" in r.json()["detail"]
    s2 = (await c.post("/api/strategies", json={"name": "new", "code": GOOD})).json()
    new = (await c.post("/api/assignments", json={"strategy_id": s2["id"], "market_id": 1})).json()
    assert new["enabled"] is False and new["paused_reason"] == "kill switch"
    assert (await c.delete("/api/killswitch")).json() == {"killed": False}
    assert (await c.post(f"/api/assignments/{a}/resume")).json()["enabled"] is True
    actions = [e["action"] for e in (await c.get("/api/audit")).json()["items"]]
    assert actions[:2] == ["killswitch.off", "killswitch.on"]


async def test_health_reports_the_database_and_the_bus(api, api_bus) -> None:  # type: ignore[no-untyped-def]
    async with api_bus.client() as c:
        assert (await c.get("/api/health")).json() == {"status": "ok", "database": "ok", "nats": "ok"}
    async with api.client() as c:
        assert (await c.get("/api/health")).json()["nats"] == "disabled"


async def test_an_account_or_strategy_still_holding_something_cannot_be_deleted(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("holder@example.com")
    ids = await setup_objects(c)
    me = (await c.get("/api/auth/me")).json()
    async with sf() as s:
        s.add(
            Order(
                owner_id=me["id"],
                trader_id=ids["traders"],
                client_order_id="still-open",
                exchange="sim",
                symbol="BTC/USD",
                side="buy",
                amount=Decimal("0.1"),
                status="open",
            )
        )
        a = await s.get(Assignment, ids["assignments"])
        a.position_qty = Decimal("0.1")
        await s.commit()
    r = await c.delete(f"/api/traders/{ids['traders']}")
    assert r.status_code == 409 and "open orders" in r.json()["detail"]
    r = await c.delete(f"/api/strategies/{ids['strategies']}")
    assert r.status_code == 409 and "position" in r.json()["detail"]
    async with sf() as s:
        o = (await s.execute(select(Order).where(Order.client_order_id == "still-open"))).scalar_one()
        o.status = "canceled"
        await s.commit()
    r = await c.delete(f"/api/traders/{ids['traders']}")
    assert r.status_code == 409 and "position" in r.json()["detail"]
    async with sf() as s:
        (await s.get(Assignment, ids["assignments"])).position_qty = Decimal(0)
        await s.commit()
    assert (await c.delete(f"/api/strategies/{ids['strategies']}")).status_code == 204
    assert (await c.delete(f"/api/traders/{ids['traders']}")).status_code == 204
    assert (
        await c.get(f"/api/assignments/{ids['assignments']}")
    ).status_code == 404  # went with its strategy


async def test_every_account_change_tells_core_and_the_exchanges(api_bus, nats_client) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, bool]] = []

    async def changed(msg) -> None:  # type: ignore[no-untyped-def]
        body = m.decode(msg.data, m.TraderChanged)
        seen.append((body.trader_id, body.deleted))

    await nats_client.subscribe(subjects.TRADERS_CHANGED, cb=changed)
    c = await api_bus.user("limits@example.com")
    t = (await setup_objects(c))["traders"]
    for limits in ({"max_order_notional": "2"}, {"max_position": "10"}, {"daily_loss_limit": None}):
        assert (await c.patch(f"/api/traders/{t}", json=limits)).status_code == 200
    await nats_client.flush()
    await asyncio.sleep(0.1)
    assert seen == [(t, False)] * 3


async def test_deleting_an_account_pauses_and_detaches_its_assignments(api_bus, nats_client) -> None:  # type: ignore[no-untyped-def]
    reloads: list[int | None] = []

    async def on_reload(msg) -> None:  # type: ignore[no-untyped-def]
        reloads.append(m.decode(msg.data, m.AssignmentsChanged).assignment_id)

    await nats_client.subscribe(subjects.ASSIGNMENTS_CHANGED, cb=on_reload)
    deleted: list[m.TraderChanged] = []

    async def on_trader(msg) -> None:  # type: ignore[no-untyped-def]
        deleted.append(m.decode(msg.data, m.TraderChanged))

    await nats_client.subscribe(subjects.TRADERS_CHANGED, cb=on_trader)
    c = await api_bus.user("detach@example.com")
    ids = await setup_objects(c)
    t, a = ids["traders"], ids["assignments"]
    assert (await c.delete(f"/api/traders/{t}")).status_code == 204
    after = (await c.get(f"/api/assignments/{a}")).json()
    assert after["trader_id"] is None and after["enabled"] is False
    assert "trading account was deleted" in after["paused_reason"]
    await nats_client.flush()
    await asyncio.sleep(0.1)
    assert deleted == [m.TraderChanged(trader_id=t, deleted=True)] and reloads
    # The next account gets a new id, never the deleted one.
    again = await c.post("/api/traders", json={"name": "again", "exchange": "sim", "paper": True})
    assert again.status_code == 201 and again.json()["id"] > t
