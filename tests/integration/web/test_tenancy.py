"""Another user's objects, tried with every method on every path the API documents: always a 404."""

from __future__ import annotations

import re

from .test_resources import GOOD, setup_objects


async def test_every_documented_path_with_another_users_id_is_a_404(api) -> None:  # type: ignore[no-untyped-def]
    alice = await api.user("alice@example.com")
    mallory = await api.user("mallory@example.com")
    ids = await setup_objects(alice)
    own = {"strategy_id": ids["strategies"], "trader_id": ids["traders"], "assignment_id": ids["assignments"]}
    spec = (await alice.get("/api/openapi.json")).json()
    if "/api/backtests" in spec["paths"]:  # written alongside the backtest engine; covered when mounted
        r = await alice.post("/api/backtests", json={"strategy_id": ids["strategies"], "market_id": 1})
        assert r.status_code == 202, r.text
        own["backtest_id"] = r.json()["id"]
        # the run history: the backtest as a run (its exports too), and a walk-forward
        own["kind"], own["run_id"] = "backtest", own["backtest_id"]
        r = await alice.post(
            "/api/walkforwards",
            json={"strategy_id": ids["strategies"], "market_id": 1, "mode": "split", "split": 0.5},
        )
        assert r.status_code == 202, r.text
        own["walkforward_id"] = r.json()["id"]
    tried = []
    for path, ops in spec["paths"].items():
        params = set(re.findall(r"\{(\w+)\}", path))
        if not params or not params <= set(
            own
        ):  # markets are public; unknown ids belong to other routes' tests
            continue
        url = re.sub(r"\{(\w+)\}", lambda g: str(own[g.group(1)]), path)
        for method in ops:
            body = {} if method in ("post", "put", "patch") else None
            r = await mallory.request(method.upper(), url, json=body)
            assert r.status_code == 404, (method, url, r.status_code, r.text)
            assert str(own[next(iter(params))]) not in r.text or "not found" in r.json()["detail"]
            tried.append(f"{method} {path}")
    assert len(tried) >= 14, tried
    if "kind" in own:
        paths = {"get /api/runs/{kind}/{run_id}/report.html", "get /api/walkforwards/{walkforward_id}"}
        assert paths <= set(tried), tried
        # ... while their owner has them all
        runs = [f"backtest:{own['backtest_id']}", f"walkforward:{own['walkforward_id']}"]
        assert [x["ref"] for x in (await alice.get("/api/runs")).json()["items"]] == runs[::-1]
        assert (await alice.get("/api/runs/compare", params={"runs": ",".join(runs)})).status_code == 200
        for export in ("trades.csv", "export.json", "report.html"):
            assert (await alice.get(f"/api/runs/backtest/{own['backtest_id']}/{export}")).status_code == 200
    # The hidden PUT alias of PATCH too.
    assert (
        await mallory.put(f"/api/strategies/{ids['strategies']}", json={"name": "mine now"})
    ).status_code == 404
    # Nothing of alice's changed.
    s = (await alice.get(f"/api/strategies/{ids['strategies']}")).json()
    a = (await alice.get(f"/api/assignments/{ids['assignments']}")).json()
    assert (
        s["name"] == "mine"
        and a["enabled"] is True
        and (await alice.get(f"/api/traders/{ids['traders']}")).status_code == 200
    )


async def test_lists_and_filters_never_show_another_users_rows(api) -> None:  # type: ignore[no-untyped-def]
    alice = await api.user("alice2@example.com")
    mallory = await api.user("mallory2@example.com")
    ids = await setup_objects(alice)
    for kind in ("strategies", "traders", "assignments"):
        assert (await mallory.get(f"/api/{kind}")).json()["items"] == []
    for query in ({"assignment_id": ids["assignments"]}, {"trader_id": ids["traders"]}):
        assert (await mallory.get("/api/orders", params=query)).json()["items"] == []
    assert (await mallory.get("/api/evaluations", params={"assignment_id": ids["assignments"]})).json()[
        "items"
    ] == []
    assert (await mallory.get("/api/positions")).json() == []
    assert [e["action"] for e in (await mallory.get("/api/audit")).json()["items"]] == [
        "login",
        "account.created",
    ]


async def test_another_users_strategy_or_account_cannot_be_borrowed(api) -> None:  # type: ignore[no-untyped-def]
    alice = await api.user("alice3@example.com")
    mallory = await api.user("mallory3@example.com")
    ids = await setup_objects(alice)
    mine = (await mallory.post("/api/strategies", json={"name": "m", "code": GOOD})).json()
    r = await mallory.post(
        "/api/assignments", json={"strategy_id": mine["id"], "market_id": 1, "trader_id": ids["traders"]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "trader_id"
    a = (await mallory.post("/api/assignments", json={"strategy_id": mine["id"], "market_id": 1})).json()
    r = await mallory.patch(f"/api/assignments/{a['id']}", json={"trader_id": ids["traders"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "trader_id"


async def test_pages_follow_the_before_id_cursor(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("pages@example.com")
    made = [
        (await c.post("/api/strategies", json={"name": f"s{i}", "code": GOOD})).json()["id"] for i in range(5)
    ]
    first = (await c.get("/api/strategies", params={"limit": 2})).json()
    assert [s["id"] for s in first["items"]] == made[::-1][:2] and first["next_before_id"] == made[3]
    second = (
        await c.get("/api/strategies", params={"limit": 2, "before_id": first["next_before_id"]})
    ).json()
    assert [s["id"] for s in second["items"]] == made[::-1][2:4]
    last = (await c.get("/api/strategies", params={"limit": 2, "before_id": second["next_before_id"]})).json()
    assert [s["id"] for s in last["items"]] == [made[0]] and last["next_before_id"] is None
