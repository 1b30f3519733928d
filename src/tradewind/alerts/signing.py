"""Webhook signatures: HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed by the channel's secret.

The receiver recomputes it over the exact bytes it received and compares in constant time; the timestamp
is signed too, so an old delivery replayed later is refused (``verify``'s ``tolerance_s``). docs/alerts.md
shows the same check for receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Tradewind-Signature"
TIMESTAMP_HEADER = "X-Tradewind-Timestamp"
EVENT_HEADER = "X-Tradewind-Event"
DELIVERY_HEADER = "X-Tradewind-Delivery"
PREFIX = "sha256="


def new_secret() -> str:
    """A signing secret (256 random bits), shown to its owner once."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """Whether ``signature`` is ours for this body and timestamp, sent within ``tolerance_s`` of ``now``."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)
