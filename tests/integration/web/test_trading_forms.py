"""Over HTTP: parameters checked against what the strategy declares, assignments pinned to a version or following
the latest (and a save saying which switch), an allocation above the account's value saved with a warning, each
assignment's capital in use, and why an order was smaller than asked."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import Assignment, Market, Order, StrategyVersion

from .test_numbers import post_raw
from .test_resources import GOOD

DECLARED = """params = {
  fast = {type = "int", min = 5, max = 50, default = 10, description = "the fast average"},
  k = {type = "float", min = 0.5, max = 2},
  mode = {choices = {"cross", "trend"}, default = "cross"},
  strict = {type = "bool", default = false},
}
function decide(c, params) return "long" end
"""


async def setup(c, code: str = DECLARED) -> tuple[dict, dict, int]:  # type: ignore[no-untyped-def]
    s = (await c.post("/api/strategies", json={"name": "declared", "code": code})).json()
    t = (await c.post("/api/traders", json={"name": "Paper", "exchange": "sim", "paper": True})).json()
    market = (await c.get("/api/markets")).json()["items"][0]["id"]
    return s, t, market


def error(r) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    (e,) = r.json()["errors"]
    return r.status_code, e["field"], e["message"]


async def test_a_strategy_answers_the_parameters_its_code_declares(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("declares@example.com")
    s, _, _ = await setup(c)
    assert [(d["name"], d["type"]) for d in s["declared"]] == [
        ("fast", "int"),
        ("k", "float"),
        ("mode", "choice"),
        ("strict", "bool"),
    ]
    assert s["declared"][0] == {
        "name": "fast",
        "type": "int",
        "min": 5,
        "max": 50,
        "step": None,
        "log": False,
        "choices": None,
        "default": 10,
        "description": "the fast average",
    }
    listed = (await c.get("/api/strategies")).json()["items"][0]
    versions = (await c.get(f"/api/strategies/{s['id']}/versions")).json()
    assert listed["declared"] == s["declared"] == versions[0]["declared"]
    plain = (await c.post("/api/strategies", json={"name": "plain", "code": GOOD})).json()
    assert plain["declared"] == []


async def test_parameters_the_declaration_refuses_are_a_422_naming_the_parameter(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("params@example.com")
    s, t, market = await setup(c)
    body = {"strategy_id": s["id"], "market_id": market, "trader_id": t["id"]}
    cases = [
        ({"fast": "abc"}, "params.fast", "must be a whole number from 5 to 50, got 'abc'"),
        ({"fast": 51}, "params.fast", "must be from 5 to 50, got 51"),
        ({"fast": "5..20"}, "params.fast", "takes one value, not a range"),
        ({"k": "1e400"}, "params.k", "must be a number from 0.5 to 2, got '1e400'"),
        ({"mode": "sideways"}, "params.mode", "must be one of 'cross', 'trend', got 'sideways'"),
        ({"strict": "yes"}, "params.strict", "must be true or false, got 'yes'"),
        (
            {"fsat": 10},
            "params.fsat",
            "the strategy declares no parameter 'fsat'; it declares fast, k, mode, strict",
        ),
    ]
    for params, field, message in cases:
        r = await c.post("/api/assignments", json={**body, "params": params})
        status, got_field, got = error(r)
        assert (status, got_field) == (422, field) and got.startswith(message), (params, r.text)
        assert r.json()["detail"].startswith(f"{field}: ")
    # A number too big for a double is infinite once parsed: refused before the declaration is read.
    r = await post_raw(
        c,
        "/api/assignments",
        f'{{"strategy_id": {s["id"]}, "market_id": {market}, "params": {{"fast": 1e400}}}}',
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "params.fast"
    r = await c.post(
        "/api/assignments", json={**body, "params": {"fast": 12.0, "k": 1, "mode": "trend", "strict": True}}
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["params"] == {"fast": 12, "k": 1.0, "mode": "trend", "strict": True}
    r = await c.patch(f"/api/assignments/{a['id']}", json={"params": {"fast": 4}})
    assert error(r) == (422, "params.fast", "must be from 5 to 50, got 4")
    assert (await c.get(f"/api/assignments/{a['id']}")).json()["params"]["fast"] == 12, (
        "a refused change changes nothing"
    )
    # The same rule for a backtest, a study's fixed parameters and the strategy's own defaults
    bt = {"strategy_id": s["id"], "market_id": market, "params": {"fast": "abc"}}
    assert error(await c.post("/api/backtests", json=bt))[:2] == (422, "params.fast")
    assert error(await c.post("/api/studies", json=bt))[:2] == (422, "params.fast")
    # A switch is true or false, not a number that reads as one (the fuzz test's find: prune 0 was accepted)
    ok = {"strategy_id": s["id"], "market_id": market}
    assert error(await c.post("/api/studies", json={**ok, "prune": 0}))[:2] == (422, "prune")
    assert error(await c.patch(f"/api/assignments/{a['id']}", json={"enabled": 1}))[:2] == (422, "enabled")
    r = await c.patch(f"/api/strategies/{s['id']}", json={"params": {"fast": 500}})
    assert error(r) == (422, "params.fast", "must be from 5 to 50, got 500")


async def test_a_strategy_that_declares_nothing_takes_any_parameters(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("free@example.com")
    s, _, market = await setup(c, GOOD)
    r = await c.post(
        "/api/assignments", json={"strategy_id": s["id"], "market_id": market, "params": {"fast": "abc"}}
    )
    assert r.status_code == 201 and r.json()["params"] == {"fast": "abc"}


async def test_an_assignment_pins_a_version_or_follows_the_latest(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("pins@example.com")
    s, t, market = await setup(c)
    body = {"strategy_id": s["id"], "market_id": market, "trader_id": t["id"], "params": {"fast": 20}}
    following = (await c.post("/api/assignments", json=body)).json()
    pinned = (await c.post("/api/assignments", json={**body, "pinned_version": 1})).json()
    paused = (await c.post("/api/assignments", json={**body, "enabled": False})).json()
    assert (following["pinned_version"], following["version"]) == (None, 1)
    assert (pinned["pinned_version"], pinned["version"]) == (1, 1)
    # A new version narrows fast's range: the save says who switches, who stays, and whose parameters no longer fit.
    r = await c.patch(f"/api/strategies/{s['id']}", json={"code": DECLARED.replace("max = 50", "max = 15")})
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["version"] == 2
    switched = {x["id"]: x for x in saved["switched"]}
    assert set(switched) == {following["id"], paused["id"]} and switched[paused["id"]]["enabled"] is False
    assert all(x["version"] == 2 for x in switched.values())
    assert switched[following["id"]]["warning"] == (
        "its parameters do not fit version 2: params.fast: must be from 5 to 15, got 20"
    )
    assert [(x["id"], x["version"], x["warning"]) for x in saved["pinned"]] == [(pinned["id"], 1, None)]
    listed = {a["id"]: a for a in (await c.get("/api/assignments")).json()["items"]}
    assert listed[following["id"]]["version"] == 2 and listed[pinned["id"]]["version"] == 1
    # Following the latest again checks the parameters against it; pinning a version that does not exist is a 422.
    r = await c.patch(f"/api/assignments/{pinned['id']}", json={"pinned_version": None})
    assert error(r) == (422, "params.fast", "must be from 5 to 15, got 20")
    r = await c.patch(
        f"/api/assignments/{pinned['id']}", json={"pinned_version": None, "params": {"fast": 12}}
    )
    assert r.status_code == 200 and (r.json()["pinned_version"], r.json()["version"]) == (None, 2)
    r = await c.patch(f"/api/assignments/{pinned['id']}", json={"pinned_version": 3})
    assert error(r) == (422, "pinned_version", "the strategy has no version 3; its versions are 1 to 2")
    r = await c.post("/api/assignments", json={**body, "pinned_version": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "pinned_version"
    # A save that makes no new version (the name only) switches nobody.
    r = await c.patch(f"/api/strategies/{s['id']}", json={"name": "renamed"})
    assert r.json()["version"] == 2 and r.json()["switched"] == [] and r.json()["pinned"] == []


async def test_a_version_saved_before_declarations_were_kept_is_read_on_first_use(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("legacy@example.com")
    s, _, market = await setup(c)
    async with sf() as session:
        await session.execute(update(StrategyVersion).values(declared=None))
        await session.commit()
    r = await c.post(
        "/api/assignments", json={"strategy_id": s["id"], "market_id": market, "params": {"fast": 99}}
    )
    assert error(r)[:2] == (422, "params.fast")  # read, and checked against
    assert [d["name"] for d in (await c.get(f"/api/strategies/{s['id']}")).json()["declared"]] == [
        "fast",
        "k",
        "mode",
        "strict",
    ]
    async with sf() as session:  # and kept
        v = await session.get(StrategyVersion, 1)
        assert v is not None and [d["name"] for d in v.declared or []] == ["fast", "k", "mode", "strict"]


async def test_an_allocation_above_the_account_value_is_saved_with_a_warning(
    api_bus, sf, nats_client
) -> None:  # type: ignore[no-untyped-def]
    async def balance(msg) -> None:  # type: ignore[no-untyped-def]
        await msg.respond(m.encode(m.BalanceReply(balances={"USD": "9000", "BTC": "0.01", "XYZ": "5"})))

    await nats_client.subscribe(subjects.exchange_balance("sim"), cb=balance)
    async with sf() as session:
        await session.execute(update(Market).where(Market.symbol == "BTC/USD").values(last_price=100_000.0))
        await session.commit()
    c = await api_bus.user("alloc@example.com")
    s, t, market = await setup(c)
    body = {"strategy_id": s["id"], "market_id": market, "trader_id": t["id"]}
    # worth 9,000 USD + 0.01 BTC at 100,000 = 10,000 (XYZ has no market to price it: left out)
    r = await c.post("/api/assignments", json={**body, "allocation": "50000"})
    assert r.status_code == 201
    big = r.json()
    assert [w["field"] for w in big["warnings"]] == ["allocation"]
    assert big["warnings"][0]["message"].startswith(
        "the allocation, 50,000.00 USD, is more than the account is worth (10,000.00 USD)"
    )
    assert (await c.get(f"/api/assignments/{big['id']}")).json()["warnings"] == [], "said when it is set"
    r = await c.post(
        "/api/assignments/allocation", json={"trader_id": t["id"], "market_id": market, "allocation": "1000"}
    )
    assert r.status_code == 200
    check = r.json()
    assert (check["currency"], check["allocated"], check["value"]) == ("USD", "51000", "10000.00")
    assert (
        "allocated 51,000.00 USD in all (this one 1,000.00, 1 other 50,000.00)"
        in check["warnings"][0]["message"]
    )
    # Lowered to fit (the check replaces its own saved allocation), it is saved without one.
    r = await c.patch(f"/api/assignments/{big['id']}", json={"allocation": "9000"})
    assert r.status_code == 200 and r.json()["warnings"] == []
    r = await c.post(
        "/api/assignments/allocation",
        json={"trader_id": t["id"], "market_id": market, "allocation": "900", "assignment_id": big["id"]},
    )
    assert r.json()["warnings"] == [] and r.json()["allocated"] == "900"
    # A paused assignment that holds nothing claims no capital; signals only (no account) are not checked.
    await c.post(f"/api/assignments/{big['id']}/pause")
    r = await c.post("/api/assignments", json={**body, "allocation": "9500"})
    assert r.json()["warnings"] == []
    r = await c.post("/api/assignments", json={**body, "trader_id": None, "allocation": "1000000"})
    assert r.status_code == 201 and r.json()["warnings"] == []
    r = await c.post(
        "/api/assignments/allocation", json={"trader_id": 2**31 - 1, "market_id": market, "allocation": "1"}
    )
    assert error(r) == (422, "trader_id", "no such trading account")


async def test_an_account_whose_value_cannot_be_read_says_the_check_was_not_made(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("nobus@example.com")
    s, t, market = await setup(c)
    r = await c.post(
        "/api/assignments", json={"strategy_id": s["id"], "market_id": market, "trader_id": t["id"]}
    )
    assert r.status_code == 201
    assert r.json()["warnings"] == [
        {
            "field": "allocation",
            "message": "not checked against the account's value: no message bus to ask the exchange",
        }
    ]


async def test_each_assignment_shows_its_capital_in_use_and_orders_why_they_are_smaller(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("inuse@example.com")
    s, t, market = await setup(c)
    a = (
        await c.post(
            "/api/assignments",
            json={"strategy_id": s["id"], "market_id": market, "trader_id": t["id"], "allocation": "1000"},
        )
    ).json()
    assert (a["capital"], a["capital_in_use"]) == ("1000", "0")
    note = "smaller than asked (1000.00 USD): capped by the account's free balance (14.85 USD)"
    async with sf() as session:
        await session.execute(
            update(Assignment)
            .where(Assignment.id == a["id"])
            .values(
                position_qty=Decimal("0.000237"), entry_cost=Decimal("14.84"), realized_pnl=Decimal("-2.5")
            )
        )
        owner = (await session.get(Assignment, a["id"])).owner_id  # type: ignore[union-attr]
        session.add(
            Order(
                owner_id=owner,
                assignment_id=a["id"],
                trader_id=t["id"],
                client_order_id="tw-note",
                exchange="sim",
                symbol="BTC/USD",
                side="buy",
                amount=Decimal("0.000237"),
                status="filled",
                size_note=note,
            )
        )
        await session.commit()
    got = (await c.get(f"/api/assignments/{a['id']}")).json()
    assert (got["allocation"], got["capital"], got["capital_in_use"]) == ("1000", "997.5", "14.84")
    (order,) = (await c.get("/api/orders")).json()["items"]
    assert order["size_note"] == note
