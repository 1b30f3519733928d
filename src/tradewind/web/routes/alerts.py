"""Alert channels: where a user's alerts go, which events each takes, a test alert, and how deliveries went.

Secrets (a webhook's URL and signing secret, a bot token, an SMTP password) are written here, encrypted,
and never read back: a webhook's secret is shown once, when it is made. The alerts component delivers;
this router only stores, asks it for a test over the bus, and shows what it recorded.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from tradewind.alerts import signing
from tradewind.alerts.channels import SECRET_FIELDS, seal, unseal
from tradewind.alerts.events import EVENTS
from tradewind.alerts.targets import Refused, check_host, check_url, masked, private_allowed
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.config import ConfigError
from tradewind.storage.models import AlertChannel, AlertDelivery
from tradewind.web.alert_schemas import (
    ChannelCreated,
    ChannelIn,
    ChannelKind,
    ChannelOut,
    ChannelPage,
    ChannelPatch,
    ChannelStatus,
    DeliveryOut,
    DeliveryPage,
    EventOut,
    SecretOut,
    SentOut,
)
from tradewind.web.deps import (
    Cursor,
    Limit,
    ObjectId,
    OwnedDep,
    StateDep,
    client_address,
    found,
    not_found,
    page,
)
from tradewind.web.errors import ApiError
from tradewind.web.events import alert_channels_changed

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
MAX_CHANNELS = 20
NAMES = {"webhook": "Webhook", "telegram": "Telegram", "email": "E-mail", "browser": "In the browser"}
FIELDS = {
    "webhook": {"url"},
    "telegram": {"bot_token", "chat_id"},
    "email": {"to", "smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_from", "smtp_security"},
    "browser": set(),
}
REQUIRED = {"webhook": ("url",), "telegram": ("bot_token", "chat_id"), "email": ("to",), "browser": ()}
UNREACHABLE: dict[str, Any] = {
    "description": "The alerts component (or the message bus) is not reachable: nothing was sent",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
SMTP_CONFIG = ("smtp_host", "smtp_port", "smtp_username", "smtp_from", "smtp_security")


def out(c: AlertChannel) -> ChannelOut:
    cfg = c.config or {}
    target = {
        "webhook": cfg.get("url", ""),
        "telegram": f"Telegram chat {cfg.get('chat_id', '')}",
        "email": cfg.get("to", ""),
        "browser": "the open web app",
    }.get(c.kind, "")
    status: ChannelStatus
    if c.last_failure_at is None and c.last_success_at is None:
        status = "new"
    elif c.last_failure_at is not None and (
        c.last_success_at is None or c.last_failure_at > c.last_success_at
    ):
        status = "failing"
    else:
        status = "ok"
    return ChannelOut(
        id=c.id,
        kind=cast(ChannelKind, c.kind),  # as ChannelIn took it: nothing else is stored
        name=c.name,
        events=list(c.events or []),
        enabled=c.enabled,
        target=target,
        url=cfg.get("url"),
        chat_id=cfg.get("chat_id"),
        bot_token_masked=f"****{cfg['token_hint']}" if cfg.get("token_hint") else None,
        to=cfg.get("to"),
        smtp_host=cfg.get("smtp_host"),
        smtp_port=cfg.get("smtp_port"),
        smtp_username=cfg.get("smtp_username"),
        smtp_from=cfg.get("smtp_from"),
        smtp_security=cfg.get("smtp_security"),
        has_smtp_password=bool(cfg.get("has_smtp_password")),
        status=status,
        last_success_at=c.last_success_at,
        last_failure_at=c.last_failure_at,
        last_error=c.last_error,
        last_attempts=c.last_attempts or 0,
        delivered=c.delivered or 0,
        failed=c.failed or 0,
        dropped=c.dropped or 0,
        created_at=c.created_at,
    )


def _configure(c: AlertChannel, fields: dict[str, Any], st: StateDep) -> str | None:
    """Apply the kind's own fields to ``c`` (checked, secrets sealed); the webhook secret if one was made."""
    for name in fields:
        if name in FIELDS["webhook"] | FIELDS["telegram"] | FIELDS["email"] and name not in FIELDS[c.kind]:
            raise ApiError(422, f"a {c.kind} channel has no {name}", field=name)
    try:
        secrets = unseal(st.box, c.secret_enc)
    except (ConfigError, ValueError):
        secrets = {}  # written under a key this platform no longer has: replaced by what is sent now
    secrets = {k: v for k, v in secrets.items() if k in SECRET_FIELDS[c.kind]}
    cfg = dict(c.config or {})
    made = None
    allow = private_allowed(st.settings)
    if c.kind == "webhook":
        if "url" in fields:
            try:
                secrets["url"] = check_url(fields["url"], allow)
            except Refused as exc:
                raise ApiError(422, str(exc), field="url") from None
            cfg["url"] = masked(fields["url"])
        if not secrets.get("secret"):
            secrets["secret"] = made = signing.new_secret()
    elif c.kind == "telegram":
        if "bot_token" in fields:
            secrets["bot_token"] = fields["bot_token"]
            cfg["token_hint"] = fields["bot_token"][-4:]
        if "chat_id" in fields:
            cfg["chat_id"] = fields["chat_id"]
    elif c.kind == "email":
        if "to" in fields:
            cfg["to"] = fields["to"]
        for name in SMTP_CONFIG:
            if name in fields:
                cfg[name] = fields[name]
        if "smtp_password" in fields:
            secrets["smtp_password"] = fields["smtp_password"] or ""
        if cfg.get("smtp_host"):
            try:
                check_host(cfg["smtp_host"], allow)
            except Refused as exc:
                raise ApiError(422, str(exc), field="smtp_host") from None
        else:
            if not st.settings.smtp_host:
                raise ApiError(
                    422, "this platform has no SMTP server: give yours (smtp_host)", field="smtp_host"
                )
            extra = [n for n in ("smtp_port", "smtp_username", "smtp_from", "smtp_security") if cfg.get(n)]
            if extra or secrets.get("smtp_password"):
                raise ApiError(
                    422,
                    "your own SMTP settings need smtp_host; without it the platform's server is used",
                    field=(extra or ["smtp_password"])[0],
                )
        cfg["has_smtp_password"] = bool(secrets.get("smtp_password"))
    c.config = cfg
    c.secret_enc = seal(st.box, secrets)
    return made


