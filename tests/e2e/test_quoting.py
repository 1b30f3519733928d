"""A quoting strategy on `tradewind up`, as a user runs it: it keeps one bid and one ask around the simulated
book, replaces them as the market moves, is filled on both sides, never has two quotes on one side, and
leaves no open order after a pause, the kill switch and a shutdown. Killed with SIGKILL, its quotes rest on
the paper exchange until the next start cancels them."""

from __future__ import annotations

import signal
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from .platform_helpers import Proc, User, env_for, free_port, wait_until

pytestmark = pytest.mark.e2e

# 1.5 bps either side of the mid, just outside the sim's 2 bps spread: the walk trades through them often.
MAKER = """
function on_tick(t, c, params)
  local mid = (t.bid + t.ask) / 2
  local q = {{side = "buy", price = mid * (1 - params.edge), amount = 0.001}}
  if t.position > 0 then
    q[2] = {side = "sell", price = mid * (1 + params.edge), amount = t.position}
  end
  return {quotes = q}
end
"""


def start(data: Path, port: int, log: Path) -> Proc:
    env = env_for(sim_speed=10, history_days=1, sim_symbols="BTC/USD", sim_tick_ms=1000)
    proc = Proc(["up", "--data-dir", str(data), "--port", str(port)], env, log).start()
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200,
        timeout=90,
        what="the web app",
        proc=proc,
    )
    return proc


def open_quotes(u: User, aid: int) -> list[dict[str, Any]]:
    orders = [
        o for o in u.items("/api/orders", assignment_id=aid, status="open", limit=100) if o["type"] == "quote"
    ]
    sides = [o["side"] for o in orders]
    assert len(sides) == len(set(sides)), f"two open quotes on one side: {orders}"
    return orders


def resting_on_the_venue(data: Path) -> int:
    with sqlite3.connect(data / "tradewind.db") as db:
        return db.execute("select count(*) from paper_orders where status = 'open'").fetchone()[0]


def test_a_market_maker_quotes_both_sides_and_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    proc = start(data, port, tmp_path / "up.log")
    try:
        u = User(base, "maker@example.com")
        strategy = u.post("/api/strategies", {"name": "maker", "code": MAKER})
        trader = u.post("/api/traders", {"name": "paper", "exchange": "sim", "paper": True})
        a = u.post(
            "/api/assignments",
            {
                "strategy_id": strategy["id"],
                "market_id": u.market("BTC/USD")["id"],
                "timeframe": "1m",
                "trader_id": trader["id"],
                "allocation": "1000",
                "params": {"edge": 0.00015},
                "trigger": "tick",
                "min_interval_ms": 200,
                "max_position": "0.005",
            },
        )
        aid = a["id"]
        assert (a["trigger"], a["min_interval_ms"], a["max_position"]) == ("tick", 200, "0.005")

        def both_sides_filled() -> dict[str, Any] | None:
            open_quotes(u, aid)  # at every look: never two on one side
            q = u.get(f"/api/assignments/{aid}/quotes")
            return q if q["buys_filled"] and q["sells_filled"] else None

        q = wait_until(both_sides_filled, timeout=120, what="fills on both sides", proc=proc)
        assert q["placed"] > q["filled"] >= 2  # quotes were replaced as the market moved
        assert Decimal(q["inventory"]) <= Decimal("0.005")
        fills = [
            o
            for o in u.items("/api/orders", assignment_id=aid, status="filled", limit=100)
            if o["type"] == "quote"
        ]
        assert {o["side"] for o in fills} == {"buy", "sell"}
        assert all(
            Decimal(o["price"]) == Decimal(o["limit_price"]) for o in fills
        )  # makers fill at their price

        # around the book: a bid quote below the best bid of the latest tick
        wait_until(lambda: open_quotes(u, aid), timeout=30, what="quotes back after the fills", proc=proc)

        # pause: every quote comes down
        u.post(f"/api/assignments/{aid}/pause", {})
        wait_until(
            lambda: (
                not open_quotes(u, aid) and not u.items("/api/orders", assignment_id=aid, status="pending")
            ),
            timeout=30,
            what="no quote after the pause",
            proc=proc,
        )
        u.post(f"/api/assignments/{aid}/resume", {})
        wait_until(lambda: open_quotes(u, aid), timeout=30, what="quotes after the resume", proc=proc)

        # the kill switch: every quote comes down, none comes back
        u.post("/api/killswitch", {})
        wait_until(
            lambda: not open_quotes(u, aid) and resting_on_the_venue(data) == 0,
            timeout=30,
            what="no quote after the kill switch",
            proc=proc,
        )
        r = u.http.delete("/api/killswitch")
        assert r.status_code == 200, r.text
        u.post(f"/api/assignments/{aid}/resume", {})
        wait_until(
            lambda: open_quotes(u, aid),
            timeout=30,
            what="quotes after the kill switch is released",
            proc=proc,
        )

        # shutdown: the quotes come down with the platform
        proc.signal(signal.SIGINT)
        assert proc.stop(30) == 0
        assert resting_on_the_venue(data) == 0
    finally:
        proc.stop()

    # SIGKILL: the quotes rest on the venue, nobody watching; the next start cancels them
    proc = start(data, port, tmp_path / "up2.log")
    try:
        u.login()
        # quotes 1 % away: none fills, so one rests on the venue at every moment (a replacement is one
        # transaction there) and the kill cannot fall between a fill and the next quote
        r = u.http.patch(f"/api/assignments/{aid}", json={"params": {"edge": 0.01}})
        assert r.status_code == 200, r.text
        wait_until(
            lambda: (
                any(
                    Decimal(q["limit_price"]) < Decimal("0.995") * Decimal(u.market("BTC/USD")["last_price"])
                    for q in open_quotes(u, aid)
                )
                and resting_on_the_venue(data) >= 1
            ),
            timeout=60,
            what="far quotes resting after the restart",
            proc=proc,
        )
        proc.kill()
        assert resting_on_the_venue(data) >= 1
    finally:
        proc.stop()
    proc = start(data, port, tmp_path / "up3.log")
    try:
        u.login()
        u.post(f"/api/assignments/{aid}/pause", {})  # so that no new quote hides whether the old ones went
        wait_until(
            lambda: resting_on_the_venue(data) == 0,
            timeout=30,
            what="the quotes of the killed run cancelled",
            proc=proc,
        )

        def unsettled() -> int:  # core books what the venue answered (or, for one never placed, learns it)
            with sqlite3.connect(data / "tradewind.db") as db:
                return db.execute(
                    "select count(*) from orders where type = 'quote' and status in ('open', 'pending')"
                ).fetchone()[0]

        wait_until(lambda: unsettled() == 0, timeout=60, what="core's record of them settled", proc=proc)
    finally:
        proc.stop()
