"""The web app's users, for Locust (benchmarks/web_load.py starts it; see there).

Each simulated user signs up and logs in once, then browses as a trader does between decisions: the
strategies, assignments, markets, orders and positions pages, now and then writing a strategy and running
a one-day backtest of it, with one to three seconds between clicks.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from typing import Any

from locust import HttpUser, between, events, task

PASSWORD = "correct horse battery staple"
STRATEGY = """
-- an SMA crossover
function decide(c, params)
  local fast = ta.sma(c.close, 5)
  local slow = ta.sma(c.close, 20)
  if fast[#fast] > slow[#slow] then return "long" end
  return "short"
end
"""
MARKET_ID = int(os.environ.get("TW_LOAD_MARKET", "1"))
TIMES = os.environ.get("TW_LOAD_TIMES")  # where every request's (name, ms, ok) is written at the end
_ids = itertools.count(1)
_times: list[tuple[str, float, bool]] = []


@events.request.add_listener
def _record(name: str, response_time: float, exception: Any = None, **_: Any) -> None:
    _times.append((name, response_time, exception is None))


@events.quitting.add_listener
def _write(**_: Any) -> None:
    if TIMES:
        with open(TIMES, "w") as f:
            json.dump(_times, f)


class Trader(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        n = next(_ids)
        email = f"load-{uuid.uuid4().hex[:10]}-{n}@example.com"
        # Each user from an address of its own, as behind a proxy (uvicorn trusts X-Forwarded-For from
        # 127.0.0.1): the login throttle counts per address.
        self.client.headers["X-Forwarded-For"] = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        self.client.post("/api/auth/register", json={"email": email, "password": PASSWORD}, name="register")
        r = self.client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, name="login")
        self.client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        self.strategy_id: int | None = None

    @task(5)
    def strategies(self) -> None:
        self.client.get("/api/strategies", name="GET /api/strategies")

    @task(4)
    def assignments(self) -> None:
        self.client.get("/api/assignments", name="GET /api/assignments")

    @task(4)
    def markets(self) -> None:
        self.client.get("/api/markets", name="GET /api/markets")

    @task(3)
    def candles(self) -> None:
        self.client.get(
            f"/api/markets/{MARKET_ID}/candles?timeframe=1m&limit=300", name="GET /api/markets/{id}/candles"
        )

    @task(3)
    def orders(self) -> None:
        self.client.get("/api/orders", name="GET /api/orders")

    @task(2)
    def positions(self) -> None:
        self.client.get("/api/positions", name="GET /api/positions")

    @task(1)
    def write_a_strategy(self) -> None:
        r = self.client.post(
            "/api/strategies", json={"name": f"sma-{uuid.uuid4().hex[:8]}", "code": STRATEGY},
            name="POST /api/strategies",
        )  # fmt: skip
        if r.status_code == 201:
            self.strategy_id = r.json()["id"]

    @task(1)
    def backtest(self) -> None:
        if self.strategy_id is None:
            return
        r = self.client.post(
            "/api/backtests", json={"strategy_id": self.strategy_id, "market_id": MARKET_ID, "timeframe": "1m"},
            name="POST /api/backtests",
        )  # fmt: skip
        if r.status_code == 202:
            self.client.get(f"/api/backtests/{r.json()['id']}", name="GET /api/backtests/{id}")
