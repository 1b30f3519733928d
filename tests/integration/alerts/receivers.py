"""Local servers that receive alerts as the real ones would: an HTTP endpoint for webhooks, a Telegram Bot API
(``sendMessage``, as documented at core.telegram.org/bots/api), and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def eventually(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.05)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class WebhookReceiver:
    """POST /hook/<anything>: records each request; answers ``status`` (200), or the next of ``script``."""

    status: int = 200
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook/{rest:.*}", self._hook)
        self._runner, self.port = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "k3y-in-the-path") -> str:
        return f"http://127.0.0.1:{self.port}/hook/{path}"

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r.json for r in self.received if r.json.get("event") == event]

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        status = self.script.pop(0) if self.script else self.status
        return web.json_response({"ok": status < 300}, status=status)


@dataclass
class FakeTelegram:
    """The Bot API's sendMessage: a known token and chat get ``{"ok": true}``; an unknown token a 401, an
    unknown chat a 400, as Telegram answers them."""

    tokens: set[str] = field(default_factory=set)
    chats: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)  # token, chat_id, text
    requests: int = 0
    echo_token: bool = False  # a misbehaving proxy that repeats the token in its error: must not be stored
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._send)
        self._runner, self.port = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        token = request.match_info["token"]
        body = await request.json()
        if token not in self.tokens:
            said = f"Unauthorized: {token}" if self.echo_token else "Unauthorized"
            return web.json_response({"ok": False, "error_code": 401, "description": said}, status=401)
        chat = str(body.get("chat_id"))
        if chat not in self.chats:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, status=400
            )
        self.messages.append({"token": token, "chat_id": chat, "text": body.get("text", "")})
        return web.json_response(
            {"ok": True, "result": {"message_id": len(self.messages), "chat": {"id": chat}}}
        )


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class LocalSmtp:
    """aiosmtpd on 127.0.0.1 (its own thread); ``messages`` are what it accepted, parsed."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.mailbox.messages

    def start(self) -> LocalSmtp:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
