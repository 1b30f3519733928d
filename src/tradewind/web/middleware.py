"""Pure ASGI middleware: the request-size cap, security headers and the HTTP metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so that WebSockets and streamed bodies pass untouched and a body
sent without a Content-Length is still counted as it arrives.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradewind.web.errors import ApiError

REQUESTS = Counter("tradewind_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "tradewind_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit // 1024} KiB")


class LimitsMiddleware:
    """Refuses bodies over ``max_body`` bytes (413), adds security headers, counts and times requests.

    Requests are labelled by their route template (``/api/strategies/{strategy_id}``), never by the raw
    path, so that hostile paths cannot blow up the metrics' cardinality.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            too_big = BodyTooLarge(self.max_body)
            await JSONResponse({"detail": too_big.detail, "errors": []}, status_code=413)(
                scope, receive, send
            )
            return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:  # a chunked body that keeps coming
                    raise BodyTooLarge(self.max_body)
            return message

        status = 500
        counted = False

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                route = _route(scope)
                LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
                REQUESTS.labels(scope["method"], route, str(status)).inc()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                h = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS:
                    if k.decode() not in h:
                        h.append(k.decode(), v.decode())
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the last of the answer goes out: a client that has its answer (and asks
                # /metrics next, perhaps of this very process) finds it counted.
                count()
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, counted_receive, send_with_headers)
        finally:
            count()  # (an answer never finished: an error, a client gone)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"
