"""Hostile input: injection strings, NULs, deep nesting, huge numbers, odd encodings, endless bodies.

Each is a 4xx with the one error shape (or, where the input is merely odd but valid, stored verbatim);
never a 500.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from .test_resources import GOOD

INJECTION = "'; DROP TABLE users; -- \" OR 1=1 <script>alert(1)</script> ../../etc/passwd ${7*7} {{7*7}}"


async def test_injection_strings_are_stored_verbatim_and_harm_nothing(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("inj@example.com")
    r = await c.post(
        "/api/strategies", json={"name": INJECTION[:100], "description": INJECTION, "code": GOOD}
    )
    assert r.status_code == 201
    got = (await c.get(f"/api/strategies/{r.json()['id']}")).json()
    assert got["name"] == INJECTION[:100].strip() and got["description"] == INJECTION
    assert (await c.get("/api/auth/me")).status_code == 200  # the users table is still there
    assert (
        r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"
    )


HOSTILE = [
    ("get", "/api/orders?assignment_id=1%20OR%201=1", None),
    ("get", "/api/orders?trader_id=1;DROP%20TABLE%20orders", None),
    ("get", "/api/strategies/1%20OR%201=1", None),
    ("get", "/api/strategies/..%2F..%2Fetc%2Fpasswd", None),
    ("get", "/api/strategies/-1", None),
    ("get", "/api/strategies/0", None),
    ("get", "/api/strategies/99999999999999999999999", None),
    ("get", "/api/evaluations?before_id=99999999999999999999999", None),
    ("get", "/api/strategies?before_id=2147483648", None),
    ("get", "/api/orders?assignment_id=9007199254740991", None),
    ("get", "/api/traders/2147483648", None),
    ("get", "/api/markets/1/candles?timeframe=1m%00", None),
    ("get", "/api/markets/1/candles?before=-5", None),
    ("get", "/api/markets/1/candles?limit=1e9", None),
    ("post", "/api/strategies", {"name": "a\x00b", "code": GOOD}),
    ("post", "/api/strategies", {"name": "x", "code": "return 1\x00"}),
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "params": {"a": {"b": 1}}}),
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "params": {"a": [1, 2]}}),
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "params": {f"p{i}": i for i in range(51)}}),
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "params": {"big": 10**30}}),
    ("post", "/api/strategies", {"name": "x", "code": GOOD, "params": {"s": "x" * 201}}),
    ("post", "/api/strategies", {"name": ["x"], "code": GOOD}),
    ("post", "/api/strategies", {"name": None, "code": GOOD}),
    ("post", "/api/strategies/validate", {"code": 12}),
    ("post", "/api/traders", {"name": "x", "exchange": "sim", "max_order_notional": "NaN"}),
    ("post", "/api/traders", {"name": "x", "exchange": "sim", "max_order_notional": "Infinity"}),
    ("post", "/api/traders", {"name": "x", "exchange": "sim", "max_position": "1e400"}),
    ("post", "/api/traders", {"name": "x", "exchange": "../../x"}),
    ("post", "/api/traders", {"name": "x", "exchange": "sim", "paper": False}),
    (
        "post",
        "/api/traders",
        {"name": "x", "exchange": "kraken", "paper": False, "api_key": "k" * 513, "api_secret": "s"},
    ),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "allocation": "-1"}),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "allocation": "1e13"}),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "allocation": "0.0000000000001"}),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "lookback": 10**12}),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "lookback": 5001}),
    ("post", "/api/assignments", {"strategy_id": 1.5, "market_id": 1}),
    ("post", "/api/assignments", {"strategy_id": True, "market_id": 1}),
    ("post", "/api/assignments", {"strategy_id": 1, "market_id": 1, "params": {"x": float("inf")}}),
    ("post", "/api/auth/register", {"email": "a" * 300 + "@example.com", "password": "long enough password"}),
    ("post", "/api/auth/register", {"email": "x@example.com", "password": "p" * 10_000}),
    ("post", "/api/auth/login", {"email": "x@example.com", "password": "p", "remember": True}),
    ("patch", "/api/strategies/1", {"owner_id": 2}),
    ("patch", "/api/traders/1", {"name": None}),
    ("patch", "/api/traders/1", {"api_key": None, "api_secret": None}),
    ("patch", "/api/assignments/1", {"timeframe": None}),
    ("patch", "/api/assignments/1", {"allocation": None}),
    ("patch", "/api/assignments/1", {"params": None}),
    ("patch", "/api/assignments/1", {"lookback": None}),
    ("patch", "/api/assignments/1", {"enabled": None}),
    ("patch", "/api/assignments/1", {"strategy_id": 2}),
]


async def test_hostile_input_is_a_4xx_with_a_message(api) -> None:  # type: ignore[no-untyped-def]
    # One user for all cases (logins cost argon2 time); every failing case is reported at once.
    c = await api.user("hostile@example.com")
    await c.post("/api/strategies", json={"name": "ok", "code": GOOD})
    await c.post("/api/traders", json={"name": "paper", "exchange": "sim"})
    await c.post("/api/assignments", json={"strategy_id": 1, "market_id": 1, "trader_id": 1})
    wrong = []
    for method, url, body in HOSTILE:
        # allow_nan: Infinity and NaN go out literally, as a hostile client would send them.
        kwargs = (
            {}
            if body is None
            else {
                "content": json.dumps(body, allow_nan=True).encode(),
                "headers": {"content-type": "application/json"},
            }
        )
        r = await c.request(method.upper(), url, **kwargs)
        ok = (
            400 <= r.status_code < 500
            and isinstance(r.json().get("detail"), str)
            and isinstance(r.json().get("errors"), list)
        )
        if not ok:
            wrong.append((method, url, str(body)[:80], r.status_code, r.text[:200]))
    assert not wrong, wrong
    # Where null means "none", it is taken.
    assert (await c.patch("/api/assignments/1", json={"trader_id": None})).json()["trader_id"] is None
    assert (await c.patch("/api/traders/1", json={"max_position": None})).json()["max_position"] is None


async def test_deeply_nested_json_is_refused_not_crashed_on(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("deep@example.com")
    for body in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"name": "x", "code": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ):
        r = await c.post("/api/strategies", content=body, headers={"content-type": "application/json"})
        assert r.status_code in (413, 422), r.text


async def test_a_body_without_a_length_is_cut_off_at_the_cap(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("chunked@example.com")

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "code": "'
        for _ in range(100):
            yield b"-" * 10_000

    r = await c.post("/api/strategies", content=endless(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "KiB" in r.json()["detail"]


async def test_wrong_content_type_method_and_path_answer_in_the_error_shape(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("shape@example.com")
    r = await c.post(
        "/api/strategies",
        content=b"name=x&code=y",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422 and r.json()["errors"]
    r = await c.put("/api/strategies")
    assert r.status_code == 405 and r.json()["detail"]
    r = await c.get("/api/nothing-here")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found", "errors": []}


async def test_a_strategy_that_never_ends_is_refused_quickly(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("loop@example.com")
    for code in ("while true do end", 'local s = string.rep("x", 1e10)', "x = (" * 2000 + "1" + ")" * 2000):
        started = time.monotonic()
        r = await c.post("/api/strategies", json={"name": "loop", "code": code})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code", r.text
        assert time.monotonic() - started < 5


async def test_the_per_user_rate_limit_answers_429_with_retry_after(api) -> None:  # type: ignore[no-untyped-def]
    from tradewind.web.security import RateLimiter

    api.app.state.tw.limiter = RateLimiter(rate=1, burst=5)
    c = await api.user("greedy@example.com")
    codes = [(await c.get("/api/auth/me")).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[-1] == 429
    r = await c.get("/api/auth/me")
    assert int(r.headers["retry-after"]) >= 1
    other = await api.user("patient@example.com")
    assert (await other.get("/api/auth/me")).status_code == 200  # per user
