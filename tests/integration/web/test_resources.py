"""Strategies, accounts and assignments: validation, tenancy, secrets."""

from __future__ import annotations

import pytest

from tradewind.bus import messages as m
from tradewind.bus import subjects

GOOD = 'function decide(c, p) return "long" end'


async def setup_objects(c) -> dict:  # type: ignore[no-untyped-def]
    s = (await c.post("/api/strategies", json={"name": "mine", "code": GOOD})).json()
    t = (await c.post("/api/traders", json={"name": "paper", "exchange": "sim", "paper": True})).json()
    market = (await c.get("/api/markets")).json()["items"][0]
    a = (
        await c.post(
            "/api/assignments",
            json={
                "strategy_id": s["id"],
                "market_id": market["id"],
                "trader_id": t["id"],
                "timeframe": "1m",
                "allocation": "500",
                "params": {"fast": 5},
            },
        )
    ).json()
    return {"strategies": s["id"], "traders": t["id"], "assignments": a["id"]}


async def test_a_syntax_error_is_refused_with_its_line(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("lua@example.com")
    code = "function decide(c)\n  local x = \n  return 'long'\nend x"
    r = await c.post("/api/strategies/validate", json={"code": code})
    assert r.json()["ok"] is False and r.json()["errors"][0]["line"] in (3, 4)
    r = await c.post("/api/strategies", json={"name": "bad", "code": code})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code" and r.json()["errors"][0]["line"]
    assert (await c.post("/api/strategies/validate", json={"code": GOOD})).json() == {
        "ok": True,
        "errors": [],
    }


async def test_an_oversize_strategy_is_refused_with_its_size_on_check_save_and_update(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("big-code@example.com")
    big = "-- " + "x" * 102_397  # 100 KiB
    s = (await c.post("/api/strategies", json={"name": "small", "code": GOOD})).json()
    for r in (
        await c.post("/api/strategies/validate", json={"code": big}),
        await c.post("/api/strategies", json={"name": "big", "code": big}),
        await c.patch(f"/api/strategies/{s['id']}", json={"code": big}),
    ):
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [
            {"field": "code", "message": "the code is 102,400 characters long; the limit is 65,536 (64 KiB)"}
        ]


async def test_a_code_change_makes_a_new_version(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("ver@example.com")
    s = (await c.post("/api/strategies", json={"name": "v", "code": GOOD})).json()
    r = await c.patch(f"/api/strategies/{s['id']}", json={"code": GOOD.replace("long", "short")})
    assert r.json()["version"] == 2
    versions = (await c.get(f"/api/strategies/{s['id']}/versions")).json()
    assert [v["version"] for v in versions] == [2, 1]


async def test_another_users_objects_are_not_found_with_every_method(api) -> None:  # type: ignore[no-untyped-def]
    alice = await api.user("alice@example.com")
    bob = await api.user("bob2@example.com")
    ids = await setup_objects(alice)
    for kind, object_id in ids.items():
        url = f"/api/{kind}/{object_id}"
        assert (await alice.get(url)).status_code == 200
        assert (await bob.get(url)).status_code == 404
        assert (await bob.patch(url, json={})).status_code == 404
        assert (await bob.delete(url)).status_code == 404
        assert (await alice.get(url)).status_code == 200, "bob's attempts changed nothing"
        assert object_id not in [x["id"] for x in (await bob.get(f"/api/{kind}")).json()["items"]]
    assert (await bob.get(f"/api/strategies/{ids['strategies']}/versions")).status_code == 404
    assert (await bob.get(f"/api/traders/{ids['traders']}/balances")).status_code == 404
    assert (await bob.get(f"/api/assignments/{ids['assignments']}/latency")).status_code == 404
    assert (await bob.post(f"/api/assignments/{ids['assignments']}/pause")).status_code == 404
    assert (await bob.get("/api/evaluations", params={"assignment_id": ids["assignments"]})).json()[
        "items"
    ] == []
    assert (await bob.get("/api/orders", params={"assignment_id": ids["assignments"]})).json()["items"] == []
    # and bob cannot point his own assignment at alice's strategy or account
    market = (await bob.get("/api/markets")).json()["items"][0]
    r = await bob.post("/api/assignments", json={"strategy_id": ids["strategies"], "market_id": market["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "strategy_id"


BAD_INPUT = [
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "owner_id": 1}, 422, "owner_id"),
    ("post", "/api/strategies", {"name": "", "code": GOOD}, 422, "name"),
    ("post", "/api/strategies", {"name": "x" * 101, "code": GOOD}, 422, "name"),
    ("post", "/api/strategies", {"name": "x", "code": "x" * 70_000}, 422, "code"),
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "params": {"bad key": 1}}, 422, "params"),
    ("post", "/api/strategies", {"name": "x"}, 422, "code"),
    ("post", "/api/traders", {"name": "x", "exchange": "binance", "paper": True}, 422, "exchange"),
    ("post", "/api/traders", {"name": "x", "exchange": "Bad Name!"}, 422, "exchange"),
    ("post", "/api/traders", {"name": "x", "exchange": "sim", "max_position": "-5"}, 422, "max_position"),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "timeframe": "7m"}, 422, "timeframe"),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "allocation": "0"}, 422, "allocation"),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "lookback": 1}, 422, "lookback"),
    ("post", "/api/assignments", {"strategy_id": "x", "market_id": 1}, 422, "strategy_id"),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 99999}, 422, "market_id"),
    ("get", "/api/markets/1/candles?timeframe=2h", None, 422, "timeframe"),
    ("get", "/api/markets/1/candles?limit=0", None, 422, "limit"),
    ("get", "/api/orders?assignment_id=abc", None, 422, "assignment_id"),
    ("get", "/api/strategies/not-a-number", None, 422, "strategy_id"),
    ("get", "/api/evaluations?limit=100000", None, 422, "limit"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "field"), BAD_INPUT)
