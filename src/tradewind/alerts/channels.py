"""A channel as the alerts component holds it, and its secrets sealed for storage.

The secrets of a channel (a webhook's URL and signing key, a bot token, an SMTP password) are stored as
one JSON object encrypted with the platform's SecretBox, like exchange keys; they are opened for a
delivery and for nothing else, and scrubbed from every error text before it is stored or shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tradewind.alerts.targets import masked
from tradewind.secrets import SecretBox
from tradewind.storage.models import AlertChannel

KINDS = ("webhook", "telegram", "email", "browser")
SECRET_FIELDS = {
    "webhook": ("url", "secret"),
    "telegram": ("bot_token",),
    "email": ("smtp_password",),
    "browser": (),
}


def seal(box: SecretBox, secrets: dict[str, str]) -> str | None:
    kept = {k: v for k, v in secrets.items() if v}
    return box.encrypt(json.dumps(kept)) if kept else None


def unseal(box: SecretBox, token: str | None) -> dict[str, str]:
    if not token:
        return {}
    value = json.loads(box.decrypt(token))
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Channel:
    """A snapshot of one stored channel (what a queued alert is delivered with)."""

    id: int
    owner_id: int
    kind: str
    name: str
    events: frozenset[str]
    enabled: bool
    config: dict[str, Any]
    secret_enc: str | None

    @classmethod
    def of(cls, row: AlertChannel) -> Channel:
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            kind=row.kind,
            name=row.name,
            events=frozenset(row.events or ()),
            enabled=bool(row.enabled),
            config=dict(row.config or {}),
            secret_enc=row.secret_enc,
        )

    def takes(self, event: str) -> bool:
        return self.enabled and event in self.events


def redact(text: str, secrets: dict[str, str]) -> str:
    """``text`` without any of the secrets, nor a webhook URL's path or query (where services put keys)."""
    url = secrets.get("url")
    if url:
        text = text.replace(url, masked(url))
    terms = [v for k, v in secrets.items() if k != "url" and v and len(v) >= 4]
    if url:
        parts = urlsplit(url)
        terms += [
            p for p in (parts.path, parts.query, parts.password or "") if p and len(p) >= 4 and p != "/"
        ]
    for term in sorted(terms, key=len, reverse=True):
        text = text.replace(term, "***")
    return text