@router.get("/events", response_model=list[EventOut])
async def list_events() -> list[EventOut]:
    """The events a channel can take."""
    return [EventOut(kind=k, label=v) for k, v in EVENTS.items()]


@router.get("/channels", response_model=ChannelPage)
async def list_channels(repo: OwnedDep, limit: Limit = 100, before_id: Cursor = None) -> dict[str, Any]:
    return page(
        [out(c).model_dump(mode="json") for c in await repo.page(AlertChannel, limit, before_id)], limit
    )


@router.post("/channels", status_code=201, response_model=ChannelCreated)
async def create(body: ChannelIn, repo: OwnedDep, st: StateDep, request: Request) -> ChannelCreated:
    """Add a channel. A webhook's signing secret is in this answer and never again."""
    fields = body.model_dump(exclude_none=True, exclude={"kind", "name", "events", "enabled"})
    for name in REQUIRED[body.kind]:
        if name not in fields:
            raise ApiError(422, f"a {body.kind} channel needs {name}", field=name)
    mine = repo.select(AlertChannel).subquery()
    count = (await repo.s.execute(select(func.count()).select_from(mine))).scalar_one()
    if count >= MAX_CHANNELS:
        raise ApiError(409, f"at most {MAX_CHANNELS} alert channels; delete one first")
    if body.kind == "browser":
        if (
            await repo.s.execute(repo.select(AlertChannel).where(AlertChannel.kind == "browser").limit(1))
        ).first():
            raise ApiError(409, "you have an in-browser channel already", field="kind")
    c = AlertChannel(
        kind=body.kind,
        name=body.name or NAMES[body.kind],
        events=body.events or list(EVENTS),
        enabled=body.enabled,
        config={},
    )
    made = _configure(c, fields, st)
    repo.add(c)
    await repo.s.flush()
    repo.audit_log("alerts.channel_created", client_address(request), channel_id=c.id, kind=c.kind)
    await repo.s.commit()
    await alert_channels_changed(st, repo.user_id)
    return ChannelCreated(**out(c).model_dump(), secret=made)


async def _get(repo: OwnedDep, channel_id: int) -> AlertChannel:
    return found(await repo.get(AlertChannel, channel_id), "alert channel")


