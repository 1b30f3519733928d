"""Passwords (argon2), session tokens (random, stored hashed), login throttling and API rate limits."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from collections import defaultdict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A valid hash to verify against when the email is unknown, so timing does not reveal which emails
    exist. Made on first use: hashing costs ~0.1 s, too much for every import of the package."""
    return _hasher.hash("not a real password, only for timing")


COMMON = {
    "password", "password1", "password12", "password123", "password1234", "1234567890", "12345678910", "qwertyuiop",
    "iloveyou12", "letmein123", "welcome123", "administrator", "trustno1234", "abcdefghij", "0123456789",
    "passw0rd123", "qwerty1234", "1q2w3e4r5t", "football12", "baseball12", "monkey1234", "dragon1234",
}  # fmt: skip


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; with no stored hash, still spends the time of a check."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# argon2 spends ~50 ms of CPU by design: in a server it runs in a thread, never on the event loop.
async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, stored, password)


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


class Throttle:
    """Failed logins per key (an account or an address) in a sliding window; locked when over the limit.

    In memory, per web process: enough for one web server; behind several replicas each counts its own
    share, which still bounds guessing to replicas × limit per window.
    """

    MAX_KEYS = 100_000  # attackers choose the emails: the table must not grow without bound

    def __init__(self, limit: int = 5, window_s: float = 900, lockout_s: float = 60) -> None:
        self.limit, self.window_s, self.lockout_s = limit, window_s, lockout_s
        self._fails: dict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, *keys: str) -> int:
        now = time.monotonic()
        worst = 0.0
        for key in keys:
            q = self._fails.get(key)
            if not q:
                continue
            while q and now - q[0] > self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                # The lock doubles with every failure beyond the limit, up to the window.
                lock = min(self.window_s, self.lockout_s * 2 ** (len(q) - self.limit))
                worst = max(worst, q[-1] + lock - now)
        return int(worst) + 1 if worst > 0 else 0

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        if len(self._fails) >= self.MAX_KEYS:
            self._prune(now)
        for key in keys:
            q = self._fails[key]
            q.append(now)
            if len(q) > 4 * self.limit:  # the lock is already at its longest; older failures add nothing
                q.popleft()

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self._fails.items() if not q or now - q[-1] > self.window_s]:
            del self._fails[key]
        while len(self._fails) >= self.MAX_KEYS:  # still full (a flood): forget the oldest keys first
            del self._fails[next(iter(self._fails))]

    def succeeded(self, key: str) -> None:
        self._fails.pop(key, None)


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
