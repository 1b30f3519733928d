"""Passwords (argon2), session tokens (random, stored hashed), login throttling and API rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id at OWASP's recommended minimum (Password Storage Cheat Sheet: m=19 MiB, t=2, p=1): ~25 ms of CPU
# a hash on the standard machine, where argon2-cffi's defaults (64 MiB, 3 passes; 1 lane here) cost ~175 ms,
# and a burst of 200 sign-ups queued 35 s of hashing. One lane: a hash runs on one core, so sign-ups can never
# take every core. Hashes made with other parameters still verify (they are written into each hash) and are
# made again with these at the next log-in (``needs_rehash``).
log = logging.getLogger(__name__)

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
HASH_THREADS = 2


def _lower_priority() -> None:
    """Password hashing yields the CPU to everything else (Linux: threads have a nice value of their own):
    a burst of sign-ups must not delay the web server's other answers, nor an order where core shares the
    machine (`tradewind up`) or the process (the web server run inline, as in tests)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# Bounded and apart from asyncio's default executor, which other work waits on: at most HASH_THREADS hashes
# run at once, the rest queue here.
_hashing = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="password", initializer=_lower_priority)


@functools.cache
def _dummy_hash() -> str:
    """A valid hash to verify against when the email is unknown, so timing does not reveal which emails
    exist. Made on first use: hashing costs ~25 ms, too much for every import of the package."""
    return _hasher.hash("not a real password, only for timing")


COMMON = {
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou12",
    "letmein123",
    "welcome123",
    "administrator",
    "trustno1234",
    "abcdefghij",
    "0123456789",
    "passw0rd123",
    "qwerty1234",
    "1q2w3e4r5t",
    "football12",
    "baseball12",
    "monkey1234",
    "dragon1234",
}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than today's (log-in then hashes it again)."""
    try:
        return _hasher.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return False


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; with no stored hash, still spends the time of a check."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# argon2 spends ~25 ms of CPU by design: in a server it runs on the hashing threads, never on the
# event loop.
async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hashing, hash_password, password)


async def verify_password_async(stored: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_hashing, verify_password, stored, password)


