"""Editing a trading account: its name, limits and key; a key is checked with the exchange as on creation."""

from __future__ import annotations

import asyncio

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.secrets import SecretBox
from tradewind.storage.models import Trader

from .conftest import KEY

OLD_SECRET = "first-s3cr3t-0f-the-account"
NEW_SECRET = "second-s3cr3t-NEVER-SHOWN"


async def _changes(nats_client) -> list[m.TraderChanged]:  # type: ignore[no-untyped-def]
    seen: list[m.TraderChanged] = []

    async def on_change(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(m.decode(msg.data, m.TraderChanged))

    await nats_client.subscribe(subjects.TRADERS_CHANGED, cb=on_change)
    return seen


async def _settle(nats_client) -> None:  # type: ignore[no-untyped-def]
    await nats_client.flush()
    await asyncio.sleep(0.1)


async def test_renaming_and_new_limits_tell_core_and_the_exchanges(api_bus, nats_client) -> None:  # type: ignore[no-untyped-def]
    seen = await _changes(nats_client)
    c = await api_bus.user("rename@example.com")
    t = (
        await c.post("/api/traders", json={"name": "Paper account", "exchange": "sim", "paper": True})
    ).json()
    r = await c.patch(f"/api/traders/{t['id']}", json={"name": "Swing book", "max_position": "250"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Swing book" and r.json()["max_position"] == "250"
    listed = (await c.get("/api/traders")).json()["items"]
    assert [(x["name"], x["max_position"]) for x in listed] == [("Swing book", "250")]
    await _settle(nats_client)
    assert seen == [m.TraderChanged(trader_id=t["id"], deleted=False)]
    # A name the form could send by mistake is a 422 naming the field, and changes nothing.
    for bad in ({"name": ""}, {"name": "x" * 101}, {"name": None}, {"max_position": "-1"}):
        r = await c.patch(f"/api/traders/{t['id']}", json=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == next(iter(bad)), (bad, r.text)
    assert (await c.get(f"/api/traders/{t['id']}")).json()["name"] == "Swing book"
    # A paper account has no key to change.
    r = await c.patch(f"/api/traders/{t['id']}", json={"api_key": "k-1234", "api_secret": "s"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "api_key"


async def test_a_refused_key_changes_nothing_sent_with_it(api_bus, nats_client, sf) -> None:  # type: ignore[no-untyped-def]
    accept = [True]

    async def verify(msg) -> None:  # type: ignore[no-untyped-def]
        ok = accept[0]
        await msg.respond(m.encode(m.VerifyReply(ok=ok, error=None if ok else "invalid API key")))

    await nats_client.subscribe(subjects.exchange_verify("kraken"), cb=verify)
    c = await api_bus.user("rekey@example.com")
    r = await c.post(
        "/api/traders",
        json={
            "name": "Kraken",
            "exchange": "kraken",
            "paper": False,
            "api_key": "KEY-old-1111",
            "api_secret": OLD_SECRET,
        },
    )
    assert r.status_code == 201, r.text
    t = r.json()["id"]
    seen = await _changes(nats_client)

    accept[0] = False
    r = await c.patch(
        f"/api/traders/{t}",
        json={
            "name": "Kraken main",
            "max_order_notional": "100",
            "api_key": "KEY-new-2222",
            "api_secret": NEW_SECRET,
        },
    )
    assert r.status_code == 422 and r.json()["detail"] == "invalid API key"
    assert r.json()["errors"][0]["field"] == "api_key"
    after = (await c.get(f"/api/traders/{t}")).json()
    assert after["name"] == "Kraken" and after["max_order_notional"] is None
    assert after["api_key_masked"] == "****1111"
    async with sf() as s:
        assert SecretBox([KEY]).decrypt((await s.get(Trader, t)).api_secret_enc) == OLD_SECRET
    entry = (await c.get("/api/audit")).json()["items"][0]
    assert entry["action"] == "trader.key_refused" and entry["detail"]["reason"] == "invalid API key"

    accept[0] = True
    r = await c.patch(
        f"/api/traders/{t}", json={"name": "Kraken main", "api_key": "KEY-new-2222", "api_secret": NEW_SECRET}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["api_key_masked"]) == ("Kraken main", "****2222")
    bodies = r.text + (await c.get("/api/traders")).text + (await c.get(f"/api/traders/{t}")).text
    assert NEW_SECRET not in bodies and "KEY-new-2222" not in bodies and OLD_SECRET not in bodies
    async with sf() as s:
        assert SecretBox([KEY]).decrypt((await s.get(Trader, t)).api_secret_enc) == NEW_SECRET
    assert (await c.get("/api/audit")).json()["items"][0]["action"] == "trader.key_changed"
    await _settle(nats_client)
    assert seen == [m.TraderChanged(trader_id=t, deleted=False)]  # the refused change told nobody
