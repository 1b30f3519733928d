"""Helpers for end-to-end tests: start tradewind processes, talk to the API like a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent / "tradewind"

GOOD = """
-- long on even minutes, short on odd ones: trades on every candle
function decide(c, params)
  if (c.time[#c.time] // 60000) % 2 == 0 then return "long" end
  return "short"
end
"""
RUNAWAY = """
function decide(c, params)
  while true do end
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(**settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update({f"TRADEWIND_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class Proc:
    """A tradewind process whose output goes to a log file (read it when a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        fh = open(self.log, "ab")  # noqa: SIM115 - the process owns it
        self.p = subprocess.Popen(
            [str(BIN), *self.args], env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def signal(self, sig: int) -> None:
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the process and everything it started (its embedded NATS server too), as a lost machine
        would: a child left running would hold the data directory the next start uses."""
        if self.p and self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.p:
            self.p.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def wait_until(
    predicate: Callable[[], Any], timeout: float = 60, what: str = "condition", proc: Proc | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last_exc = exc
        if proc and proc.p and proc.p.poll() is not None:
            raise AssertionError(
                f"process exited ({proc.p.returncode}) while waiting for {what}:\n{proc.tail()}"
            )
        time.sleep(0.25)
    extra = f"\n--- log ---\n{proc.tail()}" if proc else ""
    raise AssertionError(f"timed out waiting for {what} (last error: {last_exc}){extra}")


class User:
    """A user of the HTTP API with a bearer token."""

    def __init__(self, base: str, email: str, password: str = "correct horse battery staple") -> None:
        self.base = base
        self.email = email
        self.http = httpx.Client(base_url=base, timeout=15)
        r = self.http.post("/api/auth/register", json={"email": email, "password": password})
        if r.status_code not in (200, 201, 409):
            raise AssertionError(f"register: {r.status_code} {r.text}")
        self.login(password)

    def login(self, password: str = "correct horse battery staple") -> None:
        r = self.http.post("/api/auth/login", json={"email": self.email, "password": password})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        self.http.cookies.clear()

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    def post(self, path: str, body: dict[str, Any], expect: int | tuple[int, ...] = (200, 201)) -> Any:
        r = self.http.post(path, json=body)
        codes = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in codes, f"POST {path}: {r.status_code} {r.text}"
        return r.json()

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        data = self.get(path, **params)
        return data["items"] if isinstance(data, dict) else data

    def market(self, symbol: str) -> dict[str, Any]:
        return next(m for m in self.items("/api/markets") if m["symbol"] == symbol)

    def trade_setup(self, code: str, symbol: str = "BTC/USD", name: str = "strategy") -> dict[str, Any]:
        strategy = self.post("/api/strategies", {"name": name, "code": code})
        trader = self.post("/api/traders", {"name": "paper", "exchange": "sim", "paper": True})
        return self.post(
            "/api/assignments",
            {
                "strategy_id": strategy["id"],
                "market_id": self.market(symbol)["id"],
                "timeframe": "1m",
                "trader_id": trader["id"],
                "allocation": "1000",
                "params": {},
            },
        )
