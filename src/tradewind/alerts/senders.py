"""One sender per kind of channel: each makes one attempt and says, by raising ``DeliveryError``, whether
another may succeed (a timeout, a 5xx, a 429: yes; a refused token, an unknown chat, a 404: no).

None of them follows redirects or puts a URL with a key, a token or a password into its error text; the
dispatcher scrubs the channel's secrets from every error all the same (channels.redact).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx
from nats.aio.client import Client

from tradewind.alerts import signing
from tradewind.alerts.channels import Channel
from tradewind.alerts.events import Alert
from tradewind.alerts.targets import Refused, check_resolved, masked
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.config import Settings

log = logging.getLogger(__name__)
TELEGRAM_MAX = 4096  # characters of one message
RETRYABLE_HTTP = {408, 425, 429}
USER_AGENT = "tradewind-alerts/1"


class DeliveryError(Exception):
    """One attempt failed. ``retry``: another attempt may succeed; ``after``: the receiver asked to wait
    this many seconds (Retry-After, Telegram's retry_after)."""

    def __init__(self, message: str, *, retry: bool = True, after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.after = after


class Sender(Protocol):
    async def send(self, channel: Channel, secrets: dict[str, str], alert: Alert) -> None: ...


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class WebhookSender:
    """POST the alert as JSON, signed (signing.sign) with the channel's secret; any 2xx is a delivery."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        allow_private: bool,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.clock = clock

    async def send(self, channel: Channel, secrets: dict[str, str], alert: Alert) -> None:
        url = secrets.get("url", "")
        parts = urlsplit(url)
        where = masked(url)
        try:
            await check_resolved(
                parts.hostname or "",
                parts.port or (443 if parts.scheme == "https" else 80),
                self.allow_private,
            )
        except Refused as exc:
            raise DeliveryError(str(exc), retry=False) from None
        body = json.dumps(alert.as_json(), separators=(",", ":"), ensure_ascii=False).encode()
        ts = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            signing.EVENT_HEADER: alert.event,
            signing.DELIVERY_HEADER: alert.id,
            signing.TIMESTAMP_HEADER: str(ts),
            signing.SIGNATURE_HEADER: signing.sign(secrets.get("secret", ""), ts, body),
        }
        try:
            r = await self.client.post(url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise DeliveryError(f"{where} did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"cannot reach {where}: {_why(exc)}") from None
        if 200 <= r.status_code < 300:
            return
        said = " ".join(r.text[:120].split())
        detail = f"{where} answered HTTP {r.status_code}" + (f": {said}" if said else "")
        if r.status_code in RETRYABLE_HTTP or r.status_code >= 500:
            raise DeliveryError(detail, after=_retry_after(r.headers))
        if 300 <= r.status_code < 400:
            raise DeliveryError(detail + " (redirects are not followed: give the final URL)", retry=False)
        raise DeliveryError(detail, retry=False)


def _why(exc: BaseException) -> str:
    """A transport error in a few words, without the URL some of them carry."""
    text = str(exc).strip()
    if not text or "://" in text:
        return type(exc).__name__
    return text[:160]


class TelegramSender:
    """sendMessage through the Bot API at ``api_url`` (a setting: tests run a local one)."""

    def __init__(self, client: httpx.AsyncClient, api_url: str, timeout_s: float) -> None:
        self.client = client
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s

    async def send(self, channel: Channel, secrets: dict[str, str], alert: Alert) -> None:
        token = secrets.get("bot_token", "")
        text = f"{alert.title}\n\n{alert.text}"[:TELEGRAM_MAX]
        body = {"chat_id": channel.config.get("chat_id"), "text": text, "disable_web_page_preview": True}
        try:
            r = await self.client.post(
                f"{self.api_url}/bot{token}/sendMessage", json=body, timeout=self.timeout_s
            )
        except httpx.TimeoutException:
            raise DeliveryError(f"the Telegram Bot API did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:  # its message may hold the URL, and so the token: the type only
            raise DeliveryError(f"cannot reach the Telegram Bot API: {type(exc).__name__}") from None
        try:
            doc: Any = r.json()
        except ValueError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        if r.status_code == 200 and doc.get("ok") is True:
            return
        said = " ".join(str(doc.get("description") or f"HTTP {r.status_code}").split())[:200]
        if r.status_code == 429:
            params = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
            after = params.get("retry_after")
            raise DeliveryError(
                f"Telegram: {said}", after=float(after) if isinstance(after, int | float) else None
            )
        if r.status_code >= 500:
            raise DeliveryError(f"Telegram: {said}")
        raise DeliveryError(f"Telegram refused the message: {said}", retry=False)


class EmailSender:
    """One message per alert through the channel's own SMTP server, or the platform's (``smtp_*``)."""

    def __init__(self, settings: Settings, allow_private: bool, timeout_s: float) -> None:
        self.settings = settings
        self.allow_private = allow_private
        self.timeout_s = timeout_s

    def server(self, channel: Channel, secrets: dict[str, str]) -> dict[str, Any] | None:
        """Where and how to send: the channel's server if it names one, else the platform's; None: none."""
        c, st = channel.config, self.settings
        if c.get("smtp_host"):
            return {
                "host": c["smtp_host"],
                "port": c.get("smtp_port") or 587,
                "username": c.get("smtp_username"),
                "password": secrets.get("smtp_password"),
                "security": c.get("smtp_security") or "starttls",
                "sender": c.get("smtp_from") or c.get("smtp_username") or st.smtp_from,
                "own": True,
            }
        if st.smtp_host:
            return {
                "host": st.smtp_host,
                "port": st.smtp_port,
                "username": st.smtp_username,
                "password": st.smtp_password,
                "security": st.smtp_security,
                "sender": st.smtp_from,
                "own": False,
            }
        return None

    async def send(self, channel: Channel, secrets: dict[str, str], alert: Alert) -> None:
        srv = self.server(channel, secrets)
        if srv is None:
            raise DeliveryError(
                "no SMTP server: give this channel one, or ask the operator to set smtp_host", retry=False
            )
        if srv["own"]:  # the operator's server is trusted; a user's is checked like a webhook's host
            try:
                await check_resolved(srv["host"], srv["port"], self.allow_private)
            except Refused as exc:
                raise DeliveryError(str(exc), retry=False) from None
        msg = EmailMessage()
        msg["From"] = srv["sender"]
        msg["To"] = channel.config.get("to", "")
        msg["Subject"] = f"[tradewind] {alert.title}"
        msg["Date"] = email.utils.formatdate(alert.time.timestamp(), usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(idstring=alert.id[:16], domain="tradewind.alerts")
        msg.set_content(
            f"{alert.text}\n\n-- \ntradewind: {alert.event} alert, {alert.time:%Y-%m-%d %H:%M} UTC. "
            "Choose what you are told in the app, under Alerts.\n"
        )
        where = f"SMTP server {srv['host']}:{srv['port']}"
        try:
            await aiosmtplib.send(
                msg,
                hostname=srv["host"],
                port=srv["port"],
                username=srv["username"] or None,
                password=srv["password"] or None,
                use_tls=srv["security"] == "tls",
                start_tls=srv["security"] == "starttls",
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            said = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)[:200]
            raise DeliveryError(
                f"{where} refused the address: {said}", retry=all(400 <= c < 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:  # authentication (535), sender refused, data refused
            raise DeliveryError(
                f"{where} answered {exc.code}: {' '.join(str(exc.message).split())[:160]}",
                retry=400 <= exc.code < 500,
            ) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(f"{where}: {exc} (check smtp_security)", retry=False) from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            raise DeliveryError(f"{where} did not answer within {self.timeout_s:g} s") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"cannot reach {where}: {_why(exc)}") from None


class BrowserSender:
    """The open web app: the alert goes to the user's live stream (toast, and a system notification where
    the browser allows). Delivered means published; a closed app simply misses it."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc

    async def send(self, channel: Channel, secrets: dict[str, str], alert: Alert) -> None:
        event = m.AlertEvent(**alert.as_json(), channel_id=channel.id)
        try:
            await self.nc.publish(subjects.user_events(channel.owner_id), m.encode(event))
        except Exception as exc:  # the bus is away: try again later
            raise DeliveryError(f"the message bus is not reachable: {type(exc).__name__}") from None


_TOKEN_IN_URL = re.compile(r"/bot[^/\s]+/")


class _RedactBotTokens(logging.Filter):
    """httpx logs every request's URL at INFO: a Bot API URL holds the token. Masked here, whatever the level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub("/bot***/", str(a)) if "/bot" in str(a) else a for a in record.args
            )
        if isinstance(record.msg, str) and "/bot" in record.msg:
            record.msg = _TOKEN_IN_URL.sub("/bot***/", record.msg)
        return True


def hide_tokens_in_http_logs() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactBotTokens) for f in logger.filters):
        logger.addFilter(_RedactBotTokens())
