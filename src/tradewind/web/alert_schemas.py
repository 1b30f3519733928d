"""Request and response bodies of the alert channels (/api/alerts). Secrets go in, never out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field, StrictBool, field_validator

from tradewind.alerts.events import EVENTS
from tradewind.web.schemas import Name, Page, Request

ChannelKind = Literal["webhook", "telegram", "email", "browser"]
EventKind = Literal["fill", "paused", "kill_switch", "loss_limit", "exchange", "summary"]
assert set(EventKind.__args__) == set(EVENTS)  # type: ignore[attr-defined]  # one list, two spellings
SmtpSecurity = Literal["starttls", "tls", "none"]
ChannelStatus = Literal["new", "ok", "failing"]
ChatId = Annotated[
    str,
    Field(
        pattern=r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$",
        max_length=33,
        description="A chat's number (a group's is negative) or a public channel's @name",
    ),
]
BotToken = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$",
        max_length=121,
        description="The token @BotFather gave (123456:ABC-...); write-only",
    ),
]
Url = Annotated[str, Field(min_length=1, max_length=2000)]
Host = Annotated[str, Field(min_length=1, max_length=253)]
Events = Annotated[list[EventKind], Field(max_length=len(EVENTS))]


def _unique(events: list[str] | None) -> list[str] | None:
    if events is None:
        return None
    if not events:
        raise ValueError("choose at least one event")
    return list(dict.fromkeys(events))


class _Channel(Request):
    """What a new channel and a change of one take alike: an e-mail channel's own SMTP server (``smtp_*``)
    instead of the platform's, and the events, each once."""

    smtp_host: Host | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = Field(default=None, min_length=1, max_length=254)
    smtp_password: str | None = Field(default=None, min_length=1, max_length=512)
    smtp_from: EmailStr | None = None
    smtp_security: SmtpSecurity | None = None

    @field_validator("events", check_fields=False)
    @classmethod
    def _events(cls, v: list[str] | None) -> list[str] | None:
        return _unique(v)


class ChannelIn(_Channel):
    """A new channel. ``webhook``: ``url`` (a signing secret is made for it and shown once);
    ``telegram``: ``bot_token`` and ``chat_id``; ``email``: ``to``, and optionally your own SMTP server
    (``smtp_*``) instead of the platform's; ``browser``: nothing (the open web app)."""

    kind: ChannelKind
    name: Name | None = None
    events: Events | None = Field(default=None, description="default: all")
    enabled: StrictBool = True
    url: Url | None = None
    bot_token: BotToken | None = None
    chat_id: ChatId | None = None
    to: EmailStr | None = None


class ChannelPatch(_Channel):
    """Change a channel; a field left out keeps its value (a secret too: send it only to replace it)."""

    # Left out: None, which pydantic does not validate (a default); sent as null: refused by the type.
    name: Name = None  # type: ignore[assignment]
    events: Events = None  # type: ignore[assignment]
    enabled: StrictBool = None  # type: ignore[assignment]
    url: Url = None  # type: ignore[assignment]
    bot_token: BotToken = None  # type: ignore[assignment]
    chat_id: ChatId = None  # type: ignore[assignment]
    to: EmailStr = None  # type: ignore[assignment]


class ChannelOut(BaseModel):
    id: int
    kind: ChannelKind
    name: str
    events: list[str]
    enabled: bool
    target: str = Field(description="Where it goes, as the app shows it (a webhook's path is never shown)")
    url: str | None = Field(description="The webhook's scheme, host and port; its path stays secret")
    chat_id: str | None
    bot_token_masked: str | None
    to: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_username: str | None
    smtp_from: str | None
    smtp_security: str | None
    has_smtp_password: bool
    status: ChannelStatus
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    last_error: str | None
    last_attempts: int
    delivered: int
    failed: int
    dropped: int
    created_at: dt.datetime


class ChannelCreated(ChannelOut):
    secret: str | None = Field(
        description="A webhook's signing secret: shown this once (POST .../secret makes a new one)"
    )


class ChannelPage(Page):
    items: list[ChannelOut]


class DeliveryOut(BaseModel):
    id: int
    channel_id: int
    event: str
    title: str
    status: Literal["sent", "failed", "dropped"]
    attempts: int
    error: str | None
    created_at: dt.datetime


class DeliveryPage(Page):
    items: list[DeliveryOut]


class EventOut(BaseModel):
    kind: str
    label: str


class SentOut(BaseModel):
    status: Literal["sent", "failed"]
    attempts: int
    error: str | None


class SecretOut(BaseModel):
    secret: str = Field(description="The webhook's new signing secret, shown this once")
