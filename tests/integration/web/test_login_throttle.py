"""Login throttling over HTTP: guessing is slowed at the guesser's address, and a stranger who knows an
email cannot lock its owner out."""

from __future__ import annotations

import asyncio

import httpx

from tradewind.web.security import Throttle

from .conftest import PASSWORD


class Clock:
    """The throttle's clock, moved by hand: the tests wait minutes without sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def from_address(api, address: str) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=api.app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def login(c: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await c.post("/api/auth/login", json={"email": email, "password": password})


def hand_clock(api) -> Clock:  # type: ignore[no-untyped-def]
    clock = Clock()
    api.app.state.tw.throttle = Throttle(clock=clock)
    return clock


async def test_an_attackers_failures_do_not_lock_the_owner_out(api) -> None:  # type: ignore[no-untyped-def]
    await api.user("victim@example.com")
    async with from_address(api, "203.0.113.66") as attacker:
        codes = [
            (await login(attacker, "victim@example.com", f"guess {i} of many")).status_code for i in range(8)
        ]
        assert codes == [401] * 5 + [429] * 3
        # the attacker's address may not try the right password either (it would learn it is right)
        assert (await login(attacker, "victim@example.com", PASSWORD)).status_code == 429
    async with from_address(api, "198.51.100.7") as owner:
        r = await login(owner, "victim@example.com", PASSWORD)
        assert r.status_code == 200, r.text


async def test_a_guessing_address_waits_longer_after_every_failure(api) -> None:  # type: ignore[no-untyped-def]
    clock = hand_clock(api)
    await api.user("target@example.com")
    async with from_address(api, "203.0.113.9") as attacker:
        for i in range(5):
            assert (await login(attacker, "target@example.com", f"guess {i} of many")).status_code == 401
        waits = []
        for i in range(3):
            r = await login(attacker, "target@example.com", f"late guess {i}")
            assert r.status_code == 429 and "try again in" in r.json()["detail"]
            waits.append(int(r.headers["retry-after"]))
            clock.now += waits[-1] - 2
            assert (await login(attacker, "target@example.com", f"early guess {i}")).status_code == 429
            clock.now += 2
            assert (
                await login(attacker, "target@example.com", f"guess {i} after waiting")
            ).status_code == 401
    assert 60 <= waits[0] <= 61 and waits[1] >= 2 * waits[0] - 1 and waits[2] >= 2 * waits[1] - 1, waits


async def test_failures_at_other_accounts_never_refuse_a_right_password(api) -> None:  # type: ignore[no-untyped-def]
    """Five wrong passwords for bob and five for carol, from the office's one address: alice, behind the same
    address, still logs in with hers."""
    await api.user("alice@example.com")
    async with from_address(api, "203.0.113.20") as office:
        codes = [
            (await login(office, f"{name}@example.com", f"guess {i} of many")).status_code
            for name in ("bob", "carol")
            for i in range(5)
        ]
        assert codes == [401] * 10
        r = await login(office, "alice@example.com", PASSWORD)
        assert r.status_code == 200, r.text
        r = await login(office, "bob@example.com", "one more guess")  # bob's own lock holds
        assert r.status_code == 429


async def test_one_address_guessing_at_many_accounts_gets_its_wrong_passwords_answered_slowly(api) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    holds: list[float] = []

    async def sleep(seconds: float) -> None:  # the answer is held: time passes
        holds.append(seconds)
        clock.now += seconds

    api.app.state.tw.throttle = Throttle(clock=clock, sleep=sleep)
    await api.user("first@example.com")
    async with from_address(api, "203.0.113.20") as spray:
        for i in range(10):  # two guesses at each of five accounts: under every per-account limit
            assert (await login(spray, f"user{i // 2}@example.com", f"guess {i} of many")).status_code == 401
        assert holds == []
        for i in range(5):
            assert (await login(spray, f"other{i}@example.com", "a guess")).status_code == 401
        assert holds == [1.0, 2.0, 4.0, 8.0, 10.0]  # one after the other, each slower, at most 10 s
        assert (await login(spray, "first@example.com", PASSWORD)).status_code == 200  # answered at once
        assert len(holds) == 5
    async with from_address(api, "203.0.113.21") as neighbour:  # another address is not slowed
        assert (await login(neighbour, "nobody@example.com", "a guess")).status_code == 401
        assert len(holds) == 5


async def test_a_flood_from_one_address_is_refused_beyond_the_answers_it_has_waiting(api) -> None:  # type: ignore[no-untyped-def]
    release = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await release.wait()

    throttle = api.app.state.tw.throttle = Throttle(sleep=sleep, max_held=2)
    async with from_address(api, "203.0.113.40") as flood:
        for i in range(10):
            assert (await login(flood, f"user{i // 2}@example.com", f"guess {i}")).status_code == 401
        waiting = [asyncio.create_task(login(flood, f"late{i}@example.com", "a guess")) for i in range(2)]
        for _ in range(500):  # both are on their way (being checked, then held)
            if throttle._held.get("address:203.0.113.40", 0) == 2:
                break
            await asyncio.sleep(0.01)
        r = await login(flood, "late9@example.com", "a guess")
        assert r.status_code == 429 and r.json()["detail"].startswith(
            "too many logins from your address at once"
        )
        release.set()
        assert [(await t).status_code for t in waiting] == [401, 401]


async def test_a_refusal_says_what_happened_and_when_to_try_again_once(api) -> None:  # type: ignore[no-untyped-def]
    hand_clock(api)
    await api.user("once@example.com")
    async with from_address(api, "203.0.113.50") as c:
        for i in range(5):
            await login(c, "once@example.com", f"guess {i} of many")
        r = await login(c, "once@example.com", PASSWORD)
    detail = r.json()["detail"]
    assert r.status_code == 429 and r.headers["retry-after"] == "61"
    assert detail == "5 failed logins to this account from your address; try again in 61 s"
    assert detail.lower().count("try again") == 1


async def test_concurrent_guesses_cannot_slip_past_the_limit(api) -> None:  # type: ignore[no-untyped-def]
    await api.user("burst@example.com")
    async with from_address(api, "203.0.113.30") as attacker:
        answers = await asyncio.gather(
            *(login(attacker, "burst@example.com", f"parallel guess {i}") for i in range(20))
        )
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 5 + [429] * 15, codes


async def test_guessing_one_account_from_many_addresses_is_bounded(api) -> None:  # type: ignore[no-untyped-def]
    clock = hand_clock(api)
    await api.user("popular@example.com")
    for n in range(4):  # four addresses use their five guesses each: the account is now under attack
        async with from_address(api, f"203.0.113.{100 + n}") as c:
            for i in range(5):
                assert (await login(c, "popular@example.com", f"guess {i} of many")).status_code == 401
    async with from_address(api, "203.0.113.200") as late:  # from now on, a new address gets one guess
        assert (await login(late, "popular@example.com", "one more guess")).status_code == 401
        r = await login(late, "popular@example.com", "and another")
        assert r.status_code == 429 and 890 <= int(r.headers["retry-after"]) <= 901
        clock.now += 600  # locked until its failure is 15 minutes old, not merely for a minute
        assert (await login(late, "popular@example.com", "and another")).status_code == 429
    async with from_address(api, "198.51.100.7") as owner:  # an address that has not failed gets in
        assert (await login(owner, "popular@example.com", PASSWORD)).status_code == 200


async def test_an_ipv6_subnet_counts_as_one_address(api) -> None:  # type: ignore[no-untyped-def]
    await api.user("six@example.com")
    for i in range(5):  # each guess from a different address of the same /64
        async with from_address(api, f"2001:db8:1:2::{i + 1}") as c:
            assert (await login(c, "six@example.com", f"guess {i} of many")).status_code == 401
    async with from_address(api, "2001:db8:1:2:ffff::9") as c:
        assert (await login(c, "six@example.com", PASSWORD)).status_code == 429
    async with from_address(api, "2001:db8:1:3::1") as c:  # the next /64 is someone else
        assert (await login(c, "six@example.com", PASSWORD)).status_code == 200
