"""`tradewind up` as a user runs it: one process, HTTP only."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .platform_helpers import GOOD, RUNAWAY, Proc, User, env_for, free_port, wait_until

pytestmark = pytest.mark.e2e


def start_up(data_dir: Path, port: int, log: Path) -> Proc:
    env = env_for(
        sim_speed=300,
        history_days=1,
        sim_symbols="BTC/USD,ETH/USD",
        eval_pause_after_failures=3,
        eval_time_limit_ms=300,
    )
    proc = Proc(["up", "--data-dir", str(data_dir), "--port", str(port)], env, log).start()
    import httpx

    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200,
        timeout=90,
        what="the web app",
        proc=proc,
    )
    return proc


def test_up_trades_on_paper_and_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_up(tmp_path / "data", port, tmp_path / "up.log")
    try:
        alice = User(base, "alice@example.com")
        mallory = User(base, "mallory@example.com")
        good = alice.trade_setup(GOOD, name="flip")
        bad = mallory.trade_setup(RUNAWAY, name="runaway")

        def filled_order() -> list:
            return [
                o for o in alice.items("/api/orders", assignment_id=good["id"]) if o["status"] == "filled"
            ]

        wait_until(filled_order, timeout=60, what="a filled paper order", proc=proc)
        evals = alice.items("/api/evaluations", assignment_id=good["id"])
        assert any(e["status"] == "ok" and e["position"] in ("long", "short") for e in evals)
        # Her latency, from the candle reaching tradewind to the decision and to the order call.
        latency = alice.get(f"/api/assignments/{good['id']}/latency")
        to_order, to_decision = latency["tick_to_order_call"], latency["tick_to_decision"]
        assert (
            to_order["count"] >= 1
            and to_decision["count"] >= len([e for e in evals if e["status"] == "ok"]) > 0
        )
        assert 0 < to_decision["p50_ms"] <= to_decision["max_ms"] < 5000
        assert 0 < to_order["p50_ms"] <= to_order["p99_ms"] <= to_order["max_ms"] < 5000

        # The runaway strategy fails with a time or instruction limit, gets paused, and alice keeps trading.
        def paused() -> bool:
            a = mallory.get(f"/api/assignments/{bad['id']}")
            return not a["enabled"] and bool(a["paused_reason"])

        wait_until(paused, timeout=60, what="the runaway strategy to be paused", proc=proc)
        failed = mallory.items("/api/evaluations", assignment_id=bad["id"])
        assert failed and all(e["status"] == "error" for e in failed)
        assert "limit" in failed[0]["error"].lower()
        before = len(alice.items("/api/evaluations", assignment_id=good["id"], limit=500))
        wait_until(
            lambda: len(alice.items("/api/evaluations", assignment_id=good["id"], limit=500)) > before + 2,
            timeout=30,
            what="alice's evaluations to continue",
            proc=proc,
        )

        # mallory sees none of alice's objects
        assert mallory.http.get(f"/api/assignments/{good['id']}").status_code == 404
        assert (
            mallory.items("/api/orders", assignment_id=good["id"]) == []
            or mallory.http.get("/api/orders", params={"assignment_id": good["id"]}).status_code == 404
        )

        orders_before = alice.items("/api/orders", assignment_id=good["id"], limit=500)
        proc.signal(signal.SIGINT)
        assert proc.p is not None and proc.p.wait(30) == 0, proc.tail()
    finally:
        proc.stop()

    # Restart on the same data folder: everything is still there and trading resumes.
    proc = start_up(tmp_path / "data", port, tmp_path / "up2.log")
    try:
        alice.login()
        assert alice.get(f"/api/assignments/{good['id']}")["enabled"] is True
        assert any(s["name"] == "flip" for s in alice.items("/api/strategies"))
        n = len(orders_before)
        wait_until(
            lambda: len(alice.items("/api/orders", assignment_id=good["id"], limit=500)) > n + 1,
            timeout=60,
            what="orders after the restart",
            proc=proc,
        )
        orders = alice.items("/api/orders", assignment_id=good["id"], limit=500)
        ids = [o["client_order_id"] for o in orders]
        assert len(ids) == len(set(ids)), "an order was placed twice"
        evals = alice.items("/api/evaluations", assignment_id=good["id"], limit=500)
        times = [e["candle_time"] for e in evals]
        assert len(times) == len(set(times)), "a candle was evaluated twice"
    finally:
        assert proc.stop() == 0, proc.tail()
