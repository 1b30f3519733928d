"""Numbers in request bodies, over HTTP: amounts are taken exactly as written or refused, never rounded
or read from other scripts' digits; strategy parameters stay within what a double holds exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from .test_resources import GOOD

ASSIGNMENTS = "/api/assignments"
ODD_AMOUNTS = [
    "1_000",  # Decimal() reads the underscores away
    "١٠٠٠",  # Arabic-Indic digits: Decimal() reads them as 1000
    "１０００",  # full-width digits
    "1e3",
    "1E3",
    " 1000",
    "1000 ",
    "+1000",
    "-5",
    "1,000",
    "1000.",
    ".5",
    "0x10",
    "NaN",
    "Infinity",
    "",
    "0.1234567890123",  # 13 decimal places: one more than the limit
    "1.0000000000000",  # 13 places, even if they are zeros
    "1000000000000.000000000001",  # over 10^12 by a hair
]
# Sent as JSON numbers, as written here: the JSON parser would round each to a binary float.
ODD_JSON_NUMBERS = ["1000000000000.000000000001", "0.1234567890123", "1e3", "0.5", "1000.0", "true"]


async def make_assignment(c) -> int:  # type: ignore[no-untyped-def]
    s = (await c.post("/api/strategies", json={"name": "numbers", "code": GOOD})).json()
    r = await c.post(ASSIGNMENTS, json={"strategy_id": s["id"], "market_id": 1})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def post_raw(c, url: str, body: str, method: str = "POST"):  # type: ignore[no-untyped-def]
    return await c.request(method, url, content=body.encode(), headers={"content-type": "application/json"})


def refused(r, field: str) -> bool:  # type: ignore[no-untyped-def]
    return r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]]


async def test_an_amount_is_plain_ascii_digits_or_a_422_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("amounts@example.com")
    s = (await c.post("/api/strategies", json={"name": "numbers", "code": GOOD})).json()
    a = await make_assignment(c)
    wrong = []
    for amount in ODD_AMOUNTS:
        checks = [
            (
                await c.post(
                    ASSIGNMENTS, json={"strategy_id": s["id"], "market_id": 1, "allocation": amount}
                ),
                "allocation",
            ),
            (await c.patch(f"{ASSIGNMENTS}/{a}", json={"allocation": amount}), "allocation"),
            (
                await c.post("/api/traders", json={"name": "x", "exchange": "sim", "max_position": amount}),
                "max_position",
            ),
        ]
        wrong += [
            (amount, field, r.status_code, r.text[:120]) for r, field in checks if not refused(r, field)
        ]
    assert not wrong, wrong
    assert (await c.get(f"{ASSIGNMENTS}/{a}")).json()["allocation"] == "1000"  # nothing was stored


async def test_an_amount_as_a_json_number_is_never_rounded(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("jsonnumbers@example.com")
    a = await make_assignment(c)
    for number in ODD_JSON_NUMBERS:
        r = await post_raw(c, f"{ASSIGNMENTS}/{a}", f'{{"allocation": {number}}}', method="PATCH")
        assert refused(r, "allocation"), (number, r.status_code, r.text)
        r = await post_raw(
            c, "/api/traders", f'{{"name": "x", "exchange": "sim", "daily_loss_limit": {number}}}'
        )
        assert refused(r, "daily_loss_limit"), (number, r.status_code, r.text)
    assert (await c.get(f"{ASSIGNMENTS}/{a}")).json()["allocation"] == "1000"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ('"1000000000000"', "1000000000000"),
        ('"0.000000000001"', "0.000000000001"),
        ('"2.5"', "2.5"),
        ('"007"', "7"),
        ("1000000000000", "1000000000000"),  # a JSON integer is exact
        ("250", "250"),
    ],
)
async def test_exact_amounts_are_stored_as_sent(api, sent: str, stored: str) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("exact@example.com")
    a = await make_assignment(c)
    r = await post_raw(c, f"{ASSIGNMENTS}/{a}", f'{{"allocation": {sent}}}', method="PATCH")
    assert r.status_code == 200 and Decimal(r.json()["allocation"]) == Decimal(stored), r.text
    r = await post_raw(c, "/api/traders", f'{{"name": "t", "exchange": "sim", "max_order_notional": {sent}}}')
    assert r.status_code == 201 and Decimal(r.json()["max_order_notional"]) == Decimal(stored), r.text


BIG_PARAMS = ["1e308", "-1e308", "9007199254740993", "-9007199254740993", "9007199254740992.5e1", "1e16"]


async def test_a_parameter_beyond_2_to_the_53_is_a_422_naming_it(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("params@example.com")
    s = (await c.post("/api/strategies", json={"name": "numbers", "code": GOOD})).json()
    a = await make_assignment(c)
    wrong = []
    for number in BIG_PARAMS:
        body = f'{{"fast": 5, "huge": {number}}}'
        for r in (
            await post_raw(
                c, "/api/strategies", f'{{"name": "p", "code": {json.dumps(GOOD)}, "params": {body}}}'
            ),
            await post_raw(c, f"/api/strategies/{s['id']}", f'{{"params": {body}}}', method="PATCH"),
            await post_raw(c, f"{ASSIGNMENTS}/{a}", f'{{"params": {body}}}', method="PATCH"),
        ):
            fields = [e["field"] for e in r.json()["errors"]] if r.status_code == 422 else []
            if fields != ["params.huge"] or "2^53" not in r.json()["detail"]:
                wrong.append((number, r.status_code, r.text[:160]))
    assert not wrong, wrong


async def test_parameters_up_to_2_to_the_53_are_kept(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("params-ok@example.com")
    params = {"top": 2**53, "bottom": -(2**53), "half": 0.5, "big": 9.0e15, "flag": True, "name": "x"}
    r = await c.post("/api/strategies", json={"name": "p", "code": GOOD, "params": params})
    assert r.status_code == 201, r.text
    assert r.json()["params"] == params