@router.get("/channels/{channel_id}", response_model=ChannelOut)
async def get(channel_id: ObjectId, repo: OwnedDep) -> ChannelOut:
    return out(await _get(repo, channel_id))


@router.patch("/channels/{channel_id}", response_model=ChannelOut)
async def update(
    channel_id: ObjectId, body: ChannelPatch, repo: OwnedDep, st: StateDep, request: Request
) -> ChannelOut:
    c = await _get(repo, channel_id)
    fields = body.model_dump(exclude_unset=True)
    for name in ("name", "events", "enabled", "url", "bot_token", "chat_id", "to"):
        if name in fields and fields[name] is None:
            raise ApiError(422, "may not be null", field=name)
    for name in ("name", "events", "enabled"):
        if name in fields:
            setattr(c, name, fields.pop(name))
    secret_changed = bool(set(fields) & {"url", "bot_token", "smtp_password"})
    _configure(c, fields, st)
    if secret_changed:
        repo.audit_log("alerts.channel_secret_changed", client_address(request), channel_id=c.id, kind=c.kind)
    await repo.s.commit()
    await alert_channels_changed(st, repo.user_id)
    return out(c)


@router.delete("/channels/{channel_id}", status_code=204)
async def delete(channel_id: ObjectId, repo: OwnedDep, st: StateDep, request: Request) -> Response:
    c = await _get(repo, channel_id)
    await repo.delete(c)
    repo.audit_log("alerts.channel_deleted", client_address(request), channel_id=channel_id, kind=c.kind)
    await repo.s.commit()
    await alert_channels_changed(st, repo.user_id)
    return Response(status_code=204)


@router.post("/channels/{channel_id}/secret", response_model=SecretOut)
async def new_secret(channel_id: ObjectId, repo: OwnedDep, st: StateDep, request: Request) -> SecretOut:
    """Replace a webhook's signing secret; the new one is in this answer and never again."""
    c = await _get(repo, channel_id)
    if c.kind != "webhook":
        raise ApiError(409, "only a webhook channel has a signing secret")
    try:
        secrets = unseal(st.box, c.secret_enc)
    except (ConfigError, ValueError):
        raise ApiError(
            409, "this channel's URL cannot be read with the platform's key: give the URL again"
        ) from None
    secrets["secret"] = made = signing.new_secret()
    c.secret_enc = seal(st.box, secrets)
    repo.audit_log("alerts.secret_rotated", client_address(request), channel_id=c.id)
    await repo.s.commit()
    await alert_channels_changed(st, repo.user_id)
    return SecretOut(secret=made)


@router.post("/channels/{channel_id}/test", response_model=SentOut, responses={503: UNREACHABLE})
async def send_test(channel_id: ObjectId, repo: OwnedDep, st: StateDep) -> SentOut:
    """Send a test alert to this channel now (one attempt) and say how it went."""
    c = await _get(repo, channel_id)
    if st.nc is None:
        raise ApiError(503, "alerts need the message bus, which this web server is not connected to")
    req = m.SendTestAlert(owner_id=repo.user_id, channel_id=c.id)
    try:
        raw = await st.nc.request(
            subjects.ALERTS_TEST, m.encode(req), timeout=st.settings.alerts_timeout_s + 5
        )
        result = m.decode(raw.data, m.DeliveryResult)
    except Exception:  # no responders, a timeout, a lost connection
        raise ApiError(503, "the alerts component did not answer; is it running?") from None
    if result.status == "not_found":
        raise not_found("alert channel")
    return SentOut(
        status="sent" if result.status == "sent" else "failed", attempts=result.attempts, error=result.error
    )


@router.get("/channels/{channel_id}/deliveries", response_model=DeliveryPage)
async def deliveries(
    channel_id: ObjectId, repo: OwnedDep, limit: Limit = 50, before_id: Cursor = None
) -> dict[str, Any]:
    """The channel's recent deliveries, newest first: what was sent, what failed and why."""
    await _get(repo, channel_id)
    rows = await repo.page(AlertDelivery, limit, before_id, channel_id=channel_id)
    return page(
        [DeliveryOut.model_validate(r, from_attributes=True).model_dump(mode="json") for r in rows], limit
    )