def password_problem(password: str, email: str) -> str | None:
    """Why a password is refused, or None."""
    if len(password) < 10:
        return "use at least 10 characters"
    if len(password) > 256:
        return "use at most 256 characters"
    lowered = password.lower()
    if lowered in COMMON or len(set(lowered)) < 4:
        return "this password is too common or too simple"
    local = email.split("@")[0].lower()
    if lowered == email.lower() or (len(local) >= 4 and local in lowered):
        return "the password must not contain your email address"
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def throttled_address(address: str) -> str:
    """The unit an address is throttled as: an IPv4 address, or an IPv6 /64 (one host usually holds all of
    it, and could otherwise change address for every guess)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Wait(NamedTuple):
    """Why a login attempt is refused before its password is checked, and for how long (0 s: it is not)."""

    seconds: int
    message: str = ""


class Throttle:
    """Failed logins per key in a sliding window of ``window_s``; a key over its limit is locked for
    ``lockout_s``, doubling with each further failure, at most ``window_s``.

    The login rules (``login_wait``, ``login_started``, ``failure_hold``, ``login_succeeded``) lock an
    account, never an address: guessing is slowed where it comes from, while neither a stranger who knows an
    email nor a neighbour behind the same address can lock anyone out of their own account.

    - per address and account: ``limit`` failures, then that address is locked for that account;
    - per account: once it has had 4 × ``limit`` failures from anywhere in the window, an address that has
      failed at it even once is locked for it until that failure leaves the window. Guessing at one account
      from many addresses is then bounded to about one guess per address per window;
    - per address (an IPv6 /64 counts as one), at any accounts: after 2 × ``limit`` failures its wrong
      passwords are answered slowly — one after the other, 1 s apart, doubling up to ``slow_max_s`` — while
      a right password is answered at once. At most ``max_held`` of its answers wait at a time, and none is
      scheduled more than ``slow_max_s`` after the one before it is answered; beyond that (a flood) an attempt
      is refused before its password is checked.

    An attempt counts as failed from the moment it is let through until it succeeds, so guesses sent at
    once cannot slip past the limits while their passwords are being checked.

    In memory. The login route uses it through ``LoginGuard`` (``begin``, ``slow_failure``, ``end``,
    ``logged_in``). Under `tradewind up` one throttle, in the parent process, serves every web process
    (``SharedThrottle``, ``serve_throttle``): a guesser cannot spread guesses over the web processes, nor
    start over by crashing one. Replicas of a distributed deployment each count their own share, which still
    bounds guessing to replicas × limit per window.
    """

    MAX_KEYS = 100_000  # attackers choose the emails: the table must not grow without bound

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 900,
        lockout_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
        slow_max_s: float = 10.0,
        max_held: int = 10,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limit, self.window_s, self.lockout_s, self.clock = limit, window_s, lockout_s, clock
        self.slow_max_s, self.max_held, self.sleep = slow_max_s, max_held, sleep
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._answer_at: dict[str, float] = {}  # address -> when its last held failure is answered
        self._held: dict[str, int] = {}  # address -> its answers waiting now

    def retry_after(self, *keys: str) -> int:
        """Seconds until none of ``keys`` is locked (0: now), each locked after ``limit`` failures."""
        now = self.clock()
        return _seconds(max((self._locked_for(key, self.limit, now) for key in keys), default=0.0))

    def failed(self, *keys: str) -> float:
        """Count a failure against each key; returns its time (for ``login_succeeded``)."""
        now = self.clock()
        if len(self._fails) + len(keys) > self.MAX_KEYS:
            self._prune(now, room=len(keys))
        for key in keys:
            q = self._fails[key]
            q.append(now)
            if len(q) > 4 * self.limit:  # the lock is already at its longest; older failures add nothing
                q.popleft()
        return now

    def succeeded(self, key: str) -> None:
        self._fails.pop(key, None)

    def login_wait(self, email: str, address: str) -> Wait:
        """Whether ``address`` must wait before trying to log in to ``email``, how long and why."""
        now = self.clock()
        by_address, pair, account = self._login_keys(email, address)
        locked = self._locked_for(pair, self.limit, now)
        if locked > 0:
            n = len(self._fails.get(pair) or ())
            return self._wait(locked, f"{n} failed logins to this account from your address")
        tried = self._recent(pair, now)
        if tried:
            attacked = self._recent(account, now)
            if attacked is not None and len(attacked) >= 4 * self.limit:
                return self._wait(
                    tried[-1] + self.window_s - now,
                    "this account has had many failed logins from many addresses, yours among them",
                )
        if (
            self._held.get(by_address, 0) >= self.max_held
            or self._answer_at.get(by_address, now) - now > self.slow_max_s
        ):  # a flood: its answers already wait their turn; none waits longer than about 2 × slow_max_s
            return self._wait(
                max(1.0, self._answer_at.get(by_address, now) - now),
                "too many logins from your address at once",
            )
        return Wait(0)

    def _wait(self, seconds: float, what: str) -> Wait:
        wait = _seconds(seconds)
        return Wait(wait, f"{what}; try again in {in_words(wait)}")

    def login_started(self, email: str, address: str) -> float:
        """Count an attempt the password check is about to judge as failed, until ``login_succeeded``.

        Call it right after ``login_wait`` answered 0, with no ``await`` between the two."""
        return self.failed(*self._login_keys(email, address))

    def failure_hold(self, address: str) -> float:
        """Seconds to hold the answer to the wrong password just counted from ``address`` (0: answer now).

        Under 2 × ``limit`` failures in the window: none. Beyond, its failures are answered one after the other,
        each ``2 ** (excess - 1)`` s after the previous one (at most ``slow_max_s``). Call ``held`` around the
        wait."""
        now = self.clock()
        by_address = self._login_keys("", address)[0]
        q = self._recent(by_address, now)
        excess = len(q) - 2 * self.limit if q else 0
        if excess <= 0:
            return 0.0
        interval = min(self.slow_max_s, 2.0 ** (excess - 1))
        at = max(now, self._answer_at.get(by_address, now)) + interval
        self._answer_at[by_address] = at
        return at - now

    async def slow_failure(self, address: str) -> float:
        """Hold the answer to the wrong password just counted from ``address`` (``failure_hold``); the hold."""
        hold = self.failure_hold(address)
        if hold > 0:
            await self.sleep(hold)
        return hold

    def held(self, address: str, delta: int) -> None:
        """An answer of ``address`` starts (+1) or stops (-1) being held."""
        key = self._login_keys("", address)[0]
        n = self._held.get(key, 0) + delta
        if n > 0:
            self._held[key] = n
        else:
            self._held.pop(key, None)

    # -- ``LoginGuard``: the login route's calls, each one step of the rules above --------------------------
    async def begin(self, email: str, address: str) -> tuple[Wait, float]:
        """``login_wait``; when it answers 0, ``login_started`` and ``held(+1)`` at once: the wait, and the
        attempt's time for ``logged_in``."""
        return self.begin_now(email, address)

    def begin_now(self, email: str, address: str) -> tuple[Wait, float]:
        wait = self.login_wait(email, address)
        if wait.seconds:
            return wait, 0.0
        attempt = self.login_started(email, address)
        self.held(address, +1)
        return wait, attempt

    async def end(self, address: str) -> None:
        """The attempt ``begin`` let through is answered (``held(-1)``)."""
        self.held(address, -1)

    async def logged_in(self, email: str, address: str, started: float) -> None:
        self.login_succeeded(email, address, started)

    def login_succeeded(self, email: str, address: str, started: float) -> None:
        """The attempt ``login_started`` counted was right: withdraw it, and forgive this address's earlier
        failures at this account (it knows the password). Its failures at other accounts still count."""
        by_address, pair, account = self._login_keys(email, address)
        self._fails.pop(pair, None)
        for key in (by_address, account):
            q = self._fails.get(key)
            if q is not None:
                with contextlib.suppress(ValueError):  # already dropped as older than the window
                    q.remove(started)

    @staticmethod
    def _login_keys(email: str, address: str) -> tuple[str, str, str]:
        net = throttled_address(address)
        return f"address:{net}", f"pair:{net} {email}", f"account:{email}"  # an address holds no space

    def _recent(self, key: str, now: float) -> deque[float] | None:
        q = self._fails.get(key)
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def _locked_for(self, key: str, limit: int, now: float) -> float:
        q = self._recent(key, now)
        if q is None or len(q) < limit:
            return 0.0
        factor: int = 2 ** (len(q) - limit)  # len(q) >= limit: an int (typeshed types int ** int as Any)
        lock = min(self.window_s, self.lockout_s * factor)
        return q[-1] + lock - now

    def _prune(self, now: float, room: int = 1) -> None:
        for key in [k for k, q in self._fails.items() if not q or now - q[-1] > self.window_s]:
            del self._fails[key]
        for key in [k for k, at in self._answer_at.items() if at < now]:
            del self._answer_at[key]
        while self._fails and len(self._fails) > self.MAX_KEYS - room:  # still full (a flood): oldest first
            del self._fails[next(iter(self._fails))]


