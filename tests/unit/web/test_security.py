"""Passwords, tokens, the login throttle and the API rate limit, on their own."""

from __future__ import annotations

import time

import pytest

from tradewind.web.security import (
    RateLimiter,
    Throttle,
    hash_password,
    new_token,
    password_problem,
    token_hash,
    verify_password,
)


def test_a_password_hash_is_argon2_and_verifies_only_the_right_password() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapl")
    assert not verify_password(None, "anything at all")  # an unknown email never matches
    assert not verify_password("not a hash", "anything at all")


@pytest.mark.parametrize(
    ("password", "email", "refused"),
    [
        ("short", "a@example.com", "at least 10"),
        ("x" * 257, "a@example.com", "at most 256"),
        ("password123", "a@example.com", "too common"),
        ("PASSWORD123", "a@example.com", "too common"),
        ("aaaaaaaaaaaa", "a@example.com", "too simple"),
        ("ababababab", "a@example.com", "too simple"),
        ("alice@example.com", "alice@example.com", "email"),
        ("my name is alice!", "alice@example.com", "email"),
        ("correct horse battery staple", "alice@example.com", None),
    ],
)
def test_password_rules_refuse_the_obvious(password: str, email: str, refused: str | None) -> None:
    problem = password_problem(password, email)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40
    assert token_hash(a) == token_hash(a) != token_hash(b)
    assert a not in token_hash(a)


def test_the_throttle_locks_a_key_after_the_limit_and_the_lock_grows() -> None:
    t = Throttle(limit=3, window_s=900, lockout_s=60)
    for _ in range(2):
        t.failed("account:a", "address:1")
    assert t.retry_after("account:a") == 0
    t.failed("account:a", "address:1")
    first = t.retry_after("account:a")
    assert 55 <= first <= 61
    t.failed("account:a")
    assert t.retry_after("account:a") > first  # doubles with each further failure
    assert t.retry_after("account:b") == 0  # another account is not locked...
    assert t.retry_after("account:b", "address:1") > 0  # ...unless it comes from the same address
    t.succeeded("account:a")
    assert t.retry_after("account:a") == 0


def test_the_throttle_forgets_old_keys_instead_of_growing_without_bound() -> None:
    t = Throttle(limit=3)
    t.MAX_KEYS = 100  # type: ignore[misc]
    for i in range(1000):
        t.failed(f"account:{i}")
    assert len(t._fails) <= 100
    for _ in range(100):
        t.failed("account:hot")
    assert len(t._fails["account:hot"]) <= 4 * t.limit


def test_the_rate_limiter_allows_a_burst_then_asks_to_wait() -> None:
    r = RateLimiter(rate=10, burst=5)
    assert [r.allow(1) for _ in range(5)] == [0.0] * 5
    wait = r.allow(1)
    assert 0 < wait <= 0.1
    assert r.allow(2) == 0.0  # per user
    time.sleep(0.15)
    assert r.allow(1) == 0.0


async def test_a_shared_throttle_is_the_one_throttle_its_server_keeps() -> None:
    """``SharedThrottle`` (a web process of `tradewind up`) asks ``serve_throttle`` (a thread of the parent) over a
    pipe: every step is the parent's throttle's, so two handles count against the same limits."""
    import multiprocessing as mp
    import threading

    from tradewind.web.security import SharedThrottle, serve_throttle

    throttle, lock = Throttle(limit=3, window_s=900, lockout_s=60, slow_max_s=0.01), threading.Lock()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    handles = []
    for _ in range(2):
        ours, theirs = mp.Pipe()
        threading.Thread(target=serve_throttle, args=(throttle, lock, ours), daemon=True).start()
        handles.append(SharedThrottle(theirs, sleep=sleep))
    try:
        for i in range(3):  # three wrong passwords, alternating between the two web processes
            h = handles[i % 2]
            wait, attempt = await h.begin("ann@example.com", "203.0.113.7")
            assert wait.seconds == 0 and attempt > 0
            assert throttle._held == {"address:203.0.113.7": 1}
            await h.slow_failure("203.0.113.7")
            await h.end("203.0.113.7")
        assert throttle._held == {}
        wait, _ = await handles[0].begin("ann@example.com", "203.0.113.7")
        assert 55 <= wait.seconds <= 61 and "3 failed logins" in wait.message  # locked for both
        wait, _ = await handles[1].begin("ann@example.com", "203.0.113.7")
        assert wait.seconds > 0

        # the right password from another address: counted while it is checked, then withdrawn
        wait, attempt = await handles[1].begin("bob@example.com", "198.51.100.2")
        assert wait.seconds == 0 and len(throttle._fails["account:bob@example.com"]) == 1
        await handles[1].end("198.51.100.2")
        await handles[1].logged_in("bob@example.com", "198.51.100.2", attempt)
        assert not throttle._fails["account:bob@example.com"]
        assert slept == []  # under 2 × limit failures from an address: no answer is held
    finally:
        for h in handles:
            h.close()


async def test_a_shared_throttle_whose_server_is_gone_refuses_to_judge_a_login() -> None:
    import multiprocessing as mp

    from tradewind.web.security import SharedThrottle, ThrottleUnavailable

    ours, theirs = mp.Pipe()
    ours.close()  # the parent is gone
    h = SharedThrottle(theirs)
    try:
        with pytest.raises(ThrottleUnavailable):
            await h.begin("ann@example.com", "203.0.113.7")
        assert await h.slow_failure("203.0.113.7") == 0.0  # the steps after it do not fail the answer
        await h.end("203.0.113.7")
    finally:
        h.close()
