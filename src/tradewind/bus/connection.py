"""Connecting to NATS with reconnect and backoff, and the JetStream market-data stream."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from tradewind.bus import subjects

log = logging.getLogger(__name__)


async def connect(url: str, name: str) -> Client:
    """A NATS connection that reconnects forever with backoff, so a restarted server is carried through."""

    async def _disconnected() -> None:
        log.warning("%s: disconnected from NATS", name)

    async def _reconnected() -> None:
        log.info("%s: reconnected to NATS", name)

    async def _error(exc: Exception) -> None:
        log.warning("%s: NATS error: %s", name, exc)

    return await nats.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
        error_cb=_error,
        pending_size=64 * 1024 * 1024,
    )


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
