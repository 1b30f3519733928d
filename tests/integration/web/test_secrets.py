"""An exchange secret goes in once and never comes out: not in any response, log line or database file."""

from __future__ import annotations

import logging
import re

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.secrets import SecretBox
from tradewind.storage.models import Trader

from .conftest import KEY

API_KEY = "AKIA-live-key-7f3e9c2b1a0d"
SECRET = "s3cr3t-DO-NOT-LEAK-9b8a7c6d5e4f"
NEW_SECRET = "rotated-s3cr3t-NEVER-SHOWN-1234"


async def test_no_response_log_line_or_database_file_holds_the_secret(
    api_bus, nats_client, sf, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)

    async def verify(msg) -> None:  # type: ignore[no-untyped-def]
        await msg.respond(m.encode(m.VerifyReply(ok=True)))

    async def balance(msg) -> None:  # type: ignore[no-untyped-def]
        await msg.respond(m.encode(m.BalanceReply(balances={"USD": "1"})))

    await nats_client.subscribe(subjects.exchange_verify("kraken"), cb=verify)
    await nats_client.subscribe(subjects.exchange_balance("kraken"), cb=balance)
    c = await api_bus.user("keys@example.com")
    bodies: list[str] = []
    r = await c.post(
        "/api/traders",
        json={"name": "live", "exchange": "kraken", "paper": False, "api_key": API_KEY, "api_secret": SECRET},
    )
    assert r.status_code == 201, r.text
    assert r.json()["api_key_masked"] == "****1a0d"
    bodies.append(r.text)
    t = r.json()["id"]
    r = await c.patch(f"/api/traders/{t}", json={"api_key": API_KEY + "x", "api_secret": NEW_SECRET})
    assert r.status_code == 200 and r.json()["api_key_masked"] == "****a0dx"
    bodies.append(r.text)
    # A failed change keeps the working key.
    r = await c.patch(f"/api/traders/{t}", json={"api_key": "k-only"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "api_key"
    bodies.append(r.text)

    # Every GET the API has, with this user's ids in the path.
    s = (
        await c.post("/api/strategies", json={"name": "s", "code": 'function decide(c) return "long" end'})
    ).json()
    a = (await c.post("/api/assignments", json={"strategy_id": s["id"], "market_id": 1})).json()
    ids = {
        "trader_id": t,
        "strategy_id": s["id"],
        "assignment_id": a["id"],
        "market_id": 1,
        "kind": "backtest",
    }
    spec = (await c.get("/api/openapi.json")).json()
    bodies.append(str(spec))
    gets = [p for p, ops in spec["paths"].items() if "get" in ops]
    assert len(gets) >= 15
    for path in gets:
        url = re.sub(r"\{(\w+)\}", lambda g: str(ids.get(g.group(1), 1)), path)  # other routes' ids: 1
        # a route that needs one of several queries gets the account's (the trades of an account)
        r = await c.get(url, params={"trader_id": t} if path == "/api/trades" else None)
        # 404: the admin views, objects not made here; 422: a route that needs a query (runs/compare)
        needs_query = any(
            p.get("in") == "query" and p.get("required")
            for p in spec["paths"][path]["get"].get("parameters", [])
        )
        assert r.status_code in ((200, 404, 422) if needs_query else (200, 404)), (url, r.text)
        bodies.append(r.text)
    bodies.append((await c.get("/metrics")).text)

    for secret in (SECRET, NEW_SECRET, API_KEY):
        assert not [b for b in bodies if secret in b], f"{secret} in a response"
        assert secret not in caplog.text, f"{secret} in the log"
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("web.db*"))
        assert secret.encode() not in raw, f"{secret} in clear in the database file"

    # What is stored is the encrypted new key, readable only with the secret key.
    async with sf() as session:
        row = await session.get(Trader, t)
        assert SecretBox([KEY]).decrypt(row.api_secret_enc) == NEW_SECRET
    actions = [e["action"] for e in (await c.get("/api/audit")).json()["items"]]
    assert "trader.key_changed" in actions and "trader.created" in actions
