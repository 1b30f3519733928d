"""Where alerts may go: the address rules the web app checks when a channel is saved and the senders
check again, on the resolved address, before every delivery.

On a shared platform a user's webhook URL or SMTP server must not reach the platform's own network (the
database, NATS, a cloud metadata endpoint): loopback, private, link-local and other non-public addresses
are refused unless ``alerts_private_targets`` allows them (by default only embedded, where the one machine
is the user's own).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from tradewind.config import Settings

HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
MAX_URL = 2000


class Refused(Exception):
    """An address this platform does not deliver to; the message is fit to show the user."""


def private_allowed(settings: Settings) -> bool:
    if settings.alerts_private_targets is not None:
        return settings.alerts_private_targets
    return settings.mode == "embedded"


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_host(host: str, allow_private: bool) -> None:
    """Refuse a malformed host name, and (unless allowed) a literal private address or ``localhost``,
    without looking anything up: what a form can say at once."""
    ip = _literal(host)
    if ip is None and not HOSTNAME.fullmatch(host):
        raise Refused(f"{host[:80]!r} is not a host name")
    if allow_private:
        return
    name = host.lower().rstrip(".")
    if (ip is not None and not ip.is_global) or name == "localhost" or name.endswith(".localhost"):
        raise Refused(
            f"{host} is a local or private address; this platform delivers to public addresses only"
        )


def check_url(url: str, allow_private: bool) -> str:
    """A webhook URL as it will be called: http(s), a host, no spaces; its host checked by ``check_host``."""
    if len(url) > MAX_URL:
        raise Refused(f"at most {MAX_URL} characters")
    if any(c.isspace() for c in url):
        raise Refused("a URL has no spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused("give an http:// or https:// URL")
    if not parts.hostname:
        raise Refused("the URL has no host")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise Refused("the URL's port is not a number from 1 to 65535") from None
    check_host(parts.hostname, allow_private)
    return url


def masked(url: str) -> str:
    """A webhook URL as the app shows it: scheme, host and port; the path (which may hold a key, as Slack's
    and Discord's do) and any credentials never leave the server."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


async def check_resolved(host: str, port: int, allow_private: bool) -> None:
    """Just before a delivery: refuse a host whose addresses (as resolved now) include a non-public one."""
    if allow_private:
        return
    check_host(host, allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the connection will fail to resolve and say so; nothing reached meanwhile
    for info in infos:
        ip = _literal(str(info[4][0]).split("%", 1)[0])
        if ip is not None and not ip.is_global:
            raise Refused(
                f"{host} resolves to a local or private address; this platform delivers to public addresses only"
            )