class LoginGuard(Protocol):
    """What the login route asks of a throttle: ``Throttle`` itself, or ``SharedThrottle`` (another process's)."""

    async def begin(self, email: str, address: str) -> tuple[Wait, float]: ...

    async def slow_failure(self, address: str) -> float: ...

    async def end(self, address: str) -> None: ...

    async def logged_in(self, email: str, address: str, started: float) -> None: ...


class ThrottleUnavailable(Exception):
    """The process holding the shared throttle did not answer: a log-in cannot be judged, so it is refused."""


class SharedThrottle:
    """A web process's handle on the ``Throttle`` of `tradewind up`'s parent process, asked over a pipe
    (``serve_throttle`` answers there). One question at a time, from one thread of its own: the event loop
    never waits on the pipe, and questions are answered in the order asked. The hold of a wrong password is
    decided there and waited here."""

    TIMEOUT_S = 10.0

    def __init__(self, conn: Any, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._conn, self.sleep = conn, sleep
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="throttle")
        self._seq = 0

    def _ask_now(self, request: tuple[Any, ...]) -> Any:
        self._seq += 1
        try:
            self._conn.send((self._seq, *request))
            deadline = time.monotonic() + self.TIMEOUT_S
            while (left := deadline - time.monotonic()) > 0 and self._conn.poll(left):
                seq, answer = self._conn.recv()
                if seq == self._seq:  # (an answer to a question that timed out earlier is dropped)
                    return answer
        except (EOFError, OSError) as exc:
            raise ThrottleUnavailable(f"the login throttle's process is gone: {exc}") from None
        raise ThrottleUnavailable(f"the login throttle's process did not answer in {self.TIMEOUT_S:.0f} s")

    async def _ask(self, *request: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._ask_now, request)

    async def begin(self, email: str, address: str) -> tuple[Wait, float]:
        seconds, message, attempt = await self._ask("begin", email, address)
        return Wait(seconds, message), attempt

    # Only ``begin`` refuses when the throttle is out of reach: these come after it, and the platform is
    # stopping when its parent process does not answer; the answer to the log-in stands.
    async def slow_failure(self, address: str) -> float:
        hold: float = await self._quietly(0.0, "hold", address)
        if hold > 0:
            await self.sleep(hold)
        return hold

    async def end(self, address: str) -> None:
        await self._quietly(None, "end", address)

    async def logged_in(self, email: str, address: str, started: float) -> None:
        await self._quietly(None, "logged_in", email, address, started)

    async def _quietly(self, default: Any, *request: Any) -> Any:
        try:
            return await self._ask(*request)
        except ThrottleUnavailable as exc:
            log.warning("login throttle: %s", exc)
            return default

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def serve_throttle(throttle: Throttle, lock: threading.Lock, conn: Any) -> None:
    """Answer one web process's ``SharedThrottle`` on ``conn`` until it closes (a thread of the parent per web
    process; ``lock`` makes each question one step of the one throttle, whichever process asked)."""
    while True:
        try:
            seq, kind, *args = conn.recv()
        except (EOFError, OSError):  # the web process is gone (a new one gets a new pipe)
            return
        with lock:
            answer: Any
            if kind == "begin":
                wait, attempt = throttle.begin_now(args[0], args[1])
                answer = (wait.seconds, wait.message, attempt)
            elif kind == "hold":
                answer = throttle.failure_hold(args[0])
            elif kind == "end":
                throttle.held(args[0], -1)
                answer = None
            elif kind == "logged_in":
                throttle.login_succeeded(args[0], args[1], args[2])
                answer = None
            else:  # not ours: a bug, answered rather than left hanging
                answer = None
        try:
            conn.send((seq, answer))
        except (EOFError, OSError):
            return


def in_words(seconds: int) -> str:
    """A wait for a person: "57 s", "2 min", "15 min"."""
    return f"{seconds} s" if seconds < 90 else f"{-(-seconds // 60)} min"


def _seconds(wait: float) -> int:
    """A wait as a Retry-After value: whole seconds, rounded up; 0 for none."""
    return int(wait) + 1 if wait > 0 else 0


class RateLimiter:
    """A token bucket per user: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float = 30.0, burst: float = 120.0) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, tuple[float, float]] = {}

    def allow(self, user_id: int) -> float:
        """0 if allowed, else seconds to wait."""
        now = time.monotonic()
        tokens, last = self._buckets.get(user_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[user_id] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[user_id] = (tokens - 1, now)
        return 0.0
