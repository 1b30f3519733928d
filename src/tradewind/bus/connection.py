"""Connecting to NATS with reconnect and backoff, and the JetStream market-data stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from tradewind.bus import subjects

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Client(Client):
    """nats-py's client, except that a task cancelled while it waits for a reply is really cancelled.

    nats-py waits for replies with ``asyncio.wait_for``, which on Python 3.11 returns the reply and drops the
    cancellation when the reply and the ``cancel()`` land in the same loop iteration (fixed in 3.12). A
    component's ``stop()`` cancels its loops once and waits for them: the exchange service's candle
    stream, cancelled just as a JetStream publish was acknowledged, kept publishing and ``stop()`` never
    returned (and core, its requests now unanswered, retried its candle with "no responders" forever).
    """

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        return await _cancellable(super().request(*args, **kwargs))

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        await _cancellable(super().flush(*args, **kwargs))


async def _cancellable(call: Awaitable[T]) -> T:
    """Await ``call``; if the task was cancelled meanwhile and the cancellation got lost, raise it now."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        result = await call
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # e.g. "no responders" decoded from the reply that won the race
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError from exc
        raise
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError
    return result


async def connect(url: str, name: str) -> Client:
    """A NATS connection that reconnects forever with backoff, so a restarted server is carried through."""

    async def _disconnected() -> None:
        if nc.is_closed:  # our own close() or drain() at shutdown: nothing went wrong
            log.debug("%s: closed its NATS connection", name)
        else:
            log.warning("%s: disconnected from NATS", name)

    async def _reconnected() -> None:
        log.info("%s: reconnected to NATS", name)

    async def _error(exc: Exception) -> None:
        log.warning("%s: NATS error: %s", name, exc)

    nc = _Client()
    await nc.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds, slept as a float; nats-py annotates int
        connect_timeout=5,
        allow_reconnect=True,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
        error_cb=_error,
        pending_size=64 * 1024 * 1024,
    )
    return nc


async def ensure_md_stream(js: JetStreamContext, max_age_s: float = 7 * 24 * 3600) -> None:
    """Create (or keep) the durable market-data stream that lets a restarted core resume without loss."""
    config = StreamConfig(
        name=subjects.MD_STREAM,
        subjects=[subjects.MD_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        duplicate_window=120,
    )
    try:
        await js.stream_info(subjects.MD_STREAM)
    except NotFoundError:
        await js.add_stream(config)


async def unsubscribe_all(subs: Iterable[Any]) -> None:
    """Unsubscribe each subscription; one whose connection is already closed is simply gone."""
    for sub in subs:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
