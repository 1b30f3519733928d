"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", checked as docs/alerts.md tells receivers to."""

from __future__ import annotations

import hashlib
import hmac

from tradewind.alerts import signing

BODY = b'{"id":"abc","event":"fill","title":"Filled: buy 0.01 BTC at 50000 USD"}'
SECRET = "whsec_test-secret"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_as_the_docs_show() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, 1_700_000_000, BODY) == f"sha256={expected}"


def test_a_signature_verifies_only_for_its_secret_body_and_timestamp() -> None:
    sig = signing.sign(SECRET, 1_700_000_000, BODY)
    assert signing.verify(SECRET, "1700000000", BODY, sig, now=1_700_000_010)
    assert not signing.verify("whsec_other", "1700000000", BODY, sig, now=1_700_000_010)
    assert not signing.verify(SECRET, "1700000000", BODY.replace(b"0.01", b"10"), sig, now=1_700_000_010)
    assert not signing.verify(SECRET, "1700000001", BODY, sig, now=1_700_000_010)  # the timestamp is signed
    assert not signing.verify(SECRET, "not a number", BODY, sig, now=1_700_000_010)


def test_an_old_delivery_replayed_later_is_refused() -> None:
    sig = signing.sign(SECRET, 1_700_000_000, BODY)
    assert signing.verify(SECRET, "1700000000", BODY, sig, now=1_700_000_000 + 299)
    assert not signing.verify(SECRET, "1700000000", BODY, sig, now=1_700_000_000 + 301)


def test_each_new_secret_is_random_and_long() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 40
