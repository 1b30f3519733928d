"""Exactly one active core: leader election through a NATS key-value bucket with a TTL.

The leader holds the key ``core`` and rewrites it every ``ttl/3`` seconds; if it dies, the key ages out
and a standby takes over. A database lock would tie failover to the database's health; NATS is
already what core cannot work without, and JetStream's durable consumer keeps the stream position
across the change of leader.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError

log = logging.getLogger(__name__)
BUCKET = "tradewind_leader"
KEY = "core"


class LeaderElection:
    def __init__(self, js: JetStreamContext, ttl_s: float = 6.0) -> None:
        self.js = js
        self.ttl_s = ttl_s
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.is_leader = False

    async def _kv(self):  # type: ignore[no-untyped-def]
        try:
            return await self.js.key_value(BUCKET)
        except (BucketNotFoundError, NotFoundError):
            return await self.js.create_key_value(KeyValueConfig(bucket=BUCKET, ttl=self.ttl_s, history=1))

    async def run(self, on_elected: Callable[[], Awaitable[None]], on_deposed: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; call ``on_elected`` on winning and ``on_deposed`` if the lease is lost."""
        loop = asyncio.get_running_loop()
        kv = None
        revision = 0
        renewed = 0.0
        while True:
            try:
                kv = kv or await self._kv()
                if not self.is_leader:
                    revision = await kv.create(KEY, self.identity.encode())
                    self.is_leader = True
                    renewed = loop.time()
                    log.info("core: %s is the leader", self.identity)
                    try:
                        await on_elected()
                    except Exception:
                        # Could not start (the database is not ready, say): give the lease back, try later.
                        log.exception("core: starting as the leader failed")
                        await on_deposed()
                        await self.resign()
                        await asyncio.sleep(self.ttl_s / 3)
                        continue
                else:
                    revision = await kv.update(KEY, self.identity.encode(), last=revision)
                    renewed = loop.time()
            except KeyWrongLastSequenceError:
                if self.is_leader:
                    log.warning("core: %s lost the leadership", self.identity)
                    self.is_leader = False
                    await on_deposed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting: keep campaigning
                log.warning("core: leader election: %s", exc)
                if self.is_leader and loop.time() - renewed > self.ttl_s:
                    # The lease may have lapsed and a standby taken over: step down rather than risk two leaders.
                    log.warning("core: %s could not renew its lease; stepping down", self.identity)
                    self.is_leader = False
                    await on_deposed()
            await asyncio.sleep(self.ttl_s / 3)

    async def resign(self) -> None:
        if self.is_leader:
            try:
                kv = await self._kv()
                await kv.delete(KEY)
            except Exception:
                pass
            self.is_leader = False
