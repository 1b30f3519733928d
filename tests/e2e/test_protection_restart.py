"""A protected position outlives a SIGKILL of `tradewind up`: its stop and target rest on the paper exchange,
are there after the restart, and close the position with their reason; nothing is placed twice."""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from .platform_helpers import Proc, User, env_for, free_port, wait_until

pytestmark = pytest.mark.e2e

# Always long, protected by a stop and a target 0.15 % away: positions open and close by their exits.
STRATEGY = """
function decide(c, params)
  return {position = "long", stop_loss = 0.0015, take_profit = 0.0015}
end
"""


def start(data: Path, port: int, log: Path) -> Proc:
    env = env_for(sim_speed=60, history_days=1, sim_symbols="BTC/USD")
    proc = Proc(["up", "--data-dir", str(data), "--port", str(port)], env, log).start()
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200,
        timeout=90,
        what="the web app",
        proc=proc,
    )
    return proc


def test_protective_orders_survive_a_kill_and_close_the_position_after_it(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path / "data", port, tmp_path / "up.log")
    try:
        u = User(base, "protected@example.com")
        strategy = u.post("/api/strategies", {"name": "protected", "code": STRATEGY})
        trader = u.post("/api/traders", {"name": "paper", "exchange": "sim", "paper": True})
        a = u.post(
            "/api/assignments",
            {
                "strategy_id": strategy["id"],
                "market_id": u.market("BTC/USD")["id"],
                "timeframe": "1m",
                "trader_id": trader["id"],
                "allocation": "1000",
                "params": {},
            },
        )

        def resting() -> list[dict]:
            return u.items("/api/orders", assignment_id=a["id"], status="open")

        held = wait_until(resting, timeout=60, what="a protected position", proc=proc)
        (pair,) = held
        assert pair["type"] == "take_profit" and pair["limit_price"] and pair["stop_price"]
        shown = u.get(f"/api/assignments/{a['id']}")["protection"]
        assert shown is not None and Decimal(shown["stop"]) == Decimal(pair["stop_price"])
        proc.kill()
    finally:
        proc.stop()

    proc = start(tmp_path / "data", port, tmp_path / "up2.log")
    try:
        u.login()

        def closed_by_it() -> dict | None:
            orders = u.items("/api/orders", assignment_id=a["id"], limit=500)
            mine = next((o for o in orders if o["client_order_id"] == pair["client_order_id"]), None)
            return mine if mine and mine["status"] == "filled" else None

        done = wait_until(
            closed_by_it, timeout=120, what="the pair placed before the kill to fill", proc=proc
        )
        assert done["exit_reason"] in ("stop_loss", "take_profit")
        orders = u.items("/api/orders", assignment_id=a["id"], limit=500)
        ids = [o["client_order_id"] for o in orders]
        assert len(ids) == len(set(ids))

        # what core books matches what the paper account holds once nothing is in flight
        def settled() -> bool:
            pos = Decimal(u.get(f"/api/assignments/{a['id']}")["position_qty"])
            bal = u.get(f"/api/traders/{trader['id']}/balances")["balances"]
            return pos == Decimal(str(bal.get("BTC", "0")))

        wait_until(settled, timeout=30, what="the position to match the paper balance", proc=proc)
        proc.signal(signal.SIGINT)
        assert proc.p is not None and proc.p.wait(30) == 0, proc.tail()
    finally:
        proc.stop()