async def test_bad_input_gets_a_4xx_naming_the_field(api, method, url, body, status, field) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("bad@example.com")
    s = (await c.post("/api/strategies", json={"name": "ok", "code": GOOD})).json()
    assert s["id"] == 1
    r = await getattr(c, method)(url, **({"json": body} if body is not None else {}))
    assert r.status_code == status, r.text
    assert field in " ".join(e["field"] for e in r.json()["errors"]) + r.json()["detail"]


async def test_malformed_and_oversize_bodies(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("big@example.com")
    r = await c.post("/api/strategies", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = await c.post("/api/strategies", content=b"x" * 300_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = await c.post("/api/strategies", json=["a", "list"])
    assert r.status_code == 422
    assert (await api.client().get("/api/strategies")).status_code == 401


async def test_a_live_account_key_is_verified_encrypted_and_never_returned(
    api_bus, nats_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    secret = "SECRET-do-not-leak-0123456789"

    async def verify(msg) -> None:  # type: ignore[no-untyped-def]
        req = m.decode(msg.data, m.VerifyTrader)
        ok = req.trader_id % 2 == 1  # the first account verifies, the second is "wrong"
        await msg.respond(m.encode(m.VerifyReply(ok=ok, error=None if ok else "invalid API key")))

    await nats_client.subscribe(subjects.exchange_verify("binance"), cb=verify)
    c = await api_bus.user("keys@example.com")
    r = await c.post(
        "/api/traders",
        json={
            "name": "live",
            "exchange": "binance",
            "paper": False,
            "api_key": "KEY-abcd",
            "api_secret": secret,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["api_key_masked"] == "****abcd" and secret not in r.text
    listed_id = r.json()["id"]
    listed = (await c.get("/api/traders")).text + (await c.get(f"/api/traders/{r.json()['id']}")).text
    assert secret not in listed and "KEY-abcd" not in listed
    r = await c.post(
        "/api/traders",
        json={"name": "wrong", "exchange": "binance", "paper": False, "api_key": "k2", "api_secret": "s2"},
    )
    assert r.status_code == 422 and r.json()["detail"] == "invalid API key"
    assert len((await c.get("/api/traders")).json()["items"]) == 1
    audit = [e["action"] for e in (await c.get("/api/audit")).json()["items"]]
    assert audit[:2] == ["trader.key_refused", "trader.created"]
    r = await c.patch(f"/api/traders/{listed_id}", json={"max_position": "2.5", "daily_loss_limit": None})
    assert r.json()["max_position"] == "2.5"
    entry = (await c.get("/api/audit")).json()["items"][0]
    assert entry["action"] == "trader.limits_changed" and entry["detail"]["max_position"] == "2.5"
    r = await c.post(
        "/api/traders",
        json={"name": "x", "exchange": "kraken", "paper": False, "api_key": "k", "api_secret": "s"},
    )
    assert (
        r.status_code == 422
        and "not reachable" in r.json()["detail"]
        and r.json()["errors"][0]["field"] == "exchange"
    )
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("web.db*"))
    assert secret.encode() not in raw


async def test_markets_and_candles(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("mk@example.com")
    markets = (await c.get("/api/markets")).json()["items"]
    assert markets[0]["symbol"] == "BTC/USD" and "1h" in markets[0]["timeframes"]
    candles = (await c.get(f"/api/markets/{markets[0]['id']}/candles", params={"limit": 10})).json()
    assert len(candles) == 10 and candles[0]["time"] < candles[-1]["time"]
    assert (await c.get("/api/markets/999/candles")).status_code == 404


async def test_kill_switch_pauses_everything(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("kill@example.com")
    ids = await setup_objects(c)
    r = await c.post("/api/killswitch")
    assert r.json()["paused_assignments"] == 1
    a = (await c.get(f"/api/assignments/{ids['assignments']}")).json()
    assert a["enabled"] is False and a["paused_reason"] == "kill switch"
    assert (await c.get("/api/auth/me")).json()["killed"] is True
    assert "killswitch.on" in [e["action"] for e in (await c.get("/api/audit")).json()["items"]]
    await c.delete("/api/killswitch")
    assert (await c.get("/api/auth/me")).json()["killed"] is False


async def test_admin_views_are_hidden_from_users(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("notadmin@example.com")
    assert (await c.get("/api/admin/users")).status_code == 404
